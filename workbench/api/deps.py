"""Request-scoped access to the control plane, so handlers never reach for globals."""

from __future__ import annotations

from fastapi import Request

from workbench.control_plane import ControlPlane


def control_plane(request: Request) -> ControlPlane:
    plane: ControlPlane = request.app.state.control_plane
    return plane
