"""What an action will change, said before it runs: the confirmation every button shows.

Pure functions of what the page already read (the endpoint, its history, its active rollout): no I/O,
so a dashboard, a notebook widget and the JupyterLab extension preview an action the same way, and a
test can check the preview without a server. Each preview carries the revision it was computed from;
the action is then sent with that revision as ``expected_revision`` where the API takes one, so a page
that confirmed something stale gets a 409 instead of changing a different state than it showed.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from workbench.records.endpoints import EndpointRecord
from workbench.records.rollouts import RolloutRecord
from workbench.revisions.model import Revision
from workbench.revisions.plan import plan_rollback
from workbench.specs.rollout import DEFAULT_STEPS, Strategy

ROLLOUT_ACTIONS = ("pause", "resume", "promote", "abort")


@dataclass(frozen=True)
class Preview:
    """``routes_before`` → ``routes_after`` as a person reads them, and what else the action does."""

    action: str
    endpoint: str
    routes_before: str
    routes_after: str
    detail: str
    expected_revision: int | None
    to_revision: int | None = None
    rollout_id: str | None = None  # the rollout a pause/resume/promote/abort acts on: the one shown

    @property
    def changes_traffic(self) -> bool:
        return self.routes_before != self.routes_after

    def text(self) -> str:
        arrow = f"{self.routes_before} → {self.routes_after}" if self.changes_traffic else self.routes_before
        lines = [f"{self.action} on {self.endpoint}", f"traffic: {arrow}"]
        if not self.changes_traffic:
            lines[-1] += " (unchanged)"
        if self.detail:
            lines.append(self.detail)
        return "\n".join(lines)


def split_label(routes: Sequence[tuple[str, int, float]]) -> str:
    """``churn v1 95% / v2 5%``: the model named once per run of routes to it."""
    parts: list[str] = []
    previous_model = None
    for model, version, weight in sorted(routes, key=lambda r: (-r[2], r[0], r[1])):
        if weight <= 0:
            continue
        name = f"v{version}" if model == previous_model else f"{model} v{version}"
        parts.append(f"{name} {weight:g}%")
        previous_model = model
    return " / ".join(parts) or "no traffic"


def endpoint_routes(record: EndpointRecord | None) -> tuple[tuple[str, int, float], ...]:
    if record is None:
        return ()
    return tuple((r.model, r.version, r.weight) for r in record.spec.routes if r.weight > 0)


def preview_deploy(record: EndpointRecord | None, endpoint: str, model: str, version: int) -> Preview:
    """A deploy sends all traffic to one version (creating the endpoint when there is none)."""
    before = endpoint_routes(record)
    detail = "creates the endpoint" if record is None else "replaces every route; shadows are removed"
    return Preview(
        action="deploy",
        endpoint=endpoint,
        routes_before=split_label(before) if record is not None else "(no endpoint)",
        routes_after=split_label([(model, version, 100.0)]),
        detail=detail,
        expected_revision=record.revision if record is not None else None,
    )


def preview_rollout_start(
    record: EndpointRecord,
    candidate_model: str,
    candidate_version: int,
    *,
    strategy: Strategy | str = Strategy.CANARY,
    step_weights: Sequence[float] | None = None,
) -> Preview:
    """The first traffic change the rollout makes, and where it goes after that."""
    strategy = Strategy(strategy)
    before = endpoint_routes(record)
    candidate = (candidate_model, candidate_version)
    if strategy == Strategy.SHADOW:
        after = before
        detail = (
            f"{candidate_model} v{candidate_version} receives a mirror of live traffic; answers unchanged"
        )
    elif strategy == Strategy.BLUE_GREEN:
        after = ((candidate_model, candidate_version, 100.0),)
        detail = "switches all traffic at once after the candidate is warm; the old version stays warm"
    else:
        weights = list(step_weights) if step_weights else [s.weight for s in DEFAULT_STEPS]
        first = weights[0]
        stable = [(m, v, w * (100.0 - first) / 100.0) for m, v, w in before if (m, v) != candidate]
        after = (*stable, (candidate_model, candidate_version, first))
        steps = " → ".join(f"{w:g}%" for w in [*weights, 100.0])
        detail = f"canary steps {steps}, each checked by the analysis before the next"
    return Preview(
        action=f"start {strategy.value.replace('_', '-')} rollout",
        endpoint=record.spec.name,
        routes_before=split_label(before),
        routes_after=split_label(after),
        detail=detail,
        expected_revision=record.revision,
    )


def preview_rollout_action(record: EndpointRecord, rollout: RolloutRecord, action: str) -> Preview:
    """Pause and resume keep the split; promote sends everything to the candidate; abort to the stable."""
    if action not in ROLLOUT_ACTIONS:
        raise ValueError(f"unknown rollout action {action!r}; expected one of {', '.join(ROLLOUT_ACTIONS)}")
    before = endpoint_routes(record)
    after = before
    detail = {
        "pause": "the controller stops moving traffic until resumed",
        "resume": "the controller goes on from the current step",
        "promote": "ends the rollout; the candidate takes all traffic",
        "abort": "ends the rollout; the stable version takes all traffic back",
    }[action]
    if action == "promote":
        after = ((rollout.candidate_model, rollout.candidate_version, 100.0),)
    elif action == "abort":
        after = ((rollout.stable_model, rollout.stable_version, 100.0),)
    return Preview(
        action=f"{action} rollout {rollout.id}",
        endpoint=rollout.endpoint,
        routes_before=split_label(before),
        routes_after=split_label(after),
        detail=detail,
        expected_revision=record.revision,
        rollout_id=rollout.id,
    )


def preview_rollback(
    record: EndpointRecord,
    history: Sequence[Revision],
    rejected: Collection[tuple[str, int]],
    *,
    to_revision: int | None = None,
    force: bool = False,
    active_rollout: RolloutRecord | None = None,
) -> Preview:
    """The planner's target (or ``to_revision``), exactly as the control plane will compute it.

    With a rollout in progress (and no explicit revision), a rollback aborts it: the stable version
    takes all traffic back, as the control plane does.

    ``history`` may come newest first (as the API lists it); the planner wants it oldest first.
    Raises what the planner raises: nowhere to go, an unknown revision, a rejected version without force.
    """
    if active_rollout is not None and to_revision is None:
        aborted = preview_rollout_action(record, active_rollout, "abort")
        return Preview(
            action="roll back",
            endpoint=record.spec.name,
            routes_before=aborted.routes_before,
            routes_after=aborted.routes_after,
            detail=f"aborts rollout {active_rollout.id} of {active_rollout.candidate_model} "
            f"v{active_rollout.candidate_version}",
            expected_revision=record.revision,
        )
    ordered = sorted(history, key=lambda r: r.revision)
    plan = plan_rollback(ordered, rejected, to_revision=to_revision, force=force)
    before = endpoint_routes(record)
    after = plan.target.routes if plan.target is not None else before
    return Preview(
        action="roll back",
        endpoint=record.spec.name,
        routes_before=split_label(before),
        routes_after=split_label(after),
        detail=plan.message,
        expected_revision=plan.from_revision,
        to_revision=plan.target.revision if plan.target is not None else None,
    )
