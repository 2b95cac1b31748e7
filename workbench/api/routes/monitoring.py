"""Monitors, alert rules, alerts, feedback, drift reports, and series for dashboards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from workbench.api import links
from workbench.api.auth import actor_of
from workbench.api.deps import control_plane
from workbench.api.params import EndpointFilter, EndpointQuery, MonitorName, RuleName
from workbench.control_plane import ControlPlane
from workbench.errors import NotFoundError
from workbench.monitoring.distribution import monitor_distribution
from workbench.monitoring.history import MAX_NAMES, MAX_SPAN_S
from workbench.monitoring.history import MIN_STEP_S as HISTORY_MIN_STEP_S
from workbench.monitoring.series import MIN_STEP_S
from workbench.monitoring.service import FeedbackRequest
from workbench.specs.monitor import AlertRuleSpec, MonitorSpec
from workbench.store.monitoring import AlertEvent, AlertRuleRecord, MonitorRecord, ReportRecord

router = APIRouter(tags=["monitoring"])


class CreateMonitor(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    spec: MonitorSpec
    reason: str | None = Field(default=None, max_length=2000)


class CreateRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    spec: AlertRuleSpec
    reason: str | None = Field(default=None, max_length=2000)


class ReportRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    window_s: float | None = Field(default=None, gt=0, description="seconds back from until")
    until: float | None = Field(default=None, gt=0, description="end of the window, epoch seconds (now)")


@router.post("/monitors", status_code=201, responses=links.MONITOR_CREATED)
def create_monitor(
    body: CreateMonitor, request: Request, plane: ControlPlane = Depends(control_plane)
) -> MonitorRecord:
    return plane.monitoring.create_monitor(body.spec, actor=actor_of(request), reason=body.reason)


@router.get("/monitors")
def list_monitors(
    endpoint: str | None = Query(default=None, max_length=128), plane: ControlPlane = Depends(control_plane)
) -> list[MonitorRecord]:
    return plane.monitoring.monitors(endpoint=endpoint)


@router.get("/monitors/{name}")
def monitor_status(
    name: MonitorName,
    history: int = Query(default=0, ge=0, le=2000),
    plane: ControlPlane = Depends(control_plane),
) -> dict[str, Any]:
    """The monitor, its series, drift and performance now, its rules, and optionally recent history."""
    return plane.monitoring.status(name, history=history)


@router.delete("/monitors/{name}")
def delete_monitor(
    name: MonitorName, request: Request, plane: ControlPlane = Depends(control_plane)
) -> MonitorRecord:
    return plane.monitoring.delete_monitor(name, actor=actor_of(request))


@router.post("/monitors/{name}/reports", status_code=201)
def create_report(
    name: MonitorName,
    request: Request,
    body: ReportRequest | None = None,
    plane: ControlPlane = Depends(control_plane),
) -> ReportRecord:
    """A full Evidently drift report of the window, archived (takes seconds); audited as the caller."""
    return plane.monitoring.report(
        name,
        window_s=body.window_s if body else None,
        until=body.until if body else None,
        actor=actor_of(request),
    )


@router.get("/monitors/{name}/reports")
def list_reports(name: MonitorName, plane: ControlPlane = Depends(control_plane)) -> list[ReportRecord]:
    return plane.monitoring.reports(name)


@router.get("/monitors/{name}/distribution")
def column_distribution(
    name: MonitorName,
    column: str | None = Query(default=None, max_length=200, description="a watched column or `prediction`"),
    bins: int = Query(default=30, ge=1, le=200, description="display bins of a continuous column"),
    plane: ControlPlane = Depends(control_plane),
) -> dict[str, Any]:
    """Reference vs the current window for one column (the first watched by default), as shares on
    shared bins or values, from the live histograms, with the column's live score."""
    return monitor_distribution(plane.monitoring.engine, name, column, bins=bins)


@router.get("/monitors/{name}/reports/{report_id}/{kind}")
def report_file(
    name: str, report_id: int, kind: str, plane: ControlPlane = Depends(control_plane)
) -> FileResponse:
    if kind not in ("html", "json"):
        raise NotFoundError(f"no report file {kind!r}: use html or json")
    found = [r for r in plane.monitoring.reports(name) if r.id == report_id]
    if not found:
        raise NotFoundError(f"monitor {name!r} has no report {report_id}")
    path = Path(found[0].html_path if kind == "html" else found[0].json_path)
    if not path.is_file():
        raise NotFoundError(f"report {report_id}'s {kind} file is gone from the archive")
    return FileResponse(path, media_type="text/html" if kind == "html" else "application/json")


@router.post("/alert-rules", status_code=201, responses=links.RULE_CREATED)
def create_rule(
    body: CreateRule, request: Request, plane: ControlPlane = Depends(control_plane)
) -> AlertRuleRecord:
    return plane.monitoring.create_rule(body.spec, actor=actor_of(request), reason=body.reason)


@router.get("/alert-rules")
def list_rules(
    monitor: str | None = Query(default=None, max_length=64), plane: ControlPlane = Depends(control_plane)
) -> list[AlertRuleRecord]:
    return plane.monitoring.rules(monitor=monitor)


@router.delete("/alert-rules/{name}")
def delete_rule(
    name: RuleName, request: Request, plane: ControlPlane = Depends(control_plane)
) -> AlertRuleRecord:
    return plane.monitoring.delete_rule(name, actor=actor_of(request))


