"""The feature store: what the Feast repository defines, applying its definitions, materialising."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from workbench.api.auth import actor_of
from workbench.api.deps import control_plane
from workbench.control_plane import ControlPlane

router = APIRouter(tags=["features"])


class ApplyFeatures(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)


class MaterializeFeatures(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    end: datetime | None = Field(default=None, description="up to when (default: now)")
    start: datetime | None = Field(
        default=None, description="from when; default: where each view stopped (incremental)"
    )
    views: list[str] | None = Field(default=None, max_length=100, description="only these feature views")
    reason: str | None = Field(default=None, max_length=2000)


class HistoricalFeatures(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str = Field(max_length=63, description="an endpoint with a feature lookup")
    ids: list[int | str] = Field(max_length=1_000_000, description="entity ids")
    timestamps: list[float] = Field(
        max_length=1_000_000, description="when each id was served, epoch seconds (one per id)"
    )


@router.get("/features")
def feature_status(plane: ControlPlane = Depends(control_plane)) -> dict[str, Any]:
    """The repository, its entities, feature views (features, TTL, materialised until) and services."""
    return plane.features.status()


@router.post("/features/apply")
def apply_features(
    request: Request, body: ApplyFeatures | None = None, plane: ControlPlane = Depends(control_plane)
) -> dict[str, Any]:
    """``feast apply`` on the repository's definitions; the registry's state after it, and Feast's output."""
    return plane.features.apply(actor=actor_of(request), reason=body.reason if body else None)


@router.post("/features/materialize")
def materialize_features(
    request: Request, body: MaterializeFeatures | None = None, plane: ControlPlane = Depends(control_plane)
) -> dict[str, Any]:
    """Load the offline store's values into the online store, up to ``end``."""
    body = body or MaterializeFeatures()
    return plane.features.materialize(
        actor=actor_of(request), end=body.end, start=body.start, views=body.views, reason=body.reason
    )


@router.post("/features/historical")
def historical_features(
    body: HistoricalFeatures, plane: ControlPlane = Depends(control_plane)
) -> dict[str, Any]:
    """The endpoint's fetched inputs per (id, time), by Feast's point-in-time join: training data that
    matches what serving saw. NaN (null) where the offline store has no row within the view's TTL."""
    return plane.features.historical(body.endpoint, list(body.ids), list(body.timestamps))
