"""What the dashboard feed hands to pages: the present state (a snapshot) and each poll's news (an update).

Frozen records only, so a page can keep one and compare it with the next without copying.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workbench.records.audit import AuditEvent
from workbench.records.endpoints import EndpointRecord
from workbench.records.experiments import ExperimentRecord, ExperimentState
from workbench.records.monitoring import AlertEvent, AlertRuleRecord, MonitorRecord
from workbench.records.optimizations import OptimizationRecord
from workbench.records.rollouts import RolloutAnalysis, RolloutRecord
from workbench.records.runbooks import RunRecord
from workbench.revisions.model import Revision


@dataclass(frozen=True)
class Snapshot:
    """Everything a page shows that is not a time series, as of ``at``."""

    at: float = 0.0
    endpoints: tuple[EndpointRecord, ...] = ()
    rollouts: tuple[RolloutRecord, ...] = ()  # newest first
    rollout_details: dict[str, dict[str, Any]] = field(default_factory=dict)  # active rollouts' events
    rules: tuple[AlertRuleRecord, ...] = ()
    alerts: tuple[AlertEvent, ...] = ()  # newest first
    monitors: tuple[MonitorRecord, ...] = ()
    runs: tuple[RunRecord, ...] = ()  # newest first
    replicas: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # endpoint -> replicas
    models: tuple[str, ...] = ()
    #: model -> (label, version) choices for the forms, newest first, aliases named ("v3 @champion")
    model_versions: dict[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    histories: dict[str, tuple[Revision, ...]] = field(default_factory=dict)  # endpoint -> newest first
    experiments: tuple[ExperimentRecord, ...] = ()  # newest first, each with its latest decision
    #: experiment -> its kept looks, oldest first (the active ones and the five newest)
    experiment_looks: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    #: optimisations asked of any version, newest first: each endpoint page's variants table is read from it
    optimizations: tuple[OptimizationRecord, ...] = ()
    error: str | None = None  # the control plane could not be read at the last poll

    def endpoint(self, name: str) -> EndpointRecord | None:
        return next((e for e in self.endpoints if e.spec.name == name), None)

    def active_experiment(self, endpoint: str) -> ExperimentRecord | None:
        """The endpoint's running or paused experiment (it holds the endpoint's traffic)."""
        return next(
            (
                e
                for e in self.experiments
                if e.endpoint == endpoint and e.state in (ExperimentState.RUNNING, ExperimentState.PAUSED)
            ),
            None,
        )

    def active_rollout(self, endpoint: str) -> RolloutRecord | None:
        return next((r for r in self.rollouts if r.endpoint == endpoint and is_active(r)), None)

    def firing(self, endpoint: str | None = None) -> list[AlertRuleRecord]:
        monitors = {m.spec.name: m.spec.endpoint for m in self.monitors}
        return [
            rule
            for rule in self.rules
            if rule.state.get("state") == "firing"
            and (endpoint is None or monitors.get(rule.spec.monitor) == endpoint)
        ]


def is_active(rollout: RolloutRecord) -> bool:
    return rollout.phase.is_active


@dataclass(frozen=True)
class Update:
    """What one poll brought: new sealed seconds per endpoint and key, running totals, and the state."""

    seq: int
    snapshot: Snapshot
    changed: frozenset[str]  # "state" when the snapshot was re-read, "audit" when events arrived
    traffic: dict[str, dict[str, dict[str, list[Any]]]]  # endpoint -> key -> columns (new points only)
    totals: dict[str, dict[str, dict[str, int]]]
    audit: tuple[AuditEvent, ...] = ()  # new events, oldest first
    analyses: dict[str, tuple[RolloutAnalysis, ...]] = field(default_factory=dict)  # rollout -> new ticks
    monitor_points: dict[str, dict[str, dict[str, dict[str, list[Any]]]]] = field(default_factory=dict)


Listener = Callable[[Update], None]
