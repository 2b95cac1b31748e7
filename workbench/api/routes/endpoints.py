"""Endpoint definitions (serving them is the data plane's job)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request

from workbench.api.auth import actor_of
from workbench.api.deps import control_plane
from workbench.control_plane import ControlPlane, DeployRequest, EndpointRequest
from workbench.errors import ValidationError
from workbench.revisions import Rejection, Revision, RollbackRequest, RollbackResult
from workbench.store import EndpointRecord

router = APIRouter(tags=["endpoints"])


@router.get("/endpoints")
def list_endpoints(plane: ControlPlane = Depends(control_plane)) -> list[EndpointRecord]:
    return plane.list_endpoints()


@router.post("/endpoints", status_code=201)
def create_endpoint(
    body: EndpointRequest, request: Request, plane: ControlPlane = Depends(control_plane)
) -> EndpointRecord:
    return plane.create_endpoint(body, actor=actor_of(request))


@router.get("/endpoints/{name}")
def get_endpoint(name: str, plane: ControlPlane = Depends(control_plane)) -> EndpointRecord:
    return plane.get_endpoint(name)


@router.put("/endpoints/{name}")
def update_endpoint(
    name: str,
    body: EndpointRequest,
    request: Request,
    if_match: str | None = Header(default=None, description="expected revision"),
    plane: ControlPlane = Depends(control_plane),
) -> EndpointRecord:
    if body.name != name:
        raise ValidationError(f"body names endpoint {body.name!r} but the URL names {name!r}", field="name")
    expected = None
    if if_match is not None:
        if not if_match.strip('"').isdigit():
            raise ValidationError("If-Match must be the endpoint revision number", field="If-Match")
        expected = int(if_match.strip('"'))
    return plane.update_endpoint(body, actor=actor_of(request), expected_revision=expected)


@router.delete("/endpoints/{name}")
def delete_endpoint(
    name: str,
    request: Request,
    reason: str | None = Query(default=None, max_length=2000),
    plane: ControlPlane = Depends(control_plane),
) -> EndpointRecord:
    return plane.delete_endpoint(name, actor=actor_of(request), reason=reason)


@router.post("/endpoints/{name}/deploy")
def deploy(
    name: str, body: DeployRequest, request: Request, plane: ControlPlane = Depends(control_plane)
) -> EndpointRecord:
    """Serve a model version on ``name`` with all its traffic; returns once its replicas are ready."""
    return plane.deploy(name, body, actor=actor_of(request))


@router.get("/endpoints/{name}/status")
def endpoint_status(name: str, plane: ControlPlane = Depends(control_plane)) -> dict[str, Any]:
    """The definition, the replicas serving it (state, pid, port, device, restarts) and its URLs."""
    return plane.endpoint_status(name)


@router.post("/endpoints/{name}/rollback")
def rollback(
    name: str,
    request: Request,
    body: RollbackRequest | None = None,
    reason: str | None = Query(default=None, max_length=2000, description="kept for older clients"),
    plane: ControlPlane = Depends(control_plane),
) -> RollbackResult:
    """Back to an earlier revision: abort an active rollout, else the planner's target (never a version
    rejected here), or ``to_revision``. The answer says what it did and which revisions it passed over."""
    body = body or RollbackRequest()
    if reason and body.reason is None:
        body = body.model_copy(update={"reason": reason})
    return plane.rollback(name, body, actor=actor_of(request))


@router.get("/endpoints/{name}/history")
def history(
    name: str,
    limit: int = Query(default=100, ge=1, le=10_000),
    plane: ControlPlane = Depends(control_plane),
) -> list[Revision]:
    """Every traffic change of the endpoint, newest first: routes, cause, links, actor, time."""
    return plane.history(name, limit=limit)


@router.get("/endpoints/{name}/rejected")
def rejected(name: str, plane: ControlPlane = Depends(control_plane)) -> list[Rejection]:
    """Versions an analysis rolled back on this endpoint, with the failing checks' evidence."""
    plane.get_endpoint(name)
    return plane.rejected_versions(name)
