"""A/B experiments: create one, start, pause, resume and conclude it, feed it outcomes, watch its looks,
and promote its winner through a rollout."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from workbench.api.auth import actor_of
from workbench.api.deps import control_plane
from workbench.api.params import EndpointFilter
from workbench.control_plane import ControlPlane
from workbench.errors import NotFoundError
from workbench.experiments.service import OutcomesRequest
from workbench.records.experiments import ExperimentRecord, ExperimentState
from workbench.specs.experiment import NAME_RE, ExperimentSpec
from workbench.specs.patterns import pattern_schema

router = APIRouter(tags=["experiments"])

ExperimentName = Annotated[
    str,
    Path(description="experiment name (a lower-case DNS label)", json_schema_extra=pattern_schema(NAME_RE)),
]


class CreateExperiment(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    spec: ExperimentSpec
    reason: str | None = Field(default=None, max_length=2000)
    start: bool = Field(default=False, description="start it at once (the endpoint routes the variants)")


class ExperimentAction(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)
    expected_revision: int | None = Field(
        default=None, ge=1, description="start/resume only: refuse (409) unless the experiment is still at it"
    )


class PromoteExperiment(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: Literal["canary", "blue_green"] = "canary"
    variant: str | None = Field(
        default=None, max_length=63, description="another variant than the winner, on purpose"
    )
    reason: str | None = Field(default=None, max_length=2000)
    rollout: dict[str, Any] | None = Field(
        default=None, description="more rollout spec fields: steps, analysis, blue_green, tick_s"
    )


@router.post("/experiments", status_code=201)
def create_experiment(
    body: CreateExperiment, request: Request, plane: ControlPlane = Depends(control_plane)
) -> ExperimentRecord:
    actor = actor_of(request)
    record = plane.experiments.create(body.spec, actor=actor, reason=body.reason)
    if body.start:
        record = plane.experiments.start(record.name, actor=actor, reason=body.reason)
    return record


@router.get("/experiments")
def list_experiments(
    endpoint: EndpointFilter = None,
    state: ExperimentState | None = None,
    plane: ControlPlane = Depends(control_plane),
) -> list[ExperimentRecord]:
    return plane.experiments.find(endpoint=endpoint, state=state)


@router.get("/experiments/{name}")
def get_experiment(name: ExperimentName, plane: ControlPlane = Depends(control_plane)) -> dict[str, Any]:
    """The experiment, units per variant, and a look taken now (verdict, reason, every comparison)."""
    return plane.experiments.status(name)


@router.get("/experiments/{name}/looks")
def experiment_looks(
    name: ExperimentName,
    limit: int = Query(default=500, ge=1, le=5000),
    after: float | None = Query(
        default=None, ge=0, le=1e11, description="only looks after this time (a cursor: the last ts seen)"
    ),
    plane: ControlPlane = Depends(control_plane),
) -> list[dict[str, Any]]:
    """The kept looks, oldest first: the estimates and confidence sequences over time."""
    return plane.experiments.looks(name, limit=limit, after=after)


@router.post("/experiments/{name}/outcomes")
def post_outcomes(
    name: ExperimentName,
    body: OutcomesRequest,
    request: Request,
    plane: ControlPlane = Depends(control_plane),
) -> dict[str, Any]:
    """Outcomes by unit or by request id; each unit and metric is joined once, however often it is sent."""
    return plane.experiments.add_outcomes(name, body.outcomes, actor=actor_of(request))


@router.post("/experiments/{name}/promote")
def promote_experiment(
    name: ExperimentName,
    request: Request,
    body: PromoteExperiment | None = None,
    plane: ControlPlane = Depends(control_plane),
) -> dict[str, Any]:
    """Conclude it if it is not, and roll the winner out (canary or blue-green): the rollout is returned."""
    body = body or PromoteExperiment()
    return plane.experiments.promote(
        name,
        actor=actor_of(request),
        strategy=body.strategy,
        variant=body.variant,
        reason=body.reason,
        rollout=body.rollout,
    )


@router.post("/experiments/{name}/{action}")
def act_on_experiment(
    name: ExperimentName,
    action: str,
    request: Request,
    body: ExperimentAction | None = None,
    plane: ControlPlane = Depends(control_plane),
) -> ExperimentRecord:
    actor = actor_of(request)
    body = body or ExperimentAction()
    service = plane.experiments
    if action in ("start", "resume"):
        return service.start(name, actor=actor, reason=body.reason, expected_revision=body.expected_revision)
    if action == "pause":
        return service.pause(name, actor=actor, reason=body.reason)
    if action == "conclude":
        return service.conclude(name, actor=actor, reason=body.reason)
    raise NotFoundError(
        f"unknown experiment action {action!r}: use start, resume, pause, conclude or promote"
    )
