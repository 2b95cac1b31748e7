"""An A/B experiment as readers see it: its spec, where it is in its lifecycle, its latest decision."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from workbench.specs.experiment import ExperimentSpec


class ExperimentState(StrEnum):
    DRAFT = "draft"  # defined, not assigning units yet
    RUNNING = "running"  # units are assigned and outcomes joined; each look decides
    PAUSED = "paused"  # assignment stopped, outcomes of assigned units still joined
    CONCLUDED = "concluded"  # ended, with the decision that ended it


class ExperimentRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    endpoint: str
    spec: ExperimentSpec
    state: ExperimentState
    decision: dict[str, Any] | None
    actor: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    revision: int
    #: The endpoint's routes before the experiment took them over: restored when it pauses or ends.
    baseline: list[dict[str, Any]] | None = None
    #: The latest start or resume while running (None otherwise): only requests since then assign units.
    running_since: datetime | None = None
