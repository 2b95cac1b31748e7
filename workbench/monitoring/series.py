"""Series for dashboards: requests/s, error rate and latency percentiles per step, per version.

Computed on demand from the prediction log for any look-back (Prometheus scraping ``/metrics`` stays
the production path; this is what a notebook or a dashboard asks when it wants the last hour).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from workbench.errors import ValidationError

MAX_POINTS = 10_000


MIN_STEP_S = 0.001


def check_steps(window_s: float, step_s: float) -> int:
    if not (math.isfinite(window_s) and window_s > 0 and math.isfinite(step_s) and step_s >= MIN_STEP_S):
        raise ValidationError(f"window_s must be a positive number and step_s at least {MIN_STEP_S}")
    ratio = window_s / step_s  # finite: step_s is bounded below
    if ratio > MAX_POINTS:
        raise ValidationError(f"window_s / step_s gives {ratio:.0f} points; at most {MAX_POINTS}")
    return math.ceil(ratio)


def series_from_records(
    records: Iterable[dict[str, Any]], *, start: float, end: float, step_s: float
) -> dict[str, list[dict[str, Any]]]:
    """Points per step for every version (keyed by its number) and for all versions together ("all")."""
    points = check_steps(end - start, step_s)
    buckets: dict[tuple[str, int], dict[str, Any]] = {}
    for record in records:
        ts = float(record.get("ts", 0.0))
        if record.get("shadow") or not start <= ts < end:
            continue
        index = int((ts - start) // step_s)
        status = int(record.get("status", 0))
        for key in ("all", str(record.get("version"))):
            bucket = buckets.setdefault((key, index), {"requests": 0, "errors": 0, "latencies": []})
            bucket["requests"] += 1
            bucket["errors"] += status >= 500
            if status < 400 and "latency_ms" in record:
                bucket["latencies"].append(float(record["latency_ms"]))
    out: dict[str, list[dict[str, Any]]] = {}
    for key in sorted({k for k, _ in buckets}, key=lambda k: (k != "all", k)):
        rows = []
        for index in range(points):
            bucket = buckets.get((key, index), {"requests": 0, "errors": 0, "latencies": []})
            latencies = np.asarray(bucket["latencies"], dtype=np.float64)
            width = min(step_s, end - (start + index * step_s))

            def q(p: float, latencies: np.ndarray[Any, Any] = latencies) -> float | None:
                return round(float(np.quantile(latencies, p)), 4) if latencies.size else None

            rows.append(
                {
                    "ts": start + index * step_s,
                    "requests": bucket["requests"],
                    "requests_per_s": bucket["requests"] / width if width > 0 else None,
                    "error_rate": bucket["errors"] / bucket["requests"] if bucket["requests"] else None,
                    "latency_p50_ms": q(0.5),
                    "latency_p95_ms": q(0.95),
                    "latency_p99_ms": q(0.99),
                }
            )
        out[key] = rows
    return out
