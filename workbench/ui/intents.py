"""Every action a person can take on an endpoint, written once for every UI that offers it.

The served dashboards, the notebook widgets and the JupyterLab extension each let someone deploy, start
a rollout, pause/resume/promote/abort it and roll back. Each action here is an *intent* (what was asked),
a :class:`~workbench.ui.plans.Preview` of it computed from what the person saw (``EndpointView``), and
``perform``: the call through ``workbench.Client``, sent with the revision the preview was made from so
a stale confirmation is refused (409) instead of changing something else. The UIs differ only in how
they ask and show; what runs is the same.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError as SpecError

from workbench.client import Client
from workbench.errors import ConflictError, NotFoundError, ValidationError, describe_validation_errors
from workbench.records.endpoints import EndpointRecord
from workbench.records.rollouts import RolloutRecord
from workbench.revisions.model import Revision
from workbench.specs.rollout import RolloutSpec, Strategy
from workbench.ui.plans import (
    ROLLOUT_ACTIONS,
    Preview,
    endpoint_routes,
    preview_deploy,
    preview_rollback,
    preview_rollout_action,
    preview_rollout_start,
    split_label,
)

STRATEGIES = tuple(s.value for s in Strategy)


@dataclass(frozen=True)
class Deploy:
    endpoint: str
    model: str
    version: int


@dataclass(frozen=True)
class StartRollout:
    endpoint: str
    model: str
    version: int
    strategy: str = Strategy.CANARY.value
    #: canary step weights in percent; empty: the default steps (or the ``options``' own)
    steps: tuple[float, ...] = ()
    #: further rollout spec fields (analysis, tick_s...), validated before the preview
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RolloutAction:
    endpoint: str
    action: str  # pause, resume, promote, abort


@dataclass(frozen=True)
class Rollback:
    endpoint: str
    to_revision: int | None = None
    force: bool = False


Intent = Deploy | StartRollout | RolloutAction | Rollback


@dataclass(frozen=True)
class EndpointView:
    """What the person saw of the endpoint when they asked: the preview is computed from this."""

    record: EndpointRecord | None
    rollout: RolloutRecord | None = None  # the active one
    history: Sequence[Revision] = ()  # newest first, as the API lists it
    rejected: Collection[tuple[str, int]] = ()


def read_view(client: Client, endpoint: str, *, for_rollback: bool = True) -> EndpointView:
    """The endpoint as the control plane has it now (``None`` record when it does not exist)."""
    try:
        record = client.get_endpoint(endpoint)
    except NotFoundError:
        return EndpointView(record=None)
    active = client.rollouts(endpoint=endpoint, active=True)
    if not for_rollback:
        return EndpointView(record=record, rollout=active[0] if active else None)
    return EndpointView(
        record=record,
        rollout=active[0] if active else None,
        history=client.history(endpoint),
        rejected={(r.model, r.version) for r in client.rejected_versions(endpoint)},
    )


def parse_steps(text: str) -> tuple[float, ...]:
    """``"5, 25, 50"`` → ``(5.0, 25.0, 50.0)``: increasing percentages strictly between 0 and 100."""
    try:
        weights = [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise ValidationError(f"canary steps must be numbers separated by commas, got {text!r}") from None
    if not weights or any(not 0 < w < 100 for w in weights) or weights != sorted(set(weights)):
        raise ValidationError("canary steps must be increasing percentages between 0 and 100, e.g. 5, 25, 50")
    return tuple(weights)


def rollout_spec(intent: StartRollout) -> RolloutSpec:
    if intent.strategy not in STRATEGIES:
        raise ValidationError(f"unknown strategy {intent.strategy!r}; choose one of {', '.join(STRATEGIES)}")
    fields: dict[str, Any] = {
        **intent.options,
        "endpoint": intent.endpoint,
        "candidate": f"models:/{intent.model}/{intent.version}",
        "strategy": intent.strategy,
    }
    if intent.steps and intent.strategy == Strategy.CANARY.value:
        fields["steps"] = [{"weight": w} for w in intent.steps]
    try:
        return RolloutSpec.model_validate(fields)
    except SpecError as exc:
        text, details = describe_validation_errors(exc.errors())
        raise ValidationError(f"invalid rollout: {text}", errors=details) from None


def _existing(view: EndpointView, endpoint: str) -> EndpointRecord:
    if view.record is None:
        raise NotFoundError(f"endpoint {endpoint!r} does not exist (any more)", endpoint=endpoint)
    return view.record


def preview(intent: Intent, view: EndpointView) -> Preview:
    """What the action will change, from what was seen; raises ``WorkbenchError`` when it cannot run."""
    if isinstance(intent, Deploy):
        return preview_deploy(view.record, intent.endpoint, intent.model, intent.version)
    record = _existing(view, intent.endpoint)
    if isinstance(intent, StartRollout):
        if view.rollout is not None:
            raise ConflictError(
                f"{intent.endpoint!r} already has an active rollout ({view.rollout.id})",
                rollout=view.rollout.id,
            )
        spec = rollout_spec(intent)
        weights = [step.weight for step in spec.steps] if spec.strategy == Strategy.CANARY else []
        return preview_rollout_start(
            record, intent.model, intent.version, strategy=spec.strategy, step_weights=weights
        )
    if isinstance(intent, RolloutAction):
        if intent.action not in ROLLOUT_ACTIONS:
            raise ValidationError(
                f"unknown rollout action {intent.action!r}; expected one of {', '.join(ROLLOUT_ACTIONS)}"
            )
        if view.rollout is None:
            raise ConflictError(f"{intent.endpoint!r} has no active rollout to {intent.action}")
        return preview_rollout_action(record, view.rollout, intent.action)
    # The planner refuses (ConflictError, NotFoundError) when there is nowhere to go back to.
    return preview_rollback(
        record,
        view.history,
        view.rejected,
        to_revision=intent.to_revision,
        force=intent.force,
        active_rollout=view.rollout,
    )


@dataclass(frozen=True)
class Outcome:
    message: str
    record: EndpointRecord | RolloutRecord | None = None


def perform(client: Client, intent: Intent, preview: Preview, *, reason: str | None = None) -> Outcome:
    """Do what ``preview`` showed, through ``client`` (so as its actor), refused if the endpoint moved on."""
    expected = preview.expected_revision
    if isinstance(intent, Deploy):
        options = {} if expected is None else {"expected_revision": expected}
        record = client.deploy(
            intent.endpoint, f"models:/{intent.model}/{intent.version}", reason=reason, **options
        )
        return Outcome(
            f"deployed models:/{intent.model}/{intent.version} on {record.spec.name}: "
            f"{split_label(endpoint_routes(record))} (revision {record.revision})",
            record,
        )
    if isinstance(intent, StartRollout):
        started = client.start_rollout(rollout_spec(intent), reason=reason, expected_revision=expected)
        return Outcome(
            f"started {started.strategy.replace('_', '-')} rollout {started.id} on {started.endpoint}: "
            f"{started.stable_model} v{started.stable_version} → {started.candidate_model} "
            f"v{started.candidate_version} ({started.phase.value})",
            started,
        )
    if isinstance(intent, RolloutAction):
        # the rollout shown in the preview, even if another one has started since
        if preview.rollout_id is None:
            raise ValidationError("a rollout action's preview names no rollout")
        after = client.rollout_action(preview.rollout_id, intent.action, reason=reason)
        return Outcome(
            f"{intent.action}: rollout {after.id} is now {after.phase.value.replace('_', ' ')}", after
        )
    result = client.rollback(
        intent.endpoint,
        to_revision=intent.to_revision,
        force=intent.force,
        expected_revision=expected,
        reason=reason,
    )
    return Outcome(result.message, result.endpoint)