@router.get("/alerts")
def list_alerts(
    rule: str | None = Query(default=None, max_length=64),
    monitor: str | None = Query(default=None, max_length=64),
    endpoint: str | None = Query(default=None, max_length=128),
    limit: int = Query(default=200, ge=1, le=10_000),
    plane: ControlPlane = Depends(control_plane),
) -> list[AlertEvent]:
    """Alert events, newest first: firing, resolved, and each action's outcome."""
    return plane.monitoring.alerts(rule=rule, monitor=monitor, endpoint=endpoint, limit=limit)


@router.get("/traffic")
def traffic(
    endpoint: list[str] | None = Query(
        default=None, max_length=MAX_NAMES, description="endpoint name (repeat for several; default all)"
    ),
    since: float | None = Query(default=None, ge=0, le=1e11, description="epoch second to start from"),
    plane: ControlPlane = Depends(control_plane),
) -> Response:
    """Live traffic per endpoint, from memory: per-second points (``all`` and per version: requests,
    errors, requests/s, error rate, p50/p95/p99 ms, mean batch size) of the last 15 minutes at or after ``since``, only
    for seconds that can no longer change, and running request/error totals. Ask again with ``since`` =
    the answer's ``next`` to get only what is new: a live chart's one-second poll."""
    result = plane.monitoring.traffic(endpoint, since=since)
    return Response(orjson.dumps(result), media_type="application/json")


@router.get("/series")
def series(
    endpoint: EndpointQuery,
    window_s: float = Query(default=300.0, gt=0, le=30 * 86_400),
    step_s: float = Query(default=10.0, ge=MIN_STEP_S, le=30 * 86_400),
    plane: ControlPlane = Depends(control_plane),
) -> dict[str, Any]:
    """Per step over the look-back, from the prediction log: requests/s, error rate, p50/p95/p99
    latency, per version and all (at most 10,000 steps)."""
    return plane.monitoring.series(endpoint, window_s=window_s, step_s=step_s)


class HistoryPoints(BaseModel):
    """One series downsampled: per step that holds points, its start and the points' statistics."""

    ts: list[float] = Field(description="each step's start, epoch seconds")
    mean: list[float]
    min: list[float]
    max: list[float]
    count: list[int] = Field(description="looks recorded in the step")


class MonitorHistory(BaseModel):
    endpoint: str | None = Field(description="the endpoint it watches (null for a deleted monitor)")
    series: dict[str, dict[str, HistoryPoints]] = Field(
        description="series name -> key (`all`, a version, a column, a rule) -> points"
    )


class HistoryAnswer(BaseModel):
    start: float
    end: float
    step_s: float
    aggregations: list[str]
    monitors: dict[str, MonitorHistory]


@router.get("/monitor-history", response_class=Response, responses={200: {"model": HistoryAnswer}})
def monitor_history(
    monitor: list[str] | None = Query(
        default=None, max_length=MAX_NAMES, description="monitor name (repeat for several)"
    ),
    endpoint: EndpointFilter = None,
    series: list[str] | None = Query(
        default=None,
        max_length=MAX_NAMES,
        description="series name (repeat); default: every monitor-wide series; `drift`: one per column",
    ),
    key: list[str] | None = Query(
        default=None,
        max_length=MAX_NAMES,
        description="`all`, a version number, a column (drift) or a rule (alert_state)",
    ),
    start: float | None = Query(default=None, ge=0, le=1e11, description="epoch seconds (end - 1 h)"),
    end: float | None = Query(default=None, ge=0, le=1e11, description="epoch seconds (now)"),
    step_s: float | None = Query(
        default=None, ge=HISTORY_MIN_STEP_S, le=MAX_SPAN_S, description="seconds per step (about 1,000 steps)"
    ),
    plane: ControlPlane = Depends(control_plane),
) -> Response:
    """Persisted monitor history over a time range, per step: mean, min, max and count of the points
    in each step, column-wise: ``{"start", "end", "step_s", "aggregations", "monitors": {name:
    {"endpoint", "series": {series: {key: {"ts": [...], "mean": [...], "min": [...], "max": [...],
    "count": [...]}}}}}}``. At most 10,000 steps and 500,000 points per answer."""
    result = plane.monitoring.history(
        monitors=monitor, endpoint=endpoint, series=series, keys=key, start=start, end=end, step_s=step_s
    )
    # Encoded by orjson directly: FastAPI's generic encoder takes longer than the query for an hour at 1 s.
    return Response(orjson.dumps(result), media_type="application/json")


@router.post("/feedback")
def post_feedback(
    body: FeedbackRequest, request: Request, plane: ControlPlane = Depends(control_plane)
) -> dict[str, Any]:
    """Ground-truth labels by request id, one or a batch: all accepted or none."""
    return plane.monitoring.feedback(body, actor=actor_of(request))


@router.get("/labelled-data")
def labelled_data(
    endpoint: EndpointQuery,
    window_s: float | None = Query(default=None, gt=0, le=30 * 86_400, description="seconds back from until"),
    since: float | None = Query(default=None, gt=0, description="epoch seconds"),
    until: float | None = Query(default=None, gt=0, description="epoch seconds (now)"),
    plane: ControlPlane = Depends(control_plane),
) -> dict[str, Any]:
    """Logged requests joined with their fed-back labels, column-wise, for retraining."""
    import time

    from workbench.errors import ValidationError

    end = until or time.time()
    if (since is None) == (window_s is None):
        raise ValidationError("give exactly one of since and window_s", field="since")
    start = since if since is not None else end - float(window_s or 0)
    return plane.monitoring.labelled(endpoint, since=start, until=end)
