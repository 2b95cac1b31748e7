"""The domain facade: every mutating action the product offers, each one audited.

The HTTP API, and later the supervisor and the rollout controller, call this and nothing below it.
Changes inside the state store commit in the same transaction as their audit event. Changes in MLflow
(a different store) are made first and audited right after; if the audit write fails, the MLflow change
is undone, so an unaudited change never stays.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import Connection

from workbench._version import __version__
from workbench.errors import (
    ConflictError,
    NotFoundError,
    ValidationError,
    WorkbenchError,
    describe_validation_errors,
)
from workbench.paths import resolve_allowed
from workbench.registry import archive
from workbench.registry.archive_cache import ArchiveCache
from workbench.registry.mlflow_registry import MlflowRegistry
from workbench.registry.refs import ModelRef, check_alias
from workbench.registry.types import (
    ModelVersionInfo,
    PathSource,
    RegisteredModelInfo,
    RegistrationRequest,
    RunSource,
)
from workbench.revisions import (
    Change,
    Rejection,
    Revision,
    RevisionCause,
    RollbackRequest,
    RollbackResult,
    plan_rollback,
    routes_label,
)
from workbench.revisions.plan import revision_before_rollout
from workbench.serving.backend import LazyModelDirs, ModelDirs, ServingBackend, make_backend
from workbench.serving.device import probe_inventory, select_device
from workbench.settings import Settings
from workbench.specs.endpoint import (
    ENDPOINT_NAME_RE,
    BatchingSpec,
    Device,
    EndpointSpec,
    LatencyObjective,
    LogSampleRate,
    MaxBatchSize,
    MaxWaitMs,
    PayloadLimit,
    RayResources,
    Replicas,
    ShadowTarget,
    Threads,
    TorchScript,
    TrafficRoute,
)
from workbench.specs.features import FeatureLookup
from workbench.specs.patterns import model_ref_schema, pattern_schema
from workbench.store import AuditLog, Database, EndpointRecord, EndpointRepository, migrate
from workbench.store.idempotency import IdempotencyStore
from workbench.store.revisions import RejectionRepository, RevisionRepository
from workbench.store.rollouts import RolloutEvent

Guard = Callable[[Connection], None]
"""Runs inside the transaction of an endpoint change, before it; raising refuses the change."""


class RouteRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(
        description="models:/NAME@ALIAS or models:/NAME/VERSION", json_schema_extra=model_ref_schema()
    )
    weight: float = Field(default=100.0, ge=0, le=100)


class ShadowRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(
        description="models:/NAME@ALIAS or models:/NAME/VERSION", json_schema_extra=model_ref_schema()
    )
    sample_percent: float = Field(default=100.0, gt=0, le=100)


class EndpointRequest(BaseModel):
    """An endpoint as a user writes it: routes may name aliases, resolved to versions on save."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="lower-case DNS label", json_schema_extra=pattern_schema(ENDPOINT_NAME_RE))
    routes: list[RouteRequest] = Field(min_length=1, max_length=16, description="weights add up to 100")
    shadows: list[ShadowRequest] = Field(default_factory=list, max_length=4)
    replicas: Replicas = 1
    device: Device = "auto"
    batching: BatchingSpec = Field(default_factory=BatchingSpec)
    payload_limit_bytes: PayloadLimit = 8 * 1024 * 1024
    threads: Threads | None = None
    torchscript: TorchScript = False
    log_sample_rate: LogSampleRate = 1.0
    latency_objective_ms: LatencyObjective | None = None
    description: str | None = Field(default=None, max_length=2000)
    features: FeatureLookup | None = Field(
        default=None, description="requests carry an entity id; replicas fetch its features (Feast)"
    )
    ray: RayResources | None = Field(default=None, description="placement and autoscaling on the ray backend")
    reason: str | None = Field(default=None, max_length=2000)


_DEFAULT_CAUSE = {
    "endpoint.create": RevisionCause.DEPLOY,
    "endpoint.deploy": RevisionCause.DEPLOY,
    "endpoint.update": RevisionCause.EDIT,
    "endpoint.route": RevisionCause.ROLLOUT_STEP,
    "endpoint.rollback": RevisionCause.MANUAL_ROLLBACK,
}


def _runbook_run_of(actor: str) -> str | None:
    """``runbook:NAME/ID`` is how a runbook run acts (its kernel's actor): the run that made a change."""
    if actor.startswith("runbook:") and "/" in actor:
        return actor.rsplit("/", 1)[1] or None
    return None


def _alert_of(actor: str) -> str | None:
    return actor.removeprefix("alert:") or None if actor.startswith("alert:") else None


