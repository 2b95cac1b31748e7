"""Endpoint definitions (serving them is the data plane's job)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request

from workbench.api import links
from workbench.api.auth import actor_of
from workbench.api.deps import control_plane
from workbench.api.params import EndpointName
from workbench.control_plane import ControlPlane, DeployRequest, EndpointRequest
from workbench.errors import ValidationError
from workbench.revisions import Rejection, Revision, RollbackRequest, RollbackResult
from workbench.specs.patterns import pattern_schema
from workbench.store import EndpointRecord

router = APIRouter(tags=["endpoints"])
#: ``If-Match``: the revision the caller expects, quoted (an ETag) or not.
_IF_MATCH_RE = re.compile(r'^"*([0-9]{1,18})"*\Z')


@router.get("/endpoints", responses=links.ENDPOINT_LISTED)
def list_endpoints(plane: ControlPlane = Depends(control_plane)) -> list[EndpointRecord]:
    return plane.list_endpoints()


@router.post("/endpoints", status_code=201, responses=links.ENDPOINT_CREATED)
def create_endpoint(
    body: EndpointRequest, request: Request, plane: ControlPlane = Depends(control_plane)
) -> EndpointRecord:
    return plane.create_endpoint(body, actor=actor_of(request))


@router.get("/endpoints/{name}")
def get_endpoint(name: EndpointName, plane: ControlPlane = Depends(control_plane)) -> EndpointRecord:
    return plane.get_endpoint(name)


@router.put("/endpoints/{name}")
def update_endpoint(
    name: EndpointName,
    body: EndpointRequest,
    request: Request,
    if_match: str | None = Header(
        default=None, description="expected revision", json_schema_extra=pattern_schema(_IF_MATCH_RE)
    ),
    plane: ControlPlane = Depends(control_plane),
) -> EndpointRecord:
    if body.name != name:
        raise ValidationError(f"body names endpoint {body.name!r} but the URL names {name!r}", field="name")
    expected = None
    if if_match is not None:
        match = _IF_MATCH_RE.match(if_match)
        if match is None:
            raise ValidationError("If-Match must be the endpoint revision number", field="If-Match")
        expected = int(match.group(1))
    return plane.update_endpoint(body, actor=actor_of(request), expected_revision=expected)


@router.delete("/endpoints/{name}")
def delete_endpoint(
    name: EndpointName,
    request: Request,
    reason: str | None = Query(default=None, max_length=2000),
    plane: ControlPlane = Depends(control_plane),
) -> EndpointRecord:
    return plane.delete_endpoint(name, actor=actor_of(request), reason=reason)


@router.post("/endpoints/{name}/deploy", responses=links.ENDPOINT_DEPLOYED)
def deploy(
    name: EndpointName, body: DeployRequest, request: Request, plane: ControlPlane = Depends(control_plane)
) -> EndpointRecord:
    """Serve a model version on ``name`` with all its traffic; returns once its replicas are ready."""
    return plane.deploy(name, body, actor=actor_of(request))


@router.get("/endpoints/{name}/status")
def endpoint_status(name: EndpointName, plane: ControlPlane = Depends(control_plane)) -> dict[str, Any]:
    """The definition, the replicas serving it (state, pid, port, device, restarts) and its URLs."""
    return plane.endpoint_status(name)


@router.post("/endpoints/{name}/rollback")
def rollback(
    name: EndpointName,
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
    name: EndpointName,
    limit: int = Query(default=100, ge=1, le=10_000),
    plane: ControlPlane = Depends(control_plane),
) -> list[Revision]:
    """Every traffic change of the endpoint, newest first: routes, cause, links, actor, time."""
    return plane.history(name, limit=limit)


@router.get("/endpoints/{name}/rejected")
def rejected(name: EndpointName, plane: ControlPlane = Depends(control_plane)) -> list[Rejection]:
    """Versions an analysis rolled back on this endpoint, with the failing checks' evidence."""
    plane.get_endpoint(name)
    return plane.rejected_versions(name)
