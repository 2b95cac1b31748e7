"""The domain facade: every mutating action the product offers, each one audited.

The HTTP API, and later the supervisor and the rollout controller, call this and nothing below it.
Changes inside the state store commit in the same transaction as their audit event. Changes in MLflow
(a different store) are made first and audited right after; if the audit write fails, the MLflow change
is undone, so an unaudited change never stays.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from workbench._version import __version__
from workbench.errors import ValidationError, WorkbenchError, describe_validation_errors
from workbench.paths import resolve_allowed
from workbench.registry import archive
from workbench.registry.mlflow_registry import MlflowRegistry
from workbench.registry.refs import ModelRef, check_alias
from workbench.registry.types import (
    ModelVersionInfo,
    PathSource,
    RegisteredModelInfo,
    RegistrationRequest,
    RunSource,
)
from workbench.settings import Settings
from workbench.specs.endpoint import BatchingSpec, EndpointSpec, ShadowTarget, TrafficRoute
from workbench.store import AuditLog, Database, EndpointRecord, EndpointRepository, migrate


class RouteRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(description="models:/NAME@ALIAS or models:/NAME/VERSION")
    weight: float = Field(default=100.0, ge=0, le=100)


class ShadowRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    sample_percent: float = Field(default=100.0, gt=0, le=100)


class EndpointRequest(BaseModel):
    """An endpoint as a user writes it: routes may name aliases, resolved to versions on save."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    routes: list[RouteRequest] = Field(min_length=1, max_length=16)
    shadows: list[ShadowRequest] = Field(default_factory=list, max_length=4)
    replicas: int = 1
    device: str = "auto"
    batching: BatchingSpec = Field(default_factory=BatchingSpec)
    payload_limit_bytes: int = 8 * 1024 * 1024
    description: str | None = None
    reason: str | None = Field(default=None, max_length=2000)


