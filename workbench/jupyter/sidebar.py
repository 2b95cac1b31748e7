"""What the sidebar shows, as JSON: every endpoint's split, health, rollout, alerts, live numbers and its
A/B experiment.

Pure functions of what the shared feed holds (the same summaries as the dashboards' overview), so the
sidebar and the overview page agree, and a test can check the shape without a server. An experiment's
entry carries its looks thinned to a sparkline's worth, so the delta sent at each new look stays small.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from workbench.records.experiments import ExperimentRecord, ExperimentState
from workbench.records.rollouts import RolloutRecord
from workbench.ui.feed import Snapshot
from workbench.ui.models.overview import EndpointSummary, summarise

#: Recent runbook runs listed.
RUNS = 10
#: Looks drawn in an experiment's sparkline: thinned evenly, the first and the newest always kept.
SPARK_POINTS = 40
#: A concluded experiment stays on its endpoint's card until the endpoint's traffic changes after it
#: ended (by more than this many seconds: its own conclusion writes a revision at the same moment).
MOVED_ON_S = 2.0
#: Significant digits sent for an experiment's figures (the sidebar shows three).
DIGITS = 4


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


def _figure(value: Any) -> float | None:
    """A float rounded to ``DIGITS`` significant digits; None for a missing or non-finite one."""
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number):
        return None
    return float(f"{number:.{DIGITS}g}")


def shown_experiment(snapshot: Snapshot, endpoint: str) -> ExperimentRecord | None:
    """The experiment an endpoint's card shows: its running or paused one, else its newest concluded one
    while the endpoint has not moved on since (no rollout started, no traffic change after it ended), so
    a winner the engine concluded stays on the card, ready to promote."""
    active = snapshot.active_experiment(endpoint)
    if active is not None:
        return active
    newest = next(
        (e for e in snapshot.experiments if e.endpoint == endpoint and e.state != ExperimentState.DRAFT),
        None,
    )
    if newest is None or newest.state != ExperimentState.CONCLUDED or newest.ended_at is None:
        return None
    ended = newest.ended_at.timestamp()
    if any(r.endpoint == endpoint and r.created_at.timestamp() > ended for r in snapshot.rollouts):
        return None
    history = snapshot.histories.get(endpoint, ())
    if history and history[0].at.timestamp() > ended + MOVED_ON_S:
        return None
    return newest


def _comparison(comparison: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "variant": comparison.get("variant"),
        "n_control": comparison.get("n_control"),
        "n_variant": comparison.get("n_variant"),
        "control_mean": _figure(comparison.get("control_mean")),
        "variant_mean": _figure(comparison.get("variant_mean")),
        "estimate": _figure(comparison.get("estimate")),
        "lower": _figure(comparison.get("lower")),
        "upper": _figure(comparison.get("upper")),
        "adjusted_p": _figure(comparison.get("adjusted_p")),
        "direction": comparison.get("direction"),
    }


def _thin(count: int, keep: int) -> list[int]:
    """Indices of ``keep`` looks out of ``count``, evenly spread, the first and the last included."""
    if count <= keep:
        return list(range(count))
    return sorted({round(i * (count - 1) / (keep - 1)) for i in range(keep)})


def experiment_series(looks: Sequence[Mapping[str, Any]], variant: str) -> list[list[float | None]]:
    """``[ts, units, estimate, lower, upper]`` per look (thinned) that compared ``variant`` on the primary
    metric: the estimate and its always-valid interval over time. An unbounded end is None."""
    points: list[list[float | None]] = []
    for look in looks:
        decision = look.get("decision") or {}
        found = next((c for c in decision.get("primary") or () if c.get("variant") == variant), None)
        if found is None:
            continue
        points.append(
            [
                round(float(look.get("ts", 0.0)), 3),
                look.get("units"),
                _figure(found.get("estimate")),
                _figure(found.get("lower")),
                _figure(found.get("upper")),
            ]
        )
    return [points[i] for i in _thin(len(points), SPARK_POINTS)]


def experiment_entry(record: ExperimentRecord, looks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """An experiment as its endpoint's card shows it: state, units per variant, the latest decision with
    the primary metric's estimates and always-valid intervals, and their course over the looks."""
    spec = record.spec
    decision: Mapping[str, Any] = record.decision or {}
    ratio: Mapping[str, Any] = decision.get("sample_ratio") or {}
    everyone: Mapping[str, Any] = decision.get("assigned") or {}
    # Every unit assigned at the look (the sample-ratio counts leave out the last seconds' units).
    counts = [everyone.get(v.name, 0) for v in spec.variants] if everyone else list(ratio.get("counts") or [])
    treated = [v.name for v in spec.variants[1:]]
    return {
        "name": record.name,
        "state": record.state.value,
        "revision": record.revision,
        "unit": spec.unit,
        "metric": {"name": spec.primary.name, "kind": spec.primary.kind, "better": spec.primary.better},
        # The intervals are at the family's Bonferroni level (decide.py): 95 % for one treatment at 0.05.
        "level": _figure(1 - spec.alpha / max(len(treated), 1)),
        "control": spec.control.name,
        "variants": [
            {
                "name": v.name,
                "model": v.model,
                "version": v.version,
                "weight": v.weight,
                "units": counts[i] if i < len(counts) else None,
            }
            for i, v in enumerate(spec.variants)
        ],
        "verdict": decision.get("verdict"),
        "reason": decision.get("reason"),
        "winner": decision.get("winner"),
        "srm": bool(ratio.get("alarm", False)),
        "decided_at": decision.get("at"),
        "primary": [_comparison(c) for c in decision.get("primary") or ()],
        "looks": len(looks),
        "last_look": round(float(looks[-1].get("ts", 0.0)), 3) if looks else None,
        "series": {name: experiment_series(looks, name) for name in treated},
    }


def experiments_by_endpoint(snapshot: Snapshot) -> dict[str, dict[str, Any] | None]:
    """Each endpoint's shown experiment (None when it has none)."""
    out: dict[str, dict[str, Any] | None] = {}
    for endpoint in snapshot.endpoints:
        name = endpoint.spec.name
        record = shown_experiment(snapshot, name)
        out[name] = (
            experiment_entry(record, snapshot.experiment_looks.get(record.name, ()))
            if record is not None
            else None
        )
    return out


def experiment_delta(
    before: Mapping[str, dict[str, Any] | None], after: Mapping[str, dict[str, Any] | None]
) -> dict[str, dict[str, Any] | None]:
    """The endpoints whose experiment entry changed, with their new entry (None: it has none now)."""
    return {name: entry for name, entry in after.items() if before.get(name) != entry}


def sidebar_state(
    snapshot: Snapshot,
    totals: dict[str, dict[str, dict[str, int]]],
    recent: dict[str, dict[str, dict[str, list[Any]]]],
) -> dict[str, Any]:
    endpoints = []
    experiments = experiments_by_endpoint(snapshot)
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
        entry["experiment"] = experiments.get(summary.name)
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
