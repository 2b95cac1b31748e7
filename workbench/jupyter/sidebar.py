"""What the sidebar shows, as JSON: every endpoint's split, health, rollout, alerts and live numbers.

Pure functions of what the shared feed holds (the same summaries as the dashboards' overview), so the
sidebar and the overview page agree, and a test can check the shape without a server.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from workbench.records.rollouts import RolloutRecord
from workbench.ui.feed import Snapshot
from workbench.ui.models.overview import EndpointSummary, summarise

#: Recent runbook runs listed.
RUNS = 10


def _rollout(record: RolloutRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    steps = [float(step.get("weight", 0)) for step in record.spec.get("steps") or []]
    return {
        "id": record.id,
        "strategy": record.strategy,
        "phase": record.phase.value,
        "step": record.step_index + 1,
        "steps": len(steps),
        "weights": steps,
        "candidate": f"{record.candidate_model} v{record.candidate_version}",
        "stable": f"{record.stable_model} v{record.stable_version}",
    }


def live_numbers(summary: EndpointSummary) -> dict[str, Any]:
    return {
        "requests_total": summary.requests_total,
        "errors_total": summary.errors_total,
        "requests_per_s": summary.requests_per_s,
        "p95_ms": summary.p95_ms,
        "error_rate": summary.error_rate,
    }


def sidebar_state(
    snapshot: Snapshot,
    totals: dict[str, dict[str, dict[str, int]]],
    recent: dict[str, dict[str, dict[str, list[Any]]]],
) -> dict[str, Any]:
    endpoints = []
    for summary in summarise(snapshot, totals, recent):
        entry = asdict(summary)
        entry["routes"] = [{"model": m, "version": v, "weight": w} for m, v, w in summary.routes]
        entry["rollout"] = _rollout(snapshot.active_rollout(summary.name))
        entry["rollout_label"] = summary.rollout
        record = snapshot.endpoint(summary.name)
        entry["shadows"] = [f"{s.model} v{s.version}" for s in record.spec.shadows] if record else []
        entry["history"] = [
            {"revision": r.revision, "cause": r.cause.value, "at": r.at.timestamp(), "actor": r.actor}
            for r in snapshot.histories.get(summary.name, ())[:10]
        ]
        endpoints.append(entry)
    return {
        "at": snapshot.at or time.time(),
        "error": snapshot.error,
        "endpoints": endpoints,
        "models": {
            name: [{"label": label, "version": version} for label, version in choices]
            for name, choices in snapshot.model_versions.items()
        },
        "runs": [
            {
                "id": run.id,
                "runbook": run.runbook,
                "status": run.status.value,
                "trigger": run.trigger.kind.value,
                "endpoint": run.endpoint,
                "summary": run.summary,
                "created_at": run.created_at.timestamp(),
            }
            for run in snapshot.runs[:RUNS]
        ],
    }


def traffic_delta(
    snapshot: Snapshot,
    totals: dict[str, dict[str, dict[str, int]]],
    recent: dict[str, dict[str, dict[str, list[Any]]]],
) -> dict[str, Any]:
    """Each second between state changes: only the live numbers, per endpoint."""
    return {
        "at": time.time(),
        "endpoints": {s.name: live_numbers(s) for s in summarise(snapshot, totals, recent)},
    }