class ControlPlane:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True)
        self.db = Database(settings.state_url)
        migrate(self.db)
        self.audit = AuditLog(self.db)
        self.registry = MlflowRegistry(
            settings.mlflow_tracking_uri, settings.mlflow_registry_uri, settings.artifact_root
        )
        self.endpoints = EndpointRepository()
        self.started_at = time.time()

    def close(self) -> None:
        self.db.dispose()

    # ----------------------------------------------------------------- models
    def list_models(self) -> list[RegisteredModelInfo]:
        return self.registry.list_models()

    def get_model(self, name: str) -> RegisteredModelInfo:
        return self.registry.get_model(name)

    def list_versions(self, name: str) -> list[ModelVersionInfo]:
        return self.registry.list_versions(name)

    def get_version(self, name: str, version: int | str) -> ModelVersionInfo:
        return self.registry.get_version(name, version)

    def resolve(self, uri: str) -> ModelVersionInfo:
        return self.registry.resolve(ModelRef.parse(uri))

    def register(
        self, name: str, source: RunSource | PathSource, request: RegistrationRequest, *, actor: str
    ) -> ModelVersionInfo:
        reference_path = self._reference_path(request)
        if isinstance(source, PathSource):
            model_dir = resolve_allowed(
                source.path, self.settings.allowed_roots, field="source.path", kind="dir"
            )
            info = self.registry.register(
                name, request, model_dir=model_dir, reference_path=reference_path, origin=f"path:{model_dir}"
            )
        else:
            info = self.registry.register(
                name,
                request,
                run_id=source.run_id,
                artifact_path=source.artifact_path,
                reference_path=reference_path,
                origin=f"run:{source.run_id}/{source.artifact_path}",
            )
        self._audit_registration(info, request, actor)
        return info

    def register_archive(self, name: str, upload: Path, *, actor: str) -> ModelVersionInfo:
        """Register from an uploaded model archive (an in-memory model saved by the client)."""
        staging = Path(tempfile.mkdtemp(prefix="upload-", dir=self._staging_dir()))
        try:
            model_dir, request, reference = archive.unpack(
                upload, staging, max_bytes=self.settings.max_upload_bytes
            )
            info = self.registry.register(
                name, request, model_dir=model_dir, reference_path=reference, origin="upload"
            )
            self._audit_registration(info, request, actor)
            return info
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def set_alias(
        self, name: str, alias: str, version: int, *, actor: str, reason: str | None = None
    ) -> ModelVersionInfo:
        check_alias(alias)
        previous = self.registry.set_alias(name, alias, version)
        try:
            self.audit.append(
                actor=actor,
                action="model.alias.set",
                target=f"models:/{name}@{alias}",
                before={"version": previous},
                after={"version": version},
                reason=reason,
            )
        except WorkbenchError:
            if previous is None:
                self.registry.delete_alias(name, alias)
            else:
                self.registry.set_alias(name, alias, previous)
            raise
        return self.registry.get_version(name, version)

    def delete_alias(self, name: str, alias: str, *, actor: str, reason: str | None = None) -> int:
        previous = self.registry.delete_alias(name, alias)
        try:
            self.audit.append(
                actor=actor,
                action="model.alias.delete",
                target=f"models:/{name}@{alias}",
                before={"version": previous},
                after=None,
                reason=reason,
            )
        except WorkbenchError:
            self.registry.set_alias(name, alias, previous)
            raise
        return previous

    # -------------------------------------------------------------- endpoints
    def list_endpoints(self) -> list[EndpointRecord]:
        with self.db.read() as connection:
            return self.endpoints.list(connection)

    def get_endpoint(self, name: str) -> EndpointRecord:
        with self.db.read() as connection:
            return self.endpoints.get(connection, name)

    def create_endpoint(self, request: EndpointRequest, *, actor: str) -> EndpointRecord:
        spec = self._resolve_endpoint(request)
        with self.db.write() as connection:
            record = self.endpoints.create(connection, spec)
            self.audit.record(
                connection,
                actor=actor,
                action="endpoint.create",
                target=f"endpoint:{spec.name}",
                after=spec.model_dump(mode="json"),
                reason=request.reason,
            )
        return record

    def update_endpoint(
        self, request: EndpointRequest, *, actor: str, expected_revision: int | None = None
    ) -> EndpointRecord:
        spec = self._resolve_endpoint(request)
        with self.db.write() as connection:
            before = self.endpoints.get(connection, spec.name)
            record = self.endpoints.replace(connection, spec, expected_revision=expected_revision)
            self.audit.record(
                connection,
                actor=actor,
                action="endpoint.update",
                target=f"endpoint:{spec.name}",
                before=before.spec.model_dump(mode="json"),
                after=spec.model_dump(mode="json"),
                reason=request.reason,
            )
        return record

    def delete_endpoint(self, name: str, *, actor: str, reason: str | None = None) -> EndpointRecord:
        with self.db.write() as connection:
            record = self.endpoints.delete(connection, name)
            self.audit.record(
                connection,
                actor=actor,
                action="endpoint.delete",
                target=f"endpoint:{name}",
                before=record.spec.model_dump(mode="json"),
                reason=reason,
            )
        return record

    # ----------------------------------------------------------------- status
    def status(self) -> dict[str, Any]:
        models = self.registry.list_models()
        endpoints = self.list_endpoints()
        return {
            "version": __version__,
            "uptime_seconds": round(time.time() - self.started_at, 3),
            "home": str(self.settings.home),
            "mlflow_tracking_uri": self.settings.mlflow_tracking_uri,
            "state_store": self.db.dialect,
            "models": [
                {"name": m.name, "latest_version": m.latest_version, "aliases": m.aliases} for m in models
            ],
            "endpoints": [
                {
                    "name": e.spec.name,
                    "revision": e.revision,
                    "routes": [r.model_dump() for r in e.spec.routes],
                }
                for e in endpoints
            ],
            "audit_events": self.audit.count(),
        }

    # ---------------------------------------------------------------- helpers
    def _staging_dir(self) -> Path:
        staging = self.settings.home / "staging"
        staging.mkdir(parents=True, exist_ok=True)
        return staging

    def _reference_path(self, request: RegistrationRequest) -> Path | None:
        if request.reference is None:
            return None
        return resolve_allowed(
            request.reference.path, self.settings.allowed_roots, field="reference.path", kind="file"
        )

    def _audit_registration(self, info: ModelVersionInfo, request: RegistrationRequest, actor: str) -> None:
        self.audit.append(
            actor=actor,
            action="model.register",
            target=info.uri,
            after={
                "version": info.version,
                "aliases": info.aliases,
                "lineage": info.lineage.model_dump(mode="json"),
                "reference_rows": info.reference.rows if info.reference else None,
            },
            reason=request.reason,
        )

    def _resolve_endpoint(self, request: EndpointRequest) -> EndpointSpec:
        def resolve(uri: str) -> ModelVersionInfo:
            return self.registry.resolve(ModelRef.parse(uri))

        routes = []
        for route in request.routes:
            info = resolve(route.model)
            routes.append({"model": info.name, "version": info.version, "weight": route.weight})
        shadows = []
        for shadow in request.shadows:
            info = resolve(shadow.model)
            shadows.append(
                {"model": info.name, "version": info.version, "sample_percent": shadow.sample_percent}
            )
        fields = request.model_dump(exclude={"routes", "shadows", "reason"})
        try:
            return EndpointSpec.model_validate(
                {
                    **fields,
                    "routes": [TrafficRoute.model_validate(r) for r in routes],
                    "shadows": [ShadowTarget.model_validate(s) for s in shadows],
                }
            )
        except PydanticValidationError as exc:
            message, details = describe_validation_errors(exc.errors())
            raise ValidationError(f"invalid endpoint: {message}", errors=details) from None
