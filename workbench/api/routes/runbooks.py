"""Runbooks (the catalogue), their runs (start, list, show, cancel, archived notebooks) and schedules."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from workbench.api import links
from workbench.api.auth import actor_of
from workbench.api.deps import control_plane
from workbench.api.params import EndpointFilter, RunbookFilter, RunbookName, ScheduleName
from workbench.control_plane import ControlPlane
from workbench.errors import ValidationError, describe_validation_errors
from workbench.specs.runbook import MAX_TIMEOUT_S, RunRequest, RunStatus, ScheduleSpec
from workbench.store.runbooks import RunRecord, ScheduleRecord

router = APIRouter(tags=["runbooks"])


class StartRun(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    parameters: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_S)
    reason: str | None = Field(default=None, max_length=2000)


@router.get("/runbooks")
def list_runbooks(plane: ControlPlane = Depends(control_plane)) -> list[dict[str, Any]]:
    return [info.as_dict() for info in plane.runbooks.runbooks()]


@router.get("/runbooks/{name}")
def show_runbook(name: RunbookName, plane: ControlPlane = Depends(control_plane)) -> dict[str, Any]:
    return plane.runbooks.runbook(name).as_dict()


@router.post("/runbooks/{name}/runs", status_code=201, responses=links.RUN_CREATED)
def start_run(
    name: RunbookName, body: StartRun, request: Request, plane: ControlPlane = Depends(control_plane)
) -> RunRecord:
    try:
        run = RunRequest(
            runbook=name, parameters=body.parameters, timeout_s=body.timeout_s, reason=body.reason
        )
    except PydanticValidationError as exc:
        message, details = describe_validation_errors(exc.errors())
        raise ValidationError(message, runbook=name, errors=details) from None
    return plane.runbooks.start(run, actor=actor_of(request))


@router.get("/runbook-runs")
def list_runs(
    runbook: RunbookFilter = None,
    status: RunStatus | None = None,
    endpoint: EndpointFilter = None,
    limit: int = Query(default=50, ge=1, le=1000),
    plane: ControlPlane = Depends(control_plane),
) -> list[RunRecord]:
    return plane.runbooks.runs(runbook=runbook, status=status, endpoint=endpoint, limit=limit)


@router.get("/runbook-runs/{run_id}")
def show_run(
    run_id: str,
    wait_s: float = Query(default=0, ge=0, le=600, description="wait up to this long for the run to end"),
    plane: ControlPlane = Depends(control_plane),
) -> RunRecord:
    return plane.runbooks.wait(run_id, wait_s) if wait_s else plane.runbooks.get(run_id)


@router.post("/runbook-runs/{run_id}/cancel")
def cancel_run(run_id: str, request: Request, plane: ControlPlane = Depends(control_plane)) -> RunRecord:
    return plane.runbooks.cancel(run_id, actor=actor_of(request))


@router.get("/runbook-runs/{run_id}/notebook")
def run_notebook(
    run_id: str,
    format: str = Query(
        default="ipynb",
        description="ipynb (executed), html (rendered) or input",
        json_schema_extra={"enum": ["ipynb", "html", "input"]},
    ),
    plane: ControlPlane = Depends(control_plane),
) -> FileResponse:
    path = plane.runbooks.artifact(run_id, format)
    media = "text/html" if format == "html" else "application/x-ipynb+json"
    return FileResponse(path, media_type=media, filename=f"{run_id}-{path.name}")


@router.get("/runbook-schedules")
def list_schedules(plane: ControlPlane = Depends(control_plane)) -> list[ScheduleRecord]:
    return plane.runbooks.schedules()


@router.post("/runbook-schedules", status_code=201, responses=links.SCHEDULE_CREATED)
def create_schedule(
    spec: ScheduleSpec, request: Request, plane: ControlPlane = Depends(control_plane)
) -> ScheduleRecord:
    return plane.runbooks.create_schedule(spec, actor=actor_of(request))


@router.delete("/runbook-schedules/{name}")
def delete_schedule(
    name: ScheduleName, request: Request, plane: ControlPlane = Depends(control_plane)
) -> ScheduleRecord:
    return plane.runbooks.delete_schedule(name, actor=actor_of(request))
