"""Model archives: how an in-memory model travels from a notebook to a control plane on another host.

The client saves the model as an MLflow model directory, adds the reference data and a manifest, and
uploads one ``.tar.gz``. The server unpacks it with tarfile's ``data`` filter (no absolute paths, no
``..``, no links out, no device files) and a cap on the unpacked size, so an archive cannot write
outside its staging directory or fill the disk.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from workbench.errors import BadRequestError, PayloadTooLargeError, ValidationError
from workbench.registry.types import RegistrationRequest

MANIFEST = "manifest.json"
MODEL_DIR = "model"
REFERENCE_FILE = "reference.parquet"
UNPACKED_SIZE_FACTOR = 8


def pack(model_dir: Path, request: RegistrationRequest, reference: Path | None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        manifest = request.model_dump_json().encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(manifest)
        archive.addfile(info, io.BytesIO(manifest))
        archive.add(str(model_dir), arcname=MODEL_DIR)
        if reference is not None:
            archive.add(str(reference), arcname=REFERENCE_FILE)
    return buffer.getvalue()


def pack_model(model_dir: Path, target: Path) -> Path:
    """The MLflow model directory alone, as ``model/`` in a ``.tar.gz`` written to ``target``: what a
    model version is, for a container image or another workbench (``GET .../versions/{v}/model``)."""
    with tarfile.open(target, mode="w:gz") as archive:
        archive.add(str(model_dir), arcname=MODEL_DIR)
    return target


def unpack_model(archive_path: Path, destination: Path) -> Path:
    """Unpack a :func:`pack_model` archive into ``destination`` (data filter: nothing lands outside)."""
    try:
        with tarfile.open(archive_path, mode="r:*") as archive:
            archive.extractall(destination, filter="data")
    except tarfile.TarError as exc:
        raise BadRequestError(f"not a model archive: {exc}") from None
    model_dir = destination / MODEL_DIR
    if not (model_dir / "MLmodel").is_file():
        raise ValidationError(f"the model archive has no MLflow model under {MODEL_DIR}/ (no MLmodel file)")
    return model_dir


def unpack(
    archive_path: Path, destination: Path, *, max_bytes: int
) -> tuple[Path, RegistrationRequest, Path | None]:
    """Unpack into ``destination``; returns the model directory, the manifest and the reference file."""
    try:
        with tarfile.open(archive_path, mode="r:*") as archive:
            members = archive.getmembers()
            total = sum(m.size for m in members if m.isfile())
            if total > max_bytes * UNPACKED_SIZE_FACTOR:
                raise PayloadTooLargeError(
                    f"archive unpacks to {total} bytes, more than the limit of {max_bytes * UNPACKED_SIZE_FACTOR}"
                )
            archive.extractall(destination, filter="data")
    except tarfile.TarError as exc:
        raise BadRequestError(f"upload is not a valid tar.gz model archive: {exc}") from None
    manifest = destination / MANIFEST
    if not manifest.is_file():
        raise ValidationError(f"model archive has no {MANIFEST}")
    try:
        request = RegistrationRequest.model_validate_json(manifest.read_bytes())
    except ValueError as exc:
        raise ValidationError(f"model archive manifest is invalid: {exc}") from None
    model_dir = destination / MODEL_DIR
    if not (model_dir / "MLmodel").is_file():
        raise ValidationError(f"model archive has no MLflow model under {MODEL_DIR}/ (no MLmodel file)")
    reference = destination / REFERENCE_FILE
    return model_dir, request, reference if reference.is_file() else None
