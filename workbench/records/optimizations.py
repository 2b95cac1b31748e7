"""Optimisations as readers see them: the variant asked for, what was measured, and what became of it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class OptimizationStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    REGISTERED = "registered"
    REFUSED = "refused"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (OptimizationStatus.REGISTERED, OptimizationStatus.REFUSED, OptimizationStatus.FAILED)


class OptimizationRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    model: str
    version: int
    method: str
    status: OptimizationStatus
    settings: dict[str, Any] = Field(
        description="budget, speed-up required, serving batch and where it came from"
    )
    result: dict[str, Any] | None = Field(default=None, description="every figure of parent and variant")
    verdict: dict[str, Any] | None = Field(default=None, description="accepted, reasons, deltas, speed-up")
    variant_version: int | None = None
    error: str | None = None
    actor: str
    reason: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def parent_uri(self) -> str:
        return f"models:/{self.model}/{self.version}"
