"""An action as the browser asks for it, its preview, and the confirmation that carries it out.

Preview and confirmation are two requests: the preview is computed here from the control plane's
current state and kept under an id, bound to the Jupyter user who asked; confirming names that id (and
an idempotency key), so what runs is exactly what the person read, even if the page has moved on. Kept
in memory for ``KEEP_S``: a confirmation after a restart of Jupyter is refused and previewed again.

Every action is a shared intent of ``workbench.ui.intents``, previewed and performed as the dashboards do
it. An A/B experiment's (pause, resume, conclude, promote its winner) is previewed from a look taken
now and pinned to the experiment and the winner it showed, so the confirmation acts on exactly those.
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
from workbench.errors import NotFoundError, ValidationError, describe_validation_errors
from workbench.ui import intents
from workbench.ui.plans import Preview

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

#: The intent of an A/B experiment's action (the handlers tell it from the endpoint intents by its class).
ExperimentAction = intents.ExperimentAction


def parse_ask(body: Any) -> intents.Intent:
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
        return intents.ExperimentAction(ask.endpoint, ask.action, ask.experiment)
    return intents.Rollback(ask.endpoint, ask.to_revision, ask.force)


# --------------------------------------------------------------------------------- A/B experiments
def preview_experiment_action(
    client: Client, ask: intents.ExperimentAction
) -> tuple[intents.ExperimentAction, Preview]:
    """The shared intent's preview from the experiment as the control plane has it now (a look taken for
    it), and the intent pinned to what it showed: the experiment and, to promote, its winner."""
    view = intents.read_experiment_view(client, ask)
    pinned = intents.pin(ask, view)
    return pinned, intents.preview(pinned, view)


def perform_experiment_action(
    client: Client, action: intents.ExperimentAction, preview: Preview, *, reason: str
) -> str:
    """The shared intent, performed through ``client`` (so as its actor); returns what happened."""
    return intents.perform(client, action, preview, reason=reason).message


@dataclass(frozen=True)
class Proposal:
    id: str
    user: str
    intent: intents.Intent
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

    def add(self, user: str, intent: intents.Intent, preview: Preview) -> Proposal:
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
