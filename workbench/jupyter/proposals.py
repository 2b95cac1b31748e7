"""An action as the browser asks for it, its preview, and the confirmation that carries it out.

Preview and confirmation are two requests: the preview is computed here from the control plane's
current state and kept under an id, bound to the Jupyter user who asked; confirming names that id (and
an idempotency key), so what runs is exactly what the person read, even if the page has moved on. Kept
in memory for ``KEEP_S``: a confirmation after a restart of Jupyter is refused and previewed again.

The endpoint actions are the shared intents of ``workbench.ui.intents``; an A/B experiment's actions
(pause, resume, conclude, promote its winner) are previewed and performed here, the same way: the
preview names the experiment and the winner it read, and the confirmation acts on exactly those.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic import ValidationError as SpecError

from workbench.client import Client
from workbench.errors import ConflictError, NotFoundError, ValidationError, describe_validation_errors
from workbench.records.experiments import ExperimentRecord, ExperimentState
from workbench.specs.rollout import DEFAULT_STEPS
from workbench.ui import intents
from workbench.ui.plans import Preview, endpoint_routes, split_label

#: How long a preview can be confirmed.
KEEP_S = 600.0
_NAME = Field(min_length=1, max_length=128)


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    endpoint: str = _NAME


class DeployAsk(_Base):
    kind: Literal["deploy"]
    model: str = _NAME
    version: int = Field(ge=1)


class RolloutAsk(_Base):
    kind: Literal["rollout"]
    model: str = _NAME
    version: int = Field(ge=1)
    strategy: Literal["canary", "blue_green", "shadow"] = "canary"
    steps: str | list[float] = "5, 25, 50"


class RolloutActionAsk(_Base):
    kind: Literal["rollout_action"]
    action: Literal["pause", "resume", "promote", "abort"]


class RollbackAsk(_Base):
    kind: Literal["rollback"]
    to_revision: int | None = Field(default=None, ge=1)
    force: bool = False


class ExperimentActionAsk(_Base):
    kind: Literal["experiment_action"]
    action: Literal["pause", "resume", "conclude", "promote"]
    #: the experiment the card shows; None: the endpoint's running or paused one (or, to promote, the
    #: newest concluded one)
    experiment: str | None = Field(default=None, min_length=1, max_length=63)


Ask = Annotated[
    DeployAsk | RolloutAsk | RolloutActionAsk | RollbackAsk | ExperimentActionAsk,
    Field(discriminator="kind"),
]
_ASK = TypeAdapter(Ask)

EXPERIMENT_ACTIONS = ("pause", "resume", "conclude", "promote")


@dataclass(frozen=True)
class ExperimentAction:
    """An action on an endpoint's A/B experiment; once previewed, it names the experiment and, to
    promote, the winner the preview showed (what runs is what was read)."""

    endpoint: str
    action: str  # pause, resume, conclude, promote
    experiment: str | None = None
    variant: str | None = None


Action = intents.Intent | ExperimentAction


def parse_ask(body: Any) -> Action:
    """The browser's JSON → an intent; a clear 422 for anything else."""
    try:
        ask = _ASK.validate_python(body)
    except SpecError as exc:
        message, details = describe_validation_errors(exc.errors())
        raise ValidationError(f"invalid action: {message}", errors=details) from None
    if isinstance(ask, DeployAsk):
        return intents.Deploy(ask.endpoint, ask.model, ask.version)
    if isinstance(ask, RolloutAsk):
        steps: tuple[float, ...] = ()
        if ask.strategy == "canary":
            text = ask.steps if isinstance(ask.steps, str) else ", ".join(f"{w:g}" for w in ask.steps)
            steps = intents.parse_steps(text)
        return intents.StartRollout(ask.endpoint, ask.model, ask.version, ask.strategy, steps)
    if isinstance(ask, RolloutActionAsk):
        return intents.RolloutAction(ask.endpoint, ask.action)
    if isinstance(ask, ExperimentActionAsk):
        return ExperimentAction(ask.endpoint, ask.action, ask.experiment)
    return intents.Rollback(ask.endpoint, ask.to_revision, ask.force)


