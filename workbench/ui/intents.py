"""Every action a person can take on an endpoint, written once for every UI that offers it.

The served dashboards, the notebook widgets and the JupyterLab extension each let someone deploy, start
a rollout, pause/resume/promote/abort it and roll back, and pause, resume, conclude an endpoint's A/B
experiment or promote its winner. Each action here is an *intent* (what was asked), a
:class:`~workbench.ui.plans.Preview` of it computed from what the person saw (``EndpointView``, or
``ExperimentView`` for an experiment), and ``perform``: the call through ``workbench.Client``, sent with
the revision the preview was made from so a stale confirmation is refused (409) instead of changing
something else. The UIs differ only in how they ask and show; what runs is the same.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError as SpecError

from workbench.client import Client
from workbench.errors import ConflictError, NotFoundError, ValidationError, describe_validation_errors
from workbench.records.endpoints import EndpointRecord
from workbench.records.experiments import ExperimentRecord, ExperimentState
from workbench.records.rollouts import RolloutRecord
from workbench.revisions.model import Revision
from workbench.specs.rollout import DEFAULT_STEPS, RolloutSpec, Strategy
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
EXPERIMENT_ACTIONS = ("pause", "resume", "conclude", "promote")
#: How a promoted winner is rolled out.
PROMOTE_STRATEGIES = (Strategy.CANARY.value, Strategy.BLUE_GREEN.value)
_ACTIVE = (ExperimentState.RUNNING, ExperimentState.PAUSED)
Route = tuple[str, int, float]


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


@dataclass(frozen=True)
class ExperimentAction:
    """An action on an endpoint's A/B experiment.

    ``experiment`` None: the endpoint's running or paused one (to promote: else its newest concluded
    one), as :func:`read_experiment_view` finds it. ``variant``: the winner a promote rolls out. Both are
    named by :func:`pin` from what the preview showed, so what runs is what was read; a promote with no
    winner shown leaves ``variant`` None, and the control plane's own fresh look decides (or refuses)."""

    endpoint: str
    action: str  # pause, resume, conclude, promote
    experiment: str | None = None
    variant: str | None = None
    strategy: str = Strategy.CANARY.value  # a promote's rollout: canary or blue_green


Intent = Deploy | StartRollout | RolloutAction | Rollback | ExperimentAction


@dataclass(frozen=True)
class EndpointView:
    """What the person saw of the endpoint when they asked: the preview is computed from this."""

    record: EndpointRecord | None
    rollout: RolloutRecord | None = None  # the active one
    history: Sequence[Revision] = ()  # newest first, as the API lists it
    rejected: Collection[tuple[str, int]] = ()


@dataclass(frozen=True)
class ExperimentView:
    """What the person saw of an A/B experiment and its endpoint: an experiment action's preview is
    computed from this."""

    record: ExperimentRecord
    endpoint: EndpointRecord | None
    #: the latest decision shown (a concluded experiment's: the one that ended it); empty before a look
    decision: Mapping[str, Any] = field(default_factory=dict)
    #: the decision is a look taken for this preview: a promote without a winner is refused at once,
    #: rather than confirmed and left to the control plane's own fresh look (a page's may be seconds old)
    fresh: bool = False


View = EndpointView | ExperimentView


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


@dataclass(frozen=True)
class Outcome:
    message: str
    #: the endpoint or rollout as the action left it (None for an experiment's)
    record: EndpointRecord | RolloutRecord | None = None


# --------------------------------------------------------------------------------- A/B experiments
def read_experiment_view(client: Client, intent: ExperimentAction) -> ExperimentView:
    """The experiment asked for (or the endpoint's running or paused one; to promote, else its newest
    concluded one) with a look taken now, and its endpoint as the control plane has them."""
    _check_experiment_action(intent)
    status = client.experiment(_experiment_name(client, intent))
    record = ExperimentRecord.model_validate(status["experiment"])
    # A concluded experiment is judged by the decision that ended it, as the control plane promotes it.
    final = record.decision if record.state == ExperimentState.CONCLUDED else None
    decision = final if final is not None else status["decision"]
    return ExperimentView(record, client.get_endpoint(record.endpoint), decision or {}, fresh=True)


