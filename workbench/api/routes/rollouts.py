"""Rollouts: start one, watch it (its history and every tick's analysis), and pause, resume, promote or
abort it by hand."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from workbench.api import links
from workbench.api.auth import actor_of
from workbench.api.deps import control_plane
from workbench.api.params import EndpointFilter, RolloutCommand
from workbench.control_plane import ControlPlane
from workbench.specs.rollout import RolloutSpec
from workbench.store.rollouts import MAX_ANALYSES, RolloutAnalysis, RolloutRecord

router = APIRouter(tags=["rollouts"])


class StartRollout(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    spec: RolloutSpec
    reason: str | None = Field(default=None, max_length=2000)
    force: bool = Field(
        default=False, description="start even if the candidate was rejected on this endpoint"
    )
    expected_revision: int | None = Field(
        default=None,
        ge=1,
        description="refuse (409) unless the endpoint is still at this revision: what a confirmation showed",
    )


class RolloutAction(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)


@router.post("/rollouts", status_code=201, responses=links.ROLLOUT_CREATED)
def start_rollout(
    body: StartRollout, request: Request, plane: ControlPlane = Depends(control_plane)
) -> RolloutRecord:
    return plane.rollouts.start(
        body.spec,
        actor=actor_of(request),
        reason=body.reason,
        force=body.force,
        expected_revision=body.expected_revision,
    )


@router.get("/rollouts", responses=links.ROLLOUT_LISTED)
def list_rollouts(
    endpoint: EndpointFilter = None,
    active: bool = False,
    plane: ControlPlane = Depends(control_plane),
) -> list[RolloutRecord]:
    return plane.rollouts.find(endpoint=endpoint, active_only=active)


@router.get("/rollouts/{rollout_id}")
def get_rollout(rollout_id: str, plane: ControlPlane = Depends(control_plane)) -> dict[str, Any]:
    """The rollout, its full history (every step, verdict and transition, with evidence) and its latest
    analysis (every check's verdict and confidence bounds at the last tick)."""
    record = plane.rollouts.get(rollout_id)
    events = plane.rollouts.events(rollout_id)
    return {
        "rollout": record.model_dump(mode="json"),
        "events": [e.model_dump(mode="json") for e in events],
        "analysis": plane.rollouts.analysis(rollout_id),
    }


# Matched by method as well as path: a POST to .../analyses still reaches the actions below (an unknown
# action, 404), and a GET of .../pause is a 405.
@router.get("/rollouts/{rollout_id}/analyses")
def list_rollout_analyses(
    rollout_id: str,
    after_id: int | None = Query(
        default=None,
        ge=0,
        le=2**63 - 1,
        description="only analyses after this one (a cursor: poll with the last id)",
    ),
    limit: int = Query(default=1000, ge=1, le=MAX_ANALYSES),
    plane: ControlPlane = Depends(control_plane),
) -> list[RolloutAnalysis]:
    """Every tick's analysis of the rollout, oldest first: the decision, and each check's estimate and
    anytime-valid bounds then (``evidence.metrics``)."""
    return plane.rollouts.analyses(rollout_id, after_id=after_id, limit=limit)


@router.post("/rollouts/{rollout_id}/{action}")
def act_on_rollout(
    rollout_id: str,
    action: RolloutCommand,
    request: Request,
    body: RolloutAction | None = None,
    plane: ControlPlane = Depends(control_plane),
) -> RolloutRecord:
    actor = actor_of(request)
    reason = body.reason if body else None
    controller = plane.rollouts
    if action == "pause":
        return controller.pause(rollout_id, actor=actor)
    if action == "resume":
        return controller.resume(rollout_id, actor=actor)
    if action == "promote":
        return controller.promote(rollout_id, actor=actor, reason=reason)
    if action == "abort":
        return controller.abort(rollout_id, actor=actor, reason=reason)
    from workbench.errors import NotFoundError

    raise NotFoundError(f"unknown rollout action {action!r}: use pause, resume, promote or abort")