# --------------------------------------------------------------------------------- A/B experiments
def _experiment_name(client: Client, ask: ExperimentAction) -> str:
    """The experiment asked for, or the endpoint's running or paused one (to promote: else its newest
    concluded one)."""
    if ask.experiment is not None:
        return ask.experiment
    found = client.experiments(endpoint=ask.endpoint)  # oldest first
    active = [e for e in found if e.state in (ExperimentState.RUNNING, ExperimentState.PAUSED)]
    concluded = [e for e in found if e.state == ExperimentState.CONCLUDED]
    if active:
        return active[-1].name
    if ask.action == "promote" and concluded:
        return concluded[-1].name
    raise ConflictError(
        f"endpoint {ask.endpoint!r} has no running or paused experiment to {ask.action}",
        endpoint=ask.endpoint,
    )


Routes = list[tuple[str, int, float]]


def _routes(routes: Any) -> Routes:
    return [(str(r["model"]), int(r["version"]), float(r["weight"])) for r in routes or () if r["weight"]]


def preview_experiment_action(client: Client, ask: ExperimentAction) -> tuple[ExperimentAction, Preview]:
    """The experiment's action as it will run (the experiment and, to promote, its winner named), and
    what it changes: the endpoint's traffic before → after, and the decision behind it."""
    if ask.action not in EXPERIMENT_ACTIONS:
        raise ValidationError(
            f"unknown experiment action {ask.action!r}; expected one of {', '.join(EXPERIMENT_ACTIONS)}"
        )
    status = client.experiment(_experiment_name(client, ask))
    record = ExperimentRecord.model_validate(status["experiment"])
    name, state = record.name, record.state
    if record.endpoint != ask.endpoint:
        raise ValidationError(
            f"experiment {name!r} runs on {record.endpoint!r}, not on {ask.endpoint!r}", experiment=name
        )
    # A concluded experiment is judged by the decision that ended it, as the control plane promotes it.
    decision: dict[str, Any] = (
        record.decision
        if state == ExperimentState.CONCLUDED and record.decision is not None
        else status["decision"]
    )
    verdict = f"{decision.get('verdict')}: {decision.get('reason')}"
    current: Routes = list(endpoint_routes(client.get_endpoint(record.endpoint)))
    # What the endpoint serves once the experiment lets go of its traffic (a running one gives the
    # baseline back; a paused one has already).
    released = _routes(record.baseline) if state == ExperimentState.RUNNING and record.baseline else current
    before = split_label(current)
    variants = split_label(_routes([v.model_dump() for v in record.spec.variants]))
    resolved = ExperimentAction(record.endpoint, ask.action, name)
    if ask.action == "pause":
        if state != ExperimentState.RUNNING:
            raise ConflictError(
                f"experiment {name!r} is {state.value}: only a running one pauses", state=state.value
            )
        after = split_label(released)
        detail = "stops assigning units (outcomes of assigned units still count); resume takes the split back"
    elif ask.action == "resume":
        if state != ExperimentState.PAUSED:
            raise ConflictError(
                f"experiment {name!r} is {state.value}: only a paused one resumes", state=state.value
            )
        after = variants
        detail = (
            f"assigns units again (sticky per {'routing key' if record.spec.unit == 'key' else 'request'})"
        )
    elif ask.action == "conclude":
        if state not in (ExperimentState.RUNNING, ExperimentState.PAUSED):
            raise ConflictError(
                f"experiment {name!r} is {state.value}: it cannot be concluded", state=state.value
            )
        after = split_label(released)
        detail = f"ends it for good with a last look's decision (now {verdict})"
    else:
        winner = decision.get("winner")
        if not winner:
            raise ConflictError(
                f"experiment {name!r} has no winner to promote (its last look: {verdict})",
                verdict=decision.get("verdict"),
            )
        target = next(v for v in record.spec.variants if v.name == winner)
        # The canary's first step, from the released routes (as plans.preview_rollout_start computes it).
        first = DEFAULT_STEPS[0].weight
        stable = [
            (m, v, w * (100.0 - first) / 100.0)
            for m, v, w in released
            if (m, v) != (target.model, target.version)
        ]
        after = split_label([*stable, (target.model, target.version, first)])
        steps = " → ".join(f"{s.weight:g}%" for s in DEFAULT_STEPS)
        conclude = (
            "" if state == ExperimentState.CONCLUDED else f"concludes it ({split_label(released)}), then "
        )
        detail = (
            f"{winner} ({target.model} v{target.version}) won: {decision.get('reason')}. "
            f"Promoting {conclude}starts a canary rollout of it: {steps} → 100%, each step checked by "
            "the analysis"
        )
        resolved = ExperimentAction(record.endpoint, ask.action, name, winner)
    label = "promote the winner of" if ask.action == "promote" else ask.action
    return resolved, Preview(
        action=f"{label} experiment {name}",
        endpoint=record.endpoint,
        routes_before=before,
        routes_after=after,
        detail=detail,
        expected_revision=record.revision,  # the experiment's: a resume is refused if it moved on
    )


