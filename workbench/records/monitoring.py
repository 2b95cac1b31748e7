"""Monitors, alert rules and events, feedback and reports, as readers see them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from workbench.specs.monitor import AlertRuleSpec, MonitorSpec


class MonitorRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    spec: MonitorSpec
    created_at: datetime
    updated_at: datetime


class AlertRuleRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    spec: AlertRuleSpec
    state: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class AlertEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    at: datetime
    rule: str
    monitor: str
    endpoint: str
    kind: str
    severity: str
    value: float | None
    message: str
    details: Any = None


class FeedbackItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    endpoint: str
    request_id: str
    version: int
    label: float
    predicted_at: float
    received_at: float


class IndexedRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    request_id: str
    ts: float
    version: int
    score: float | None = None
    routing_key: str | None = None


class ReportRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    monitor: str
    at: datetime
    window_start: datetime
    window_end: datetime
    trigger: str
    html_path: str
    json_path: str
    summary: dict[str, Any]