def _experiment_name(client: Client, intent: ExperimentAction) -> str:
    if intent.experiment is not None:
        return intent.experiment
    found = client.experiments(endpoint=intent.endpoint)  # oldest first
    active = [e for e in found if e.state in _ACTIVE]
    concluded = [e for e in found if e.state == ExperimentState.CONCLUDED]
    if active:
        return active[-1].name
    if intent.action == "promote" and concluded:
        return concluded[-1].name
    raise ConflictError(
        f"endpoint {intent.endpoint!r} has no running or paused experiment to {intent.action}",
        endpoint=intent.endpoint,
    )


def pin(intent: ExperimentAction, view: ExperimentView) -> ExperimentAction:
    """``intent`` naming the experiment seen and, to promote, the winner shown (None when none is)."""
    variant = intent.variant
    if intent.action == "promote" and variant is None:
        winner = view.decision.get("winner")
        variant = str(winner) if winner in {v.name for v in view.record.spec.variants} else None
    return replace(intent, experiment=view.record.name, variant=variant)


def _check_experiment_action(intent: ExperimentAction) -> None:
    if intent.action not in EXPERIMENT_ACTIONS:
        raise ValidationError(
            f"unknown experiment action {intent.action!r}; expected one of {', '.join(EXPERIMENT_ACTIONS)}"
        )
    if intent.action == "promote" and intent.strategy not in PROMOTE_STRATEGIES:
        raise ValidationError(
            f"unknown strategy {intent.strategy!r} to promote; choose one of {', '.join(PROMOTE_STRATEGIES)}"
        )


def _weighted(routes: Sequence[Mapping[str, Any]] | None) -> tuple[Route, ...]:
    return tuple(
        (str(r.get("model")), int(r.get("version") or 0), float(r.get("weight") or 0.0))
        for r in routes or ()
        if float(r.get("weight") or 0.0) > 0
    )


def _verdict(decision: Mapping[str, Any]) -> str:
    verdict, reason = decision.get("verdict"), decision.get("reason")
    if not verdict:
        return "no look yet"
    return f"{verdict}: {reason}" if reason else str(verdict)


def _preview_experiment(intent: ExperimentAction, view: ExperimentView) -> Preview:
    """The endpoint's traffic before → after the action, and the decision behind it; refused (with the
    reason) when the experiment's state does not allow it."""
    _check_experiment_action(intent)
    record, decision = view.record, view.decision
    name, state = record.name, record.state
    if record.endpoint != intent.endpoint:
        raise ValidationError(
            f"experiment {name!r} runs on {record.endpoint!r}, not on {intent.endpoint!r}", experiment=name
        )
    current = endpoint_routes(view.endpoint)
    before = split_label(current) if view.endpoint is not None else f"(no endpoint named {record.endpoint})"
    # What the endpoint serves once the experiment lets go of its traffic: a running one gives the routes
    # it found back; a paused or concluded one already has.
    baseline = _weighted(record.baseline)
    gives_back = state == ExperimentState.RUNNING and bool(baseline)
    released, released_label = (baseline, split_label(baseline)) if gives_back else (current, before)

    def shown(action: str, after: str, detail: str) -> Preview:
        # expected_revision is the experiment's: a resume is refused if it moved on meanwhile
        return Preview(action, record.endpoint, before, after, detail, expected_revision=record.revision)

    if intent.action == "pause":
        if state != ExperimentState.RUNNING:
            raise ConflictError(
                f"experiment {name!r} is {state.value}: only a running one pauses", state=state.value
            )
        return shown(
            f"pause experiment {name}",
            released_label,
            "stops assigning units and gives the routes it found back; outcomes of assigned units are "
            "still joined, and resume takes the traffic again",
        )
    if intent.action == "resume":
        if state != ExperimentState.PAUSED:
            raise ConflictError(
                f"experiment {name!r} is {state.value}: only a paused one resumes", state=state.value
            )
        unit = "routing key" if record.spec.unit == "key" else "request"
        return shown(
            f"resume experiment {name}",
            split_label([(v.model, v.version, v.weight) for v in record.spec.variants]),
            f"routes the variants at their weights again; new units are assigned, sticky per {unit}",
        )
    if intent.action == "conclude":
        if state not in _ACTIVE:
            raise ConflictError(
                f"experiment {name!r} is {state.value}: it cannot be concluded", state=state.value
            )
        return shown(
            f"conclude experiment {name}",
            released_label,
            f"ends it for good with the decision of a last look (the latest: {_verdict(decision)}); "
            "it cannot be resumed",
        )
    # promote
    how = intent.strategy.replace("_", "-")
    if state == ExperimentState.DRAFT:
        raise ConflictError(
            f"experiment {name!r} is a draft: it has no results to promote", state=state.value
        )
    winner = pin(intent, view).variant
    target = next((v for v in record.spec.variants if v.name == winner), None)
    if winner is not None and target is None:
        raise ValidationError(f"experiment {name!r} has no variant {winner!r}", experiment=name)
    if target is None:
        if view.fresh or state == ExperimentState.CONCLUDED:  # a look taken now, or the final one
            raise ConflictError(
                f"experiment {name!r} has no winner to promote (its last look: {_verdict(decision)})",
                verdict=decision.get("verdict"),
            )
        return shown(
            f"promote experiment {name} ({how})",
            before,
            f"the latest look has no winner ({_verdict(decision)}): the control plane takes a fresh look "
            "and refuses unless it finds one; nothing changes then",
        )
    candidate = (target.model, target.version)
    stable = [(m, v, w) for m, v, w in released if (m, v) != candidate]
    if intent.strategy == Strategy.CANARY.value:
        # the canary's first step, from the released routes (as plans.preview_rollout_start computes it)
        first = DEFAULT_STEPS[0].weight
        after: list[Route] = [
            *((m, v, w * (100.0 - first) / 100.0) for m, v, w in stable),
            (*candidate, first),
        ]
        steps = " → ".join(f"{s.weight:g}%" for s in DEFAULT_STEPS)
        rollout = f"a canary rollout of it: {steps} → 100%, each step checked by the analysis"
    else:
        after = [(*candidate, 100.0)]
        rollout = "a blue-green switch to it once it is warm"
    concludes = "" if state == ExperimentState.CONCLUDED else f"concludes it ({released_label}), then "
    return shown(
        f"promote {winner} of experiment {name} ({how})",
        split_label(after),
        f"{winner} ({target.model} v{target.version}) won: {decision.get('reason')}. "
        f"Promoting {concludes}starts {rollout}",
    )


