"""Health (unauthenticated, for supervisors and load balancers) and status (authenticated)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from workbench._version import __version__
from workbench.api.deps import control_plane
from workbench.control_plane import ControlPlane

public = APIRouter(tags=["system"])
router = APIRouter(tags=["system"])


@public.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get("/status")
def status(plane: ControlPlane = Depends(control_plane)) -> dict[str, Any]:
    return plane.status()
