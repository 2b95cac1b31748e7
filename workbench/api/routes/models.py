"""Models, versions, aliases and registration."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse

from workbench.api import links
from workbench.api.auth import actor_of
from workbench.api.deps import control_plane
from workbench.api.params import Alias, ModelName, ModelRefQuery, ModelVersion
from workbench.control_plane import ControlPlane
from workbench.errors import BadRequestError, PayloadTooLargeError
from workbench.registry.types import AliasBody, ModelVersionInfo, RegisterBody, RegisteredModelInfo

router = APIRouter(tags=["models"])
_ARCHIVE_TYPES = ("application/gzip", "application/x-gzip", "application/x-tar", "application/octet-stream")
_ARCHIVE_BODY = {
    "required": True,
    "description": "a model archive: tar.gz of manifest.json, model/ and optionally reference.parquet",
    "content": {media: {"schema": {"type": "string", "format": "binary"}} for media in _ARCHIVE_TYPES},
}


@router.get("/models", responses=links.MODEL_LISTED)
def list_models(plane: ControlPlane = Depends(control_plane)) -> list[RegisteredModelInfo]:
    return plane.list_models()


@router.get("/models/{name}")
def get_model(name: ModelName, plane: ControlPlane = Depends(control_plane)) -> RegisteredModelInfo:
    return plane.get_model(name)


@router.get("/models/{name}/versions")
def list_versions(name: ModelName, plane: ControlPlane = Depends(control_plane)) -> list[ModelVersionInfo]:
    return plane.list_versions(name)


@router.get("/models/{name}/versions/{version}")
def get_version(
    name: ModelName, version: ModelVersion, plane: ControlPlane = Depends(control_plane)
) -> ModelVersionInfo:
    return plane.get_version(name, version)


@router.get(
    "/models/{name}/versions/{version}/model",
    response_class=FileResponse,
    responses={
        200: {
            "description": "the version's MLflow model directory as model/ in a tar.gz",
            "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
def download_model(
    name: ModelName, version: ModelVersion, plane: ControlPlane = Depends(control_plane)
) -> FileResponse:
    """The files a replica serves, for an image built elsewhere (``workbench export docker``): packed once per
    version, at most two at a time, then served from the archive cache."""
    info = plane.get_version(name, version)  # a clear 4xx for a version that is not a number or not there
    path = plane.model_archive(info)
    return FileResponse(path, media_type="application/gzip", filename=f"{name}-v{version}-model.tar.gz")


@router.post("/models/{name}/versions", status_code=201, responses=links.VERSION_CREATED)
def register_version(
    name: ModelName, body: RegisterBody, request: Request, plane: ControlPlane = Depends(control_plane)
) -> ModelVersionInfo:
    return plane.register(name, body.source, body.request(), actor=actor_of(request))


@router.post(
    "/models/{name}/versions/upload",
    status_code=201,
    responses=links.VERSION_CREATED,
    openapi_extra={"requestBody": _ARCHIVE_BODY},
)
async def upload_version(
    name: ModelName, request: Request, plane: ControlPlane = Depends(control_plane)
) -> ModelVersionInfo:
    """Register an uploaded model archive (``tar.gz``: manifest.json, model/, reference.parquet)."""
    from starlette.concurrency import run_in_threadpool

    limit = plane.settings.max_upload_bytes
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type not in _ARCHIVE_TYPES:
        raise BadRequestError(
            f"upload must be a tar.gz model archive (content-type application/gzip), got {content_type!r}"
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"upload of {declared} bytes exceeds the limit of {limit}", limit=limit)
    staging = plane.settings.home / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=staging, suffix=".tar.gz") as handle:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise PayloadTooLargeError(f"upload exceeds the limit of {limit} bytes", limit=limit)
            handle.write(chunk)
        handle.flush()
        if received == 0:
            raise BadRequestError("empty upload")
        return await run_in_threadpool(
            plane.register_archive, name, Path(handle.name), actor=actor_of(request)
        )


@router.put("/models/{name}/aliases/{alias}", responses=links.ALIAS_SET)
def set_alias(
    name: ModelName,
    alias: Alias,
    body: AliasBody,
    request: Request,
    plane: ControlPlane = Depends(control_plane),
) -> ModelVersionInfo:
    return plane.set_alias(name, alias, body.version, actor=actor_of(request), reason=body.reason)


@router.delete("/models/{name}/aliases/{alias}")
def delete_alias(
    name: ModelName,
    alias: Alias,
    request: Request,
    reason: str | None = Query(default=None, max_length=2000),
    plane: ControlPlane = Depends(control_plane),
) -> dict[str, object]:
    previous = plane.delete_alias(name, alias, actor=actor_of(request), reason=reason)
    return {"model": name, "alias": alias, "previous_version": previous}


@router.get("/resolve")
def resolve(
    uri: ModelRefQuery,
    plane: ControlPlane = Depends(control_plane),
) -> ModelVersionInfo:
    return plane.resolve(uri)
