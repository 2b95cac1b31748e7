"""A rollout and its events, as readers see them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from workbench.rollouts.phases import Phase


class RolloutRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    endpoint: str
    strategy: str
    spec: dict[str, Any]
    phase: Phase
    step_index: int
    step_started_at: float
    stable_model: str
    stable_version: int
    candidate_model: str
    candidate_version: int
    actor: str
    reason: str | None
    revision: int
    created_at: datetime
    updated_at: datetime


class RolloutEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    rollout_id: str
    at: datetime
    phase: Phase
    step_index: int
    kind: str
    message: str
    evidence: Any = None