class DeployRequest(BaseModel):
    """``workbench deploy``: a model reference and the serving options to change (None keeps them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(
        description="models:/NAME@ALIAS or models:/NAME/VERSION", json_schema_extra=model_ref_schema()
    )
    replicas: Replicas | None = None
    device: Device | None = None
    max_batch_size: MaxBatchSize | None = None
    max_wait_ms: MaxWaitMs | None = None
    payload_limit_bytes: PayloadLimit | None = None
    threads: Threads | None = None
    torchscript: TorchScript | None = None
    log_sample_rate: LogSampleRate | None = None
    latency_objective_ms: LatencyObjective | None = None
    features: FeatureLookup | None = Field(
        default=None, description="a feature lookup for the endpoint (kept when not given)"
    )
    ray: RayResources | None = Field(
        default=None, description="placement and autoscaling on the ray backend (kept when not given)"
    )
    expected_revision: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="refuse (409) unless the endpoint is at this revision; 404 if it no longer exists",
    )
    reason: str | None = Field(default=None, max_length=2000)


class ControlPlane:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True)
        self.db = Database(settings.state_url)
        migrate(self.db)
        self.audit = AuditLog(self.db)
        self.idempotency = IdempotencyStore(self.db)
        self.registry = MlflowRegistry(
            settings.mlflow_tracking_uri, settings.mlflow_registry_uri, settings.artifact_root
        )
        self._archives = ArchiveCache(settings.home / "cache" / "model-archives")
        self.endpoints = EndpointRepository()
        self.revisions = RevisionRepository()
        self.rejections = RejectionRepository()
        self.serving: ServingBackend = make_backend(
            settings.serving_backend, settings=settings, audit=self.audit.append
        )
        self._endpoint_locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        self.started_at = time.time()
        from workbench.experiments.service import ExperimentService
        from workbench.features.service import FeatureStoreService
        from workbench.monitoring.service import MonitoringService
        from workbench.rollouts.controller import RolloutController
        from workbench.runbooks import shipped_runbooks_dir
        from workbench.runbooks.engine import RunbookEngine

        self.rollouts = RolloutController(self)
        self.monitoring = MonitoringService(self)
        self.experiments = ExperimentService(self)
        self.features = FeatureStoreService(self)
        self.monitoring.engine.record_observers.append(self.experiments.observe)
        self.runbooks = RunbookEngine(self, (*settings.runbook_dirs, shipped_runbooks_dir()))
        from workbench.optimize.service import OptimizationService

        self.optimizations = OptimizationService(self)

    def close(self) -> None:
        self.optimizations.close()
        self.experiments.stop_loop()
        self.runbooks.stop_loop()
        self.monitoring.engine.stop_loop()
        self.rollouts.stop_loop()
        self.serving.close()
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

    def model_archive(self, info: ModelVersionInfo) -> Path:
        """The version's MLflow model as a ``.tar.gz`` (``workbench export docker``), packed once and then
        served from the archive cache; the file stays in place for as long as it is read."""
        return self._archives.archive(info, lambda: self.registry.model_path(info.name, info.version))

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
        self.audit_registration(info, request, actor)
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
            self.audit_registration(info, request, actor)
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
        return self._apply(spec, action="endpoint.create", actor=actor, reason=request.reason, create=True)

    def update_endpoint(
        self, request: EndpointRequest, *, actor: str, expected_revision: int | None = None
    ) -> EndpointRecord:
        spec = self._resolve_endpoint(request)
        return self._apply(
            spec,
            action="endpoint.update",
            actor=actor,
            reason=request.reason,
            expected_revision=expected_revision,
        )

    def deploy(self, name: str, request: DeployRequest, *, actor: str) -> EndpointRecord:
        """Serve ``request.model`` on ``name`` with all its traffic (creating the endpoint if needed).

        Options not given keep their current values on an existing endpoint.
        """
        info = self.registry.resolve(ModelRef.parse(request.model))
        try:
            current: EndpointSpec | None = self.get_endpoint(name).spec
        except NotFoundError:
            if request.expected_revision is not None:  # confirmed against a revision that is gone
                raise
            current = None
        base = current.model_dump() if current is not None else {"name": name}
        options = request.model_dump(exclude={"model", "reason", "expected_revision"}, exclude_none=True)
        if "max_batch_size" in options or "max_wait_ms" in options:
            batching: dict[str, Any] = dict(current.batching.model_dump()) if current is not None else {}
            batching.update({k: options.pop(k) for k in ("max_batch_size", "max_wait_ms") if k in options})
            options["batching"] = batching
        try:
            spec = EndpointSpec.model_validate(
                {
                    **base,
                    **options,
                    "name": name,
                    "routes": [{"model": info.name, "version": info.version, "weight": 100.0}],
                    "shadows": [],
                }
            )
        except PydanticValidationError as exc:
            message, details = describe_validation_errors(exc.errors())
            raise ValidationError(f"invalid deployment: {message}", errors=details) from None
        return self._apply(
            spec,
            action="endpoint.deploy",
            actor=actor,
            reason=request.reason,
            create=current is None,
            expected_revision=request.expected_revision,
        )

    def delete_endpoint(self, name: str, *, actor: str, reason: str | None = None) -> EndpointRecord:
        """Stop serving ``name`` (in-flight requests finish) and forget its definition."""
        with self._endpoint_lock(name):
            with self.db.write() as connection:
                record = self.endpoints.delete(connection, name)
                self.experiments.end_with_endpoint(connection, name, actor=actor)
                self.audit.record(
                    connection,
                    actor=actor,
                    action="endpoint.delete",
                    target=f"endpoint:{name}",
                    before=record.spec.model_dump(mode="json"),
                    reason=reason,
                )
            self.serving.publish(name, None)
        return record

    def rollback(self, name: str, request: RollbackRequest | None = None, *, actor: str) -> RollbackResult:
        """Back to an earlier revision: an active rollout is aborted, else the planner's target is applied.

        The target is a pure function of the revision history (:mod:`workbench.revisions.plan`): never a
        version an analysis rejected here (unless forced onto an explicit revision), repeated rollbacks
        step further back, an alert's repeated rollback does nothing twice. ``champion`` follows the
        version that serves afterwards.
        """
        request = request or RollbackRequest()
        reason = request.reason
        record = self.get_endpoint(name)
        if request.expected_revision is not None and request.expected_revision != record.revision:
            raise ConflictError(
                f"endpoint {name!r} changed meanwhile: revision is {record.revision}, "
                f"expected {request.expected_revision}",
                endpoint=name,
                revision=record.revision,
            )
        alert = _alert_of(actor)
        aborted: str | None = None
        active = self.rollouts.find(endpoint=name, active_only=True)
        if active:
            aborted = active[0].id
            self.rollouts.abort(aborted, actor=actor, reason=reason or "rollback")
        interrupted = self.experiments.interrupt(name, actor=actor, reason=reason or "rollback")
        if active or interrupted is not None:
            after = self.get_endpoint(name)
            if request.to_revision is None:
                return RollbackResult(
                    endpoint=after,
                    changed=after.revision != record.revision,
                    message=(
                        f"aborted rollout {aborted} of {name}"
                        if aborted
                        else f"paused experiment {interrupted.name if interrupted else ''} of {name}"
                    )
                    + f": {routes_label(after.spec)} again",
                    from_revision=record.revision,
                    revision=after.revision,
                    restored=self._restored_by(name, after.revision),
                    aborted_rollout=aborted,
                )
            record = after
        with self.db.read() as connection:
            history = self.revisions.history(connection, name)
            rejected = {(r.model, r.version) for r in self.rejections.list(connection, name)}
        plan = plan_rollback(
            history, rejected, to_revision=request.to_revision, force=request.force, alert=alert
        )
        if plan.target is None:
            return RollbackResult(
                endpoint=record,
                changed=False,
                message=plan.message,
                from_revision=plan.from_revision,
                revision=record.revision,
                aborted_rollout=aborted,
            )
        current = record.spec
        traffic = plan.target.spec.model_dump(include={"routes", "shadows"})
        spec = EndpointSpec.model_validate({**current.model_dump(), **traffic})
        cause = RevisionCause.AUTOMATIC_ROLLBACK if alert else RevisionCause.MANUAL_ROLLBACK
        applied = self._apply(
            spec,
            action="endpoint.rollback",
            actor=actor,
            reason=reason or plan.message,
            expected_revision=plan.from_revision,
            change=Change(cause, restores=plan.target.revision),
        )
        self._champion_follows(spec, actor=actor, why=f"rollback of {name}")
        return RollbackResult(
            endpoint=applied,
            changed=True,
            message=plan.message,
            from_revision=plan.from_revision,
            revision=applied.revision,
            restored=plan.target.revision,
            aborted_rollout=aborted,
            skipped=list(plan.skipped),
        )

    def _champion_follows(self, spec: EndpointSpec, *, actor: str, why: str) -> None:
        live = [r for r in spec.routes if r.weight > 0]
        if len(live) == 1:
            model = self.registry.get_model(live[0].model)
            if model.aliases.get("champion") not in (None, live[0].version):
                self.set_alias(live[0].model, "champion", live[0].version, actor=actor, reason=why)

    def _restored_by(self, name: str, revision: int) -> int | None:
        with self.db.read() as connection:
            history = self.revisions.history(connection, name, limit=1)
        return history[-1].restores if history and history[-1].revision == revision else None

    def history(self, name: str, *, limit: int = 100) -> list[Revision]:
        """The endpoint's revisions, newest first (its name may outlive a deletion: history stays)."""
        with self.db.read() as connection:
            revisions = self.revisions.history(connection, name, limit=limit)
            if not revisions:
                self.endpoints.get(connection, name)  # a clear 404 for a name never seen
        return list(reversed(revisions))

    def rejected_versions(self, name: str) -> list[Rejection]:
        with self.db.read() as connection:
            return self.rejections.list(connection, name)

    def endpoint_status(self, name: str) -> dict[str, Any]:
        record = self.get_endpoint(name)
        status = self.serving.status()
        router = status.get("router_url")
        return {
            "endpoint": record.model_dump(mode="json"),
            "backend": status.get("backend"),
            "router_url": router,
            "router_grpc": status.get("router_grpc"),
            "urls": {
                "oip": f"{router}/v2/models/{name}/infer" if router else None,
                "mlflow": f"{router}/endpoints/{name}/invocations" if router else None,
            },
            "replicas": [r for r in status.get("replicas", []) if r.get("endpoint") == name],
        }

    def start_serving(self) -> None:
        """Adopt or start what the stored endpoints need; called once by the server at start-up."""
        self.serving.start([e.spec for e in self.list_endpoints()], self._model_dirs)

    def _apply(
        self,
        spec: EndpointSpec,
        *,
        action: str,
        actor: str,
        reason: str | None,
        create: bool = False,
        expected_revision: int | None = None,
        change: Change | None = None,
        guard: Guard | None = None,
    ) -> EndpointRecord:
        """Bring the replicas up first, then commit definition, revision and audit event, then route.

        If the replicas cannot start, nothing is committed and traffic is untouched. ``guard`` runs in
        the commit's transaction first: it may refuse the change (raise) after the wait for the replicas,
        or record something with it (a rollout's transition), atomically.

        Locking: only this endpoint's lock is held, across the wait for its replicas, so two changes of
        one endpoint never interleave; nothing global is held, so other endpoints (and every read) go on.
        """
        with self._endpoint_lock(spec.name):
            if create:
                with self.db.read() as connection:
                    try:
                        self.endpoints.get(connection, spec.name)
                    except NotFoundError:
                        pass
                    else:
                        raise ConflictError(f"endpoint {spec.name!r} already exists", endpoint=spec.name)
            self._check_device(spec)
            self.features.check_lookup(spec)
            self.serving.prepare(spec, self._model_dirs(spec))
            try:
                with self.db.write() as connection:
                    if guard is not None:
                        guard(connection)
                    before = None
                    if create:
                        first = self.revisions.latest_number(connection, spec.name) + 1
                        record = self.endpoints.create(connection, spec, revision=first)
                    else:
                        previous = self.endpoints.get(connection, spec.name)
                        before = previous.spec.model_dump(mode="json")
                        record = self.endpoints.replace(connection, spec, expected_revision=expected_revision)
                    event_id = self.audit.record(
                        connection,
                        actor=actor,
                        action=action,
                        target=f"endpoint:{spec.name}",
                        before=before,
                        after=spec.model_dump(mode="json"),
                        reason=reason,
                        link=f"revision:{spec.name}/{record.revision}",
                    )
                    self._record_revision(connection, record, action, actor, reason, change, event_id)
            finally:
                # Route what is committed (after a failure: the old definition, retiring what was prepared).
                self._publish(spec.name)
        return record

    def _publish(self, name: str) -> None:
        """Route one endpoint as committed (called with its lock held, so nobody commits it meanwhile)."""
        try:
            committed: EndpointSpec | None = self.get_endpoint(name).spec
        except NotFoundError:
            committed = None
        self.serving.publish(name, committed)

    def apply_spec(
        self,
        spec: EndpointSpec,
        *,
        action: str,
        actor: str,
        reason: str | None,
        change: Change | None = None,
        guard: Guard | None = None,
    ) -> EndpointRecord:
        """Replace an endpoint's definition (traffic split, options) the same way every change does.

        ``guard(connection)`` runs in the transaction that commits the change, before it: a rollout
        re-checks there that nobody moved it since its tick read it (optimistic concurrency), so no lock
        has to be held across the wait for the replicas.
        """
        return self._apply(spec, action=action, actor=actor, reason=reason, change=change, guard=guard)

    def reject_version(
        self,
        endpoint: str,
        model: str,
        version: int,
        *,
        rollout_id: str | None,
        actor: str,
        reason: str,
        evidence: Any = None,
    ) -> Rejection:
        """Mark a version an analysis rolled back: no rollout or rollback returns to it without force."""
        with self.db.write() as connection:
            rejection = self.rejections.mark(
                connection,
                endpoint=endpoint,
                model=model,
                version=version,
                rollout_id=rollout_id,
                actor=actor,
                reason=reason,
                evidence=evidence,
            )
            self.audit.record(
                connection,
                actor=actor,
                action="endpoint.version.reject",
                target=f"endpoint:{endpoint}",
                after={"model": model, "version": version, "evidence": evidence},
                reason=reason,
                link=f"rollout:{rollout_id}" if rollout_id else None,
            )
        return rejection

    def clear_rejection(self, endpoint: str, model: str, version: int, *, actor: str, reason: str) -> bool:
        """A version promoted on an endpoint has proved itself there: it is no longer rejected."""
        with self.db.write() as connection:
            cleared = self.rejections.clear(connection, endpoint=endpoint, model=model, version=version)
            if cleared:
                self.audit.record(
                    connection,
                    actor=actor,
                    action="endpoint.version.unreject",
                    target=f"endpoint:{endpoint}",
                    after={"model": model, "version": version},
                    reason=reason,
                )
        return cleared

    def _record_revision(
        self,
        connection: Connection,
        record: EndpointRecord,
        action: str,
        actor: str,
        reason: str | None,
        change: Change | None,
        event_id: int,
    ) -> None:
        change = change or Change(_DEFAULT_CAUSE.get(action, RevisionCause.EDIT))
        restores = change.restores
        if restores is None and change.cause.is_rollback and change.rollout_id is not None:
            history = self.revisions.history(connection, record.spec.name)
            restores = revision_before_rollout(history, change.rollout_id)
        self.revisions.append(
            connection,
            spec=record.spec,
            revision=record.revision,
            cause=change.cause,
            actor=actor,
            reason=reason,
            rollout_id=change.rollout_id,
            runbook_run_id=_runbook_run_of(actor),
            alert=_alert_of(actor),
            restores=restores,
            audit_event_id=event_id,
        )

    def _check_device(self, spec: EndpointSpec) -> None:
        if self.settings.serving_backend == "local" and spec.device not in ("auto", "cpu"):
            select_device(spec.device, probe_inventory())

    def _model_dirs(self, spec: EndpointSpec) -> ModelDirs:
        """Looked up in the registry only for the replicas the backend has to start."""
        versions = [(r.model, r.version) for r in spec.routes] + [(s.model, s.version) for s in spec.shadows]
        return LazyModelDirs(versions, self.registry.model_path)

    def _endpoint_lock(self, name: str) -> threading.RLock:
        with self._locks_guard:
            return self._endpoint_locks.setdefault(name, threading.RLock())

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
            "rollouts": [
                {
                    "id": r.id,
                    "endpoint": r.endpoint,
                    "strategy": r.strategy,
                    "stable": f"models:/{r.stable_model}/{r.stable_version}",
                    "candidate": f"models:/{r.candidate_model}/{r.candidate_version}",
                    "phase": r.phase.value,
                    "step_index": r.step_index,
                    "updated_at": r.updated_at.isoformat(),
                    "message": last.message if (last := self._last_event(r.id)) else None,
                }
                for r in self.rollouts.find(limit=10)
            ],
            "runbook_runs": [
                {
                    "id": run.id,
                    "runbook": run.runbook,
                    "status": run.status.value,
                    "trigger": run.trigger.kind.value,
                    "started_at": run.started_at.isoformat() if run.started_at else None,
                    "duration_s": run.duration_s,
                    "outcome": (run.summary or {}).get("outcome") or run.error,
                }
                for run in self.runbooks.runs(limit=10)
            ],
            "audit_events": self.audit.count(),
            "serving": self.serving.status(),
        }

    # ---------------------------------------------------------------- helpers
    def _last_event(self, rollout_id: str) -> RolloutEvent | None:
        events = self.rollouts.events(rollout_id)
        transitions = [e for e in events if e.kind == "transition"] or events
        return transitions[-1] if transitions else None

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

    def audit_registration(self, info: ModelVersionInfo, request: RegistrationRequest, actor: str) -> None:
        """The audit event of a registration made in MLflow (by the API's routes, or an optimisation's gate)."""
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
