"""The comparison table of a version and its variants: one row per variant asked for, parent first.

Built from optimisation records alone (pure), so the API, the CLI, the runbook and the dashboards show
the same figures; figures of a row were measured in the same run as the parent's beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workbench.records.optimizations import OptimizationRecord, OptimizationStatus

COLUMNS: tuple[str, ...] = (
    "id",
    "model",
    "method",
    "status",
    "quality",
    "delta",
    "p50_ms_batch1",
    "p50_ms_serving",
    "speedup",
    "rows_per_s",
    "size_kb",
    "rss_mb",
    "note",
)


def _quality(block: dict[str, Any]) -> tuple[str, float | None]:
    figures = block.get("quality", {})
    for key in ("auc_points", "mae"):
        if key in figures:
            return ("AUC" if key == "auc_points" else "MAE"), float(figures[key])
    return "", None


def _row(label: str, method: str, status: str, block: dict[str, Any], serving: str) -> dict[str, Any]:
    metric, value = _quality(block)
    latency = block.get("latency_ms", {})
    return {
        "model": label,
        "method": method,
        "status": status,
        "quality": None if value is None else f"{metric} {value:.2f}",
        "p50_ms_batch1": latency.get("1", {}).get("p50"),
        "p50_ms_serving": latency.get(serving, {}).get("p50"),
        "rows_per_s": latency.get(serving, {}).get("rows_per_s"),
        "size_kb": round(block["size_bytes"] / 1024, 1) if "size_bytes" in block else None,
        "rss_mb": block.get("replica_rss_mb"),
    }


def comparison(records: Sequence[OptimizationRecord]) -> list[dict[str, Any]]:
    """Rows for the parent (its latest measurement) and every variant, newest first after the parent."""
    rows: list[dict[str, Any]] = []
    parent_done = False
    for record in records:
        result, verdict = record.result, record.verdict or {}
        serving = str(record.settings.get("serving_batch", 1))
        if result is not None and not parent_done:
            parent = _row(record.parent_uri, "(parent)", "parent", result["parent"], serving)
            rows.insert(
                0,
                {
                    **parent,
                    "id": record.id,
                    "delta": None,
                    "speedup": 1.0,
                    "note": f"measured by {record.id}",
                },
            )
            parent_done = True
        if result is None:
            rows.append(
                {
                    **dict.fromkeys(COLUMNS),
                    "id": record.id,
                    "model": record.parent_uri,
                    "method": record.method,
                    "status": record.status.value,
                    "note": record.error or "",
                }
            )
            continue
        label = (
            f"models:/{record.model}/{record.variant_version}"
            if record.variant_version is not None
            else f"{record.parent_uri} ({record.status.value})"
        )
        row = {"id": record.id, **_row(label, record.method, record.status.value, result["variant"], serving)}
        delta = verdict.get("quality_delta", {})
        metric = "auc_points" if "auc_points" in delta else "mae" if "mae" in delta else None
        row["delta"] = None if metric is None else round(float(delta[metric]), 3)
        row["speedup"] = verdict.get("speedup")
        reasons = verdict.get("reasons") or []
        row["note"] = (
            "; ".join(reasons) if record.status is OptimizationStatus.REFUSED else f"batch {serving}"
        )
        rows.append(row)
    return rows
