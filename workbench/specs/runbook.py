"""What a user asks of the runbook engine: a run (runbook, parameters, limits) or a schedule of runs.

Parameter *values* are checked by the runbook itself, in its first cell, so the rule lives next to the
code that depends on it and the failure is archived with the notebook. What the engine checks up front is
what it can know without running anything: the runbook exists and every parameter name is one it declares.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from workbench.specs.base import Spec
from workbench.specs.patterns import pattern_schema

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")
MAX_TIMEOUT_S = 6 * 3600.0
DEFAULT_TIMEOUT_S = 1800.0


#: A runbook's or a schedule's name, its rule stated in the JSON Schema (``check_name`` enforces it).
Name = Annotated[str, Field(json_schema_extra=pattern_schema(NAME_RE))]


def check_name(value: str, what: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError(
            f"{what} {value!r} must be 1-64 characters of lowercase letters, digits, '-' and '_', "
            "starting with a letter or digit"
        )
    return value


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def is_final(self) -> bool:
        return self is not RunStatus.RUNNING


class TriggerKind(StrEnum):
    MANUAL = "manual"
    ALERT = "alert"
    SCHEDULE = "schedule"


class Trigger(Spec):
    """Why a run started; an alert names its rule and event, a schedule its name."""

    kind: TriggerKind = TriggerKind.MANUAL
    rule: str | None = None
    alert_event: int | None = None
    schedule: str | None = None
    detail: str | None = Field(default=None, max_length=2000)


class RunRequest(Spec):
    runbook: Name
    parameters: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float | None = Field(
        default=None, gt=0, le=MAX_TIMEOUT_S, description="whole run; the runbook's own default if unset"
    )
    reason: str | None = Field(default=None, max_length=2000)

    @field_validator("runbook")
    @classmethod
    def _runbook(cls, value: str) -> str:
        return check_name(value, "runbook")


class ScheduleSpec(Spec):
    """Run ``runbook`` every ``every_s`` seconds, first ``every_s`` after creation (or at ``start_at``)."""

    name: Name
    runbook: Name
    parameters: dict[str, Any] = Field(default_factory=dict)
    every_s: float = Field(ge=10, le=31 * 86_400)
    start_at: float | None = Field(default=None, gt=0, lt=1e10, description="epoch seconds of the first run")
    enabled: bool = True
    kind: Literal["runbook_schedule"] = "runbook_schedule"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "schedule name")

    @field_validator("runbook")
    @classmethod
    def _runbook(cls, value: str) -> str:
        return check_name(value, "runbook")
