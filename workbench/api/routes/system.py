"""Health (unauthenticated, for supervisors and load balancers) and status (authenticated)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from workbench._version import __version__
from workbench.api.deps import control_plane
from workbench.control_plane import ControlPlane

public = APIRouter(tags=["system"])
router = APIRouter(tags=["system"])


@public.get("/metrics", include_in_schema=False)
def metrics(plane: ControlPlane = Depends(control_plane)) -> Response:
    """Monitors' series, drift scores and alert states in Prometheus exposition (unauthenticated, as
    scrape targets usually are; it holds no data beyond these numbers)."""
    return Response(generate_latest(plane.monitoring.engine.gauges.registry), media_type=CONTENT_TYPE_LATEST)


@public.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get("/status")
def status(plane: ControlPlane = Depends(control_plane)) -> dict[str, Any]:
    return plane.status()