def perform_experiment_action(
    client: Client, action: ExperimentAction, preview: Preview, *, reason: str
) -> str:
    """Do what the preview showed, through ``client`` (so as its actor); returns what happened."""
    name = action.experiment
    if name is None:
        raise ValidationError("an experiment action's preview names no experiment")
    if action.action == "promote":
        if action.variant is None:
            raise ValidationError("a promotion's preview names no winner")
        promoted = client.promote_experiment(
            name,
            strategy="canary",
            variant=action.variant,
            reason=f"{reason}: promoting {action.variant}, the winner of experiment {name}",
        )
        rollout = promoted["rollout"]
        return (
            f"promoted {action.variant} of experiment {name}: canary rollout {rollout['id']} of "
            f"{rollout['candidate_model']} v{rollout['candidate_version']} started ({rollout['phase']})"
        )
    expected = preview.expected_revision if action.action == "resume" else None
    after = client.experiment_action(name, action.action, reason=reason, expected_revision=expected)
    routes = split_label(endpoint_routes(client.get_endpoint(after.endpoint)))
    done = {"pause": "paused", "resume": "resumed", "conclude": "concluded"}[action.action]
    verdict = f" ({after.decision.get('verdict')})" if action.action == "conclude" and after.decision else ""
    return f"{done} experiment {name}{verdict}; {after.endpoint} serves {routes}"


@dataclass(frozen=True)
class Proposal:
    id: str
    user: str
    intent: Action
    preview: Preview
    created: float

    def public(self) -> dict[str, Any]:
        return {
            "proposal": self.id,
            "preview": {**asdict(self.preview), "changes_traffic": self.preview.changes_traffic},
            "expires_in_s": max(0.0, KEEP_S - (time.time() - self.created)),
        }


class Proposals:
    def __init__(self) -> None:
        self._held: dict[str, Proposal] = {}
        self._lock = threading.Lock()

    def add(self, user: str, intent: Action, preview: Preview) -> Proposal:
        proposal = Proposal(secrets.token_hex(12), user, intent, preview, time.time())
        with self._lock:
            self._forget_old()
            self._held[proposal.id] = proposal
        return proposal

    def get(self, proposal_id: str, user: str) -> Proposal:
        with self._lock:
            self._forget_old()
            proposal = self._held.get(proposal_id)
        if proposal is None or proposal.user != user:  # another user's id is as unknown as a wrong one
            raise NotFoundError(
                "this confirmation has expired or is unknown: preview the action again", proposal=proposal_id
            )
        return proposal

    def _forget_old(self) -> None:
        cutoff = time.time() - KEEP_S
        for key in [k for k, p in self._held.items() if p.created < cutoff]:
            del self._held[key]
