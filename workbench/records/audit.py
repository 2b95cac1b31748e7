"""The audit log's event as readers see it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AuditEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    before: Any = None
    after: Any = None
    reason: str | None = None
    link: str | None = Field(default=None, description="a related record, e.g. a runbook run")
