"""Optimised variants: ask for one (measured and gated in the background), follow it, compare them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from workbench.api.auth import actor_of
from workbench.api.deps import control_plane
from workbench.api.params import ModelName, ModelVersion
from workbench.control_plane import ControlPlane
from workbench.records.optimizations import OptimizationRecord
from workbench.registry.refs import check_version
from workbench.specs.optimization import OptimizationRequest

router = APIRouter(tags=["optimizations"])


@router.post("/models/{name}/versions/{version}/optimizations", status_code=202)
def start_optimization(
    name: ModelName,
    version: ModelVersion,
    body: OptimizationRequest,
    request: Request,
    plane: ControlPlane = Depends(control_plane),
) -> OptimizationRecord:
    """Make the variant, measure it beside its parent, register it only if the gate accepts it."""
    return plane.optimizations.start(name, check_version(version), body, actor=actor_of(request))


@router.get("/models/{name}/versions/{version}/variants")
def list_variants(
    name: ModelName, version: ModelVersion, plane: ControlPlane = Depends(control_plane)
) -> dict[str, Any]:
    """The comparison table: the parent and every variant asked of it, registered or refused."""
    return plane.optimizations.variants(name, check_version(version))


@router.get("/optimizations")
def list_optimizations(
    model: str | None = Query(default=None, max_length=256),
    version: int | None = Query(default=None, ge=1, le=2**31 - 1),
    limit: int = Query(default=100, ge=1, le=1000),
    plane: ControlPlane = Depends(control_plane),
) -> list[OptimizationRecord]:
    return plane.optimizations.records(model=model, version=version, limit=limit)


@router.get("/optimizations/{optimization_id}")
def show_optimization(
    optimization_id: str,
    wait_s: float = Query(default=0, ge=0, le=600, description="wait up to this long for it to finish"),
    plane: ControlPlane = Depends(control_plane),
) -> OptimizationRecord:
    return (
        plane.optimizations.wait(optimization_id, wait_s)
        if wait_s
        else plane.optimizations.get(optimization_id)
    )
