"""What a revision and a rejection are; shared by the store, the planner, the API and the client."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from workbench.records.endpoints import EndpointRecord
from workbench.specs.endpoint import EndpointSpec


class RevisionCause(StrEnum):
    """Why the traffic changed; the planner treats ``rollout_step`` revisions as transitional."""

    DEPLOY = "deploy"
    ROLLOUT_STEP = "rollout_step"
    PROMOTE = "promote"
    AUTOMATIC_ROLLBACK = "automatic_rollback"
    MANUAL_ROLLBACK = "manual_rollback"
    EDIT = "edit"
    #: An A/B experiment's split (transitional, like a rollout step: a rollback skips it).
    EXPERIMENT = "experiment"

    @property
    def is_rollback(self) -> bool:
        return self in (RevisionCause.AUTOMATIC_ROLLBACK, RevisionCause.MANUAL_ROLLBACK)


@dataclass(frozen=True)
class Change:
    """Why an endpoint's definition changes, recorded on its revision; the rest is read from the actor."""

    cause: RevisionCause
    rollout_id: str | None = None
    restores: int | None = None


class Revision(BaseModel):
    model_config = ConfigDict(frozen=True)

    endpoint: str
    revision: int
    at: datetime
    cause: RevisionCause
    spec: EndpointSpec
    actor: str
    reason: str | None = None
    rollout_id: str | None = Field(default=None, description="the rollout that made this change")
    runbook_run_id: str | None = Field(default=None, description="the runbook run that made this change")
    alert: str | None = Field(default=None, description="the alert rule whose action made this change")
    restores: int | None = Field(
        default=None, description="for a rollback: the revision whose traffic it brought back"
    )
    audit_event_id: int | None = None

    @property
    def routes(self) -> tuple[tuple[str, int, float], ...]:
        return live_routes(self.spec)


class Rejection(BaseModel):
    """A version an analysis rolled back on an endpoint, with the failing check's evidence."""

    model_config = ConfigDict(frozen=True)

    endpoint: str
    model: str
    version: int
    at: datetime
    rollout_id: str | None = None
    actor: str
    reason: str
    evidence: Any = None


def live_routes(spec: EndpointSpec) -> tuple[tuple[str, int, float], ...]:
    """The versions that answer requests (weight > 0), in a canonical order for comparison."""
    return tuple(sorted((r.model, r.version, r.weight) for r in spec.routes if r.weight > 0))


def routes_label(spec: EndpointSpec) -> str:
    """``churn v2 80% / v3 20%``: the split as a person reads it."""
    parts = [f"{model} v{version} {weight:g}%" for model, version, weight in live_routes(spec)]
    return " / ".join(parts) or "no traffic"


class RollbackRequest(BaseModel):
    """``workbench rollback``: by default the planner's target; ``to_revision`` to choose one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    to_revision: int | None = Field(default=None, ge=1, le=2**31 - 1)
    force: bool = Field(default=False, description="roll back onto a version rejected on this endpoint")
    expected_revision: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="refuse (409) unless the endpoint is at this revision"
    )
    reason: str | None = Field(default=None, max_length=2000)


class RollbackResult(BaseModel):
    """What a rollback did, in words and numbers: the API's answer and the CLI's output."""

    model_config = ConfigDict(frozen=True)

    endpoint: EndpointRecord
    changed: bool
    message: str
    from_revision: int
    revision: int = Field(description="the endpoint's revision after the rollback")
    restored: int | None = Field(default=None, description="the revision whose traffic came back")
    aborted_rollout: str | None = None
    skipped: list[tuple[int, str]] = Field(default_factory=list)
