"""A rollout, its events and its per-tick analyses, as readers see them."""

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


class RolloutAnalysis(BaseModel):
    """One tick's analysis of a rollout: the decision and every check's estimate and bounds then.

    ``evidence`` is the decision's evidence as the controller computed it: ``verdict``, ``step``,
    ``weight``, ``elapsed_s`` and ``metrics`` (per check: ``name``, ``kind``, ``verdict``, ``estimate``,
    ``low``, ``high``, ``threshold``, ``samples`` as ``[baseline, candidate]``, ``reason``, ``gating``).
    """

    model_config = ConfigDict(frozen=True)

    id: int
    rollout_id: str
    at: datetime
    step_index: int
    weight: float | None
    decision: str
    reason: str
    evidence: dict[str, Any]
