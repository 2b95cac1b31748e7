"""Runbook runs and schedules, as readers see them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from workbench.specs.runbook import RunStatus, ScheduleSpec, Trigger


class FailedCell(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    tags: list[str]
    source: str
    ename: str
    evalue: str


class RunRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    runbook: str
    parameters: dict[str, Any]
    trigger: Trigger
    actor: str
    endpoint: str | None
    status: RunStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    timeout_s: float
    summary: dict[str, Any] | None
    error: str | None
    failed_cell: FailedCell | None
    archive_dir: str
    owner: str = ""

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or datetime.now(tz=UTC)
        return (end - self.started_at).total_seconds()


class ScheduleRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    spec: ScheduleSpec
    next_at: datetime
    last_run_id: str | None
    created_at: datetime
    actor: str
