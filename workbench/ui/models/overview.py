"""The overview: every endpoint with its split, health, rollout, alerts and live traffic; recent runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import param

from workbench.records.runbooks import RunRecord
from workbench.ui.feed import Snapshot, Update
from workbench.ui.models.base import PageModel

#: Seconds of traffic behind the "now" figures (requests/s, p95, errors).
RECENT_S = 10


@dataclass(frozen=True)
class EndpointSummary:
    name: str
    revision: int
    routes: tuple[tuple[str, int, float], ...]
    replicas_ready: int
    replicas: int
    devices: tuple[str, ...]
    restarts: int
    rollout: str | None  # "canary of v2: progressing, step 2/3 (25%)"
    rollout_id: str | None
    firing: tuple[str, ...]
    requests_total: int
    errors_total: int
    requests_per_s: float | None
    p95_ms: float | None
    error_rate: float | None


def _recent(points: dict[str, dict[str, list[Any]]]) -> tuple[float | None, float | None, float | None]:
    column = points.get("all")
    if not column or not column.get("ts"):
        return None, None, None
    requests = sum(v or 0 for v in column.get("requests", []))
    seconds = len(column["ts"])
    p95s = [v for v in column.get("p95_ms", []) if v is not None]
    errors = sum(v or 0 for v in column.get("errors", []))
    return (
        requests / seconds if seconds else None,
        max(p95s) if p95s else None,
        errors / requests if requests else None,
    )


def summarise(
    snapshot: Snapshot,
    totals: dict[str, dict[str, dict[str, int]]],
    recent: dict[str, dict[str, dict[str, list[Any]]]],
) -> list[EndpointSummary]:
    """One summary per endpoint, from the state, the running totals and the last seconds of traffic."""
    out = []
    for record in snapshot.endpoints:
        name = record.spec.name
        replicas = snapshot.replicas.get(name, [])
        rollout = snapshot.active_rollout(name)
        label = None
        if rollout is not None:
            spec_steps = rollout.spec.get("steps") or []
            steps = f", step {rollout.step_index + 1}/{len(spec_steps)}" if spec_steps else ""
            label = (
                f"{rollout.strategy.replace('_', '-')} of {rollout.candidate_model} v{rollout.candidate_version}: "
                f"{rollout.phase.value}{steps}"
            )
        rps, p95, error_rate = _recent(recent.get(name, {}))
        all_totals = totals.get(name, {}).get("all", {})
        out.append(
            EndpointSummary(
                name=name,
                revision=record.revision,
                routes=tuple((r.model, r.version, r.weight) for r in record.spec.routes if r.weight > 0),
                replicas_ready=sum(1 for r in replicas if r.get("state") == "ready"),
                replicas=len(replicas),
                devices=tuple(sorted({str(r.get("device")) for r in replicas if r.get("device")})),
                restarts=sum(int(r.get("restarts") or 0) for r in replicas),
                rollout=label,
                rollout_id=rollout.id if rollout is not None else None,
                firing=tuple(rule.spec.name for rule in snapshot.firing(name)),
                requests_total=int(all_totals.get("requests", 0)),
                errors_total=int(all_totals.get("errors", 0)),
                requests_per_s=rps,
                p95_ms=p95,
                error_rate=error_rate,
            )
        )
    return out


class OverviewModel(PageModel):
    endpoints = param.List(default=[], item_type=EndpointSummary)
    runs = param.List(default=[], item_type=RunRecord)

    def load(self) -> None:
        super().load()
        self._refresh()

    def apply(self, update: Update) -> None:
        self._refresh(update.snapshot, update.totals)

    def _refresh(self, snapshot: Snapshot | None = None, totals: dict[str, Any] | None = None) -> None:
        snapshot = snapshot or self.feed.snapshot
        recent = {e.spec.name: self.feed.traffic(e.spec.name, RECENT_S) for e in snapshot.endpoints}
        self.set_if_changed(
            endpoints=summarise(snapshot, totals if totals is not None else self.feed.totals, recent),
            runs=list(snapshot.runs[:10]),
        )