def _perform_experiment(
    client: Client, intent: ExperimentAction, preview: Preview, reason: str | None
) -> Outcome:
    name = intent.experiment
    if name is None:
        raise ValidationError("an experiment action's preview names no experiment")
    if intent.action == "promote":
        # the winner the preview showed (None: none was, and the control plane's fresh look decides)
        variant = intent.variant
        why = f"promoting {f'{variant}, ' if variant else ''}the winner of experiment {name}"
        promoted = client.promote_experiment(
            name, strategy=intent.strategy, variant=variant, reason=f"{reason}: {why}" if reason else None
        )
        rollout = promoted["rollout"]
        return Outcome(
            f"promoted {variant or 'the winner'} of experiment {name}: {intent.strategy.replace('_', '-')} "
            f"rollout {rollout['id']} of {rollout['candidate_model']} v{rollout['candidate_version']} "
            f"started on {intent.endpoint} ({rollout['phase']})"
        )
    expected = preview.expected_revision if intent.action == "resume" else None  # the API takes it there
    after = client.experiment_action(name, intent.action, reason=reason, expected_revision=expected)
    routes = split_label(endpoint_routes(client.get_endpoint(after.endpoint)))
    done = {"pause": "paused", "resume": "resumed", "conclude": "concluded"}[intent.action]
    verdict = f" ({after.decision.get('verdict')})" if intent.action == "conclude" and after.decision else ""
    return Outcome(f"{done} experiment {name}{verdict}; {after.endpoint} serves {routes}")


# ------------------------------------------------------------------------------- every intent
def preview(intent: Intent, view: View) -> Preview:
    """What the action will change, from what was seen; raises ``WorkbenchError`` when it cannot run."""
    if isinstance(intent, ExperimentAction):
        if not isinstance(view, ExperimentView):
            raise TypeError("an experiment action is previewed from an ExperimentView")
        return _preview_experiment(intent, view)
    if not isinstance(view, EndpointView):
        raise TypeError("an endpoint action is previewed from an EndpointView")
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


def perform(client: Client, intent: Intent, preview: Preview, *, reason: str | None = None) -> Outcome:
    """Do what ``preview`` showed, through ``client`` (so as its actor), refused if the endpoint moved on."""
    if isinstance(intent, ExperimentAction):
        return _perform_experiment(client, intent, preview, reason)
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
