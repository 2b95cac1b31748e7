"""``workbench.Client``: the one way the CLI, widgets, dashboards, runbooks and the JupyterLab extension
talk to a control plane. Typed methods mirror the HTTP API one to one; errors come back as the same
``WorkbenchError`` subclasses the server raised.
"""

from __future__ import annotations

import getpass
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from workbench.errors import UnavailableError, ValidationError, error_from_dict
from workbench.protocol import (
    ACTOR_HEADER,
    API_PREFIX,
    IDEMPOTENCY_HEADER,
    PROBE_HEADER,
    VERSION_SELECT_HEADER,
)
from workbench.records.audit import AuditEvent
from workbench.records.endpoints import EndpointRecord
from workbench.records.experiments import ExperimentRecord
from workbench.records.monitoring import AlertEvent, AlertRuleRecord, MonitorRecord, ReportRecord
from workbench.records.optimizations import OptimizationRecord
from workbench.records.rollouts import RolloutAnalysis, RolloutRecord
from workbench.records.runbooks import RunRecord, ScheduleRecord
from workbench.registry.types import (
    Lineage,
    ModelVersionInfo,
    ReferenceSpec,
    RegisteredModelInfo,
    RegistrationRequest,
)
from workbench.revisions.model import Rejection, Revision, RollbackResult
from workbench.settings import Settings, get_settings
from workbench.specs.experiment import ExperimentSpec
from workbench.specs.monitor import AlertRuleSpec, MonitorSpec
from workbench.specs.rollout import RolloutSpec
from workbench.specs.runbook import ScheduleSpec

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: A changing call whose connection dropped is sent once more with the same idempotency key.
_CHANGING_ATTEMPTS = 2
#: Feast commands the control plane runs (apply, materialise) may take minutes on a large repository.
COMMAND_TIMEOUT = 900.0
_RETRY_PAUSE_S = 0.2


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


_Record = TypeVar("_Record")


class Client:
    """A synchronous client for one control plane.

    ``Client()`` finds the control plane and its token from the environment (``WORKBENCH_URL``,
    ``WORKBENCH_TOKEN``, or the token file in ``WORKBENCH_HOME``), as a notebook next to ``workbench up``
    expects.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        settings: Settings | None = None,
        actor: str | None = None,
        timeout: float = 60.0,
        idempotency_key: str | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.url = (url or self.settings.api_url).rstrip("/")
        self._token = token
        self._idempotency_key = idempotency_key
        headers = {ACTOR_HEADER: actor or self.settings.actor or _default_actor()}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    # ------------------------------------------------------------- plumbing
    @property
    def actor(self) -> str:
        """Who this client's calls are recorded as in the audit log."""
        return str(self._http.headers.get(ACTOR_HEADER, ""))

    def as_actor(self, actor: str, *, idempotency_key: str | None = None) -> Client:
        """A new client to the same control plane with the same token, acting as ``actor`` (a UI acting
        for its signed-in user); the caller closes it.

        ``idempotency_key``: the key of the one action this client is made for (a UI's confirmation),
        so the same confirmation sent twice acts once; a second, different changing call is refused."""
        timeout = self._http.timeout.read or 60.0
        return Client(
            self.url,
            token=self._token,
            settings=self.settings,
            actor=actor,
            timeout=timeout,
            idempotency_key=idempotency_key,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _auth(self) -> dict[str, str]:
        token = self._token or self.settings.read_token()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self._auth(), **kwargs.pop("headers", {})}
        changing = method.upper() not in _SAFE_METHODS
        if changing:
            # One key per action: the retry below, or a caller repeating it with the same key (a UI after a
            # dropped connection), is answered with the first copy's result instead of acting twice.
            headers.setdefault(IDEMPOTENCY_HEADER, self._idempotency_key or uuid.uuid4().hex)
        attempts = _CHANGING_ATTEMPTS if changing else 1
        for attempt in range(attempts):
            try:
                response = self._http.request(method, f"{API_PREFIX}{path}", headers=headers, **kwargs)
                break
            except httpx.TransportError as exc:
                if attempt + 1 < attempts:
                    time.sleep(_RETRY_PAUSE_S)
                    continue
                raise UnavailableError(
                    f"cannot reach the control plane at {self.url}: {exc}. Is `workbench up` running?",
                    url=self.url,
                ) from None
        if response.status_code >= 400:
            try:
                payload = response.json().get("error", {})
            except ValueError:
                payload = {"message": response.text[:500] or response.reason_phrase}
            raise error_from_dict(payload, response.status_code)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # --------------------------------------------------------------- system
    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/health")
        return result

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/status")
        return result

    # --------------------------------------------------------------- models
    def list_models(self) -> list[RegisteredModelInfo]:
        return [RegisteredModelInfo.model_validate(m) for m in self._request("GET", "/models")]

    def get_model(self, name: str) -> RegisteredModelInfo:
        return RegisteredModelInfo.model_validate(self._request("GET", f"/models/{name}"))

    def list_versions(self, name: str) -> list[ModelVersionInfo]:
        return [ModelVersionInfo.model_validate(v) for v in self._request("GET", f"/models/{name}/versions")]

    def get_version(self, name: str, version: int | str) -> ModelVersionInfo:
        return ModelVersionInfo.model_validate(self._request("GET", f"/models/{name}/versions/{version}"))

    def resolve(self, uri: str) -> ModelVersionInfo:
        return ModelVersionInfo.model_validate(self._request("GET", "/resolve", params={"uri": uri}))

    def download_model(self, name: str, version: int, destination: Path) -> Path:
        """The version's MLflow model directory, unpacked under ``destination`` (returned: its ``model/``)."""
        from workbench.registry.archive import unpack_model

        destination.mkdir(parents=True, exist_ok=True)
        archive = destination / ".model.tar.gz"
        try:
            with self._http.stream(
                "GET", f"{API_PREFIX}/models/{name}/versions/{version}/model", headers=self._auth()
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    try:
                        payload = response.json().get("error", {})
                    except ValueError:
                        payload = {"message": response.text[:500] or response.reason_phrase}
                    raise error_from_dict(payload, response.status_code)
                with archive.open("wb") as handle:
                    for chunk in response.iter_bytes(1 << 20):
                        handle.write(chunk)
        except httpx.TransportError as exc:
            raise UnavailableError(
                f"cannot reach the control plane at {self.url}: {exc}", url=self.url
            ) from None
        try:
            return unpack_model(archive, destination)
        finally:
            archive.unlink(missing_ok=True)

    # --------------------------------------------------------- optimisation
    def optimize(
        self,
        model: str,
        method: str,
        *,
        accuracy_budget_points: float | None = None,
        min_speedup: float | None = None,
        batch_size: int | None = None,
        threads: int | None = None,
        aliases: Sequence[str] = (),
        reason: str | None = None,
        wait_s: float | None = 900.0,
    ) -> OptimizationRecord:
        """Ask for a variant of ``model`` (``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``).

        The control plane makes it, measures it beside its parent and registers it only within the
        accuracy budget and faster at the serving batch size. With ``wait_s`` (the default) this returns
        the finished record: ``status`` is ``registered`` (see ``variant_version``), ``refused`` (see
        ``verdict["reasons"]``) or ``failed`` (see ``error``).
        """
        info = self.resolve(model)
        body: dict[str, Any] = {"method": method, "aliases": list(aliases), "reason": reason}
        for key, value in (
            ("accuracy_budget_points", accuracy_budget_points),
            ("min_speedup", min_speedup),
            ("batch_size", batch_size),
            ("threads", threads),
        ):
            if value is not None:
                body[key] = value
        record = OptimizationRecord.model_validate(
            self._request("POST", f"/models/{info.name}/versions/{info.version}/optimizations", json=body)
        )
        return self.wait_optimization(record.id, timeout_s=wait_s) if wait_s else record

    def optimization(self, optimization_id: str) -> OptimizationRecord:
        return OptimizationRecord.model_validate(self._request("GET", f"/optimizations/{optimization_id}"))

    def wait_optimization(self, optimization_id: str, *, timeout_s: float = 900.0) -> OptimizationRecord:
        """The record once it has finished, or as it is after ``timeout_s``."""
        return self._long_poll(
            f"/optimizations/{optimization_id}",
            timeout_s,
            OptimizationRecord.model_validate,
            lambda r: r.status.finished,
        )

    def optimizations(
        self, *, model: str | None = None, version: int | None = None, limit: int = 100
    ) -> list[OptimizationRecord]:
        params: dict[str, Any] = {"limit": limit}
        if model is not None:
            params["model"] = model
        if version is not None:
            params["version"] = version
        return [
            OptimizationRecord.model_validate(r)
            for r in self._request("GET", "/optimizations", params=params)
        ]

    def variants(self, model: str) -> dict[str, Any]:
        """The comparison table of a version and its variants (``rows``: parent first, then each variant)."""
        info = self.resolve(model)
        result: dict[str, Any] = self._request("GET", f"/models/{info.name}/versions/{info.version}/variants")
        return result

    def register_from_run(
        self, name: str, run_id: str, *, artifact_path: str = "model", **fields: Any
    ) -> ModelVersionInfo:
        body = {
            "source": {"kind": "run", "run_id": run_id, "artifact_path": artifact_path},
            **_fields(fields),
        }
        return ModelVersionInfo.model_validate(self._request("POST", f"/models/{name}/versions", json=body))

    def register_from_path(self, name: str, path: str | Path, **fields: Any) -> ModelVersionInfo:
        """Register an MLflow model directory that the control plane can read (within its allowed roots)."""
        body = {
            "source": {"kind": "path", "path": str(Path(path).expanduser().absolute())},
            **_fields(fields),
        }
        return ModelVersionInfo.model_validate(self._request("POST", f"/models/{name}/versions", json=body))

    def register_model(
        self,
        name: str,
        model: Any,
        *,
        input_example: Any,
        reference_data: Any = None,
        reference_target: str | None = None,
        training_data: Any = None,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        aliases: Sequence[str] = (),
        parent_version: int | None = None,
        code_version: str | None = None,
        data_window: str | None = None,
        trained_by: str | None = None,
        reason: str | None = None,
    ) -> ModelVersionInfo:
        """Register an in-memory ``torch.nn.Module`` or MLflow ``PythonModel`` and its reference data.

        The model is saved here as an MLflow model and uploaded, so this works against a control plane
        on another machine as well as against a local one.
        """
        from workbench.registry import archive
        from workbench.registry.lineage import frame_digest, git_code_version
        from workbench.registry.packaging import save_model

        lineage = Lineage(
            data_digest=frame_digest(training_data) if training_data is not None else None,
            data_rows=len(training_data) if training_data is not None else None,
            code_version=code_version or git_code_version(),
            parent_version=parent_version,
            data_window=data_window,
            trained_by=trained_by,
        )
        with tempfile.TemporaryDirectory(prefix="workbench-register-") as tmp:
            model_dir = Path(tmp) / "model"
            save_model(model, model_dir, input_example=input_example)
            reference_path = None
            if reference_data is not None:
                reference_path = Path(tmp) / "reference.parquet"
                reference_data.to_parquet(reference_path, index=False)
            request = RegistrationRequest(
                description=description,
                tags=dict(tags or {}),
                params={k: str(v) for k, v in (params or {}).items()},
                metrics={k: float(v) for k, v in (metrics or {}).items()},
                lineage=lineage,
                reference=ReferenceSpec(path=archive.REFERENCE_FILE, target=reference_target)
                if reference_path is not None
                else None,
                aliases=list(aliases),
                reason=reason,
            )
            payload = archive.pack(model_dir, request, reference_path)
        return ModelVersionInfo.model_validate(
            self._request(
                "POST",
                f"/models/{name}/versions/upload",
                content=payload,
                headers={"Content-Type": "application/gzip"},
            )
        )

    def set_alias(
        self, name: str, alias: str, version: int, *, reason: str | None = None
    ) -> ModelVersionInfo:
        body = {"version": version, "reason": reason}
        return ModelVersionInfo.model_validate(
            self._request("PUT", f"/models/{name}/aliases/{alias}", json=body)
        )

    def delete_alias(self, name: str, alias: str, *, reason: str | None = None) -> int:
        params = {"reason": reason} if reason else None
        result = self._request("DELETE", f"/models/{name}/aliases/{alias}", params=params)
        return int(result["previous_version"])

    # ------------------------------------------------------------ endpoints
    def list_endpoints(self) -> list[EndpointRecord]:
        return [EndpointRecord.model_validate(e) for e in self._request("GET", "/endpoints")]

    def get_endpoint(self, name: str) -> EndpointRecord:
        return EndpointRecord.model_validate(self._request("GET", f"/endpoints/{name}"))

    def create_endpoint(
        self, name: str, routes: Sequence[Mapping[str, Any]] | str, **fields: Any
    ) -> EndpointRecord:
        """``routes`` is one model reference (all traffic) or a list of ``{"model": ref, "weight": pct}``."""
        route_list = (
            [{"model": routes, "weight": 100}] if isinstance(routes, str) else [dict(r) for r in routes]
        )
        body = {"name": name, "routes": route_list, **fields}
        return EndpointRecord.model_validate(self._request("POST", "/endpoints", json=body, timeout=600.0))

    def update_endpoint(
        self,
        name: str,
        routes: Sequence[Mapping[str, Any]] | str,
        *,
        revision: int | None = None,
        **fields: Any,
    ) -> EndpointRecord:
        route_list = (
            [{"model": routes, "weight": 100}] if isinstance(routes, str) else [dict(r) for r in routes]
        )
        headers = {"If-Match": str(revision)} if revision is not None else {}
        body = {"name": name, "routes": route_list, **fields}
        return EndpointRecord.model_validate(
            self._request("PUT", f"/endpoints/{name}", json=body, headers=headers, timeout=600.0)
        )

    def deploy(self, name: str, model: str, *, reason: str | None = None, **options: Any) -> EndpointRecord:
        """Serve ``model`` (``models:/NAME@ALIAS`` or ``/VERSION``) on endpoint ``name``; waits until ready.

        ``options``: replicas, device, max_batch_size, max_wait_ms, payload_limit_bytes, threads,
        torchscript, log_sample_rate. Those not given keep their current values. ``expected_revision`` refuses (409)
        if the endpoint moved on since it was read, and (404) if it was deleted meanwhile.
        """
        body = {"model": model, "reason": reason, **options}
        return EndpointRecord.model_validate(
            self._request("POST", f"/endpoints/{name}/deploy", json=body, timeout=600.0)
        )

    def rollback(
        self,
        name: str,
        *,
        reason: str | None = None,
        to_revision: int | None = None,
        force: bool = False,
        expected_revision: int | None = None,
    ) -> RollbackResult:
        """Back to an earlier revision: an active rollout is aborted, else the change before the last one
        that stands (never onto a version rejected on this endpoint), or ``to_revision`` as asked.

        ``result.message`` says what it did; ``expected_revision`` refuses (409) if the endpoint moved on.
        """
        # Only what was given, validated by the server (a control plane one version apart fills in the rest).
        fields = {"reason": reason, "to_revision": to_revision, "expected_revision": expected_revision}
        body: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
        if force:
            body["force"] = True
        return RollbackResult.model_validate(
            self._request("POST", f"/endpoints/{name}/rollback", json=body, timeout=600.0)
        )

    def history(self, name: str, *, limit: int = 100) -> list[Revision]:
        """Every traffic change of ``name``, newest first (like ``kubectl rollout history``)."""
        rows = self._request("GET", f"/endpoints/{name}/history", params={"limit": limit})
        return [Revision.model_validate(r) for r in rows]

    def rejected_versions(self, name: str) -> list[Rejection]:
        """Versions an analysis rolled back on ``name``: rollouts to them need ``force``."""
        return [Rejection.model_validate(r) for r in self._request("GET", f"/endpoints/{name}/rejected")]

    def undeploy(self, name: str, *, reason: str | None = None) -> EndpointRecord:
        """Stop serving ``name``: in-flight requests finish, then its replicas stop."""
        return self.delete_endpoint(name, reason=reason)

    def endpoint_status(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/endpoints/{name}/status")
        return result

    def delete_endpoint(self, name: str, *, reason: str | None = None) -> EndpointRecord:
        params = {"reason": reason} if reason else None
        return EndpointRecord.model_validate(self._request("DELETE", f"/endpoints/{name}", params=params))

    # ------------------------------------------------------------- rollouts
    def start_rollout(
        self,
        spec: RolloutSpec | Mapping[str, Any],
        *,
        reason: str | None = None,
        force: bool = False,
        expected_revision: int | None = None,
    ) -> RolloutRecord:
        """Start a canary of ``spec["candidate"]`` on ``spec["endpoint"]``; the controller drives it.
        ``expected_revision``: refused (409) if the endpoint changed since the caller looked."""
        # Only what differs from the defaults: a control plane a version older fills in its own.
        body_spec = (
            spec.model_dump(mode="json", exclude_defaults=True)
            if isinstance(spec, RolloutSpec)
            else dict(spec)
        )
        return RolloutRecord.model_validate(
            self._request(
                "POST",
                "/rollouts",
                json={
                    "spec": body_spec,
                    "reason": reason,
                    **({"force": True} if force else {}),
                    **({"expected_revision": expected_revision} if expected_revision is not None else {}),
                },
                timeout=600.0,
            )
        )

    def rollouts(self, *, endpoint: str | None = None, active: bool = False) -> list[RolloutRecord]:
        params: dict[str, Any] = {"active": active}
        if endpoint:
            params["endpoint"] = endpoint
        return [RolloutRecord.model_validate(r) for r in self._request("GET", "/rollouts", params=params)]

    def rollout(self, rollout_id: str) -> dict[str, Any]:
        """The rollout and its events (every step, verdict and transition, with evidence)."""
        result: dict[str, Any] = self._request("GET", f"/rollouts/{rollout_id}")
        return result

    def rollout_action(self, rollout_id: str, action: str, *, reason: str | None = None) -> RolloutRecord:
        """``pause``, ``resume``, ``promote`` or ``abort``."""
        return RolloutRecord.model_validate(
            self._request("POST", f"/rollouts/{rollout_id}/{action}", json={"reason": reason}, timeout=600.0)
        )

    def rollout_analyses(
        self, rollout_id: str, *, after_id: int | None = None, limit: int = 1000
    ) -> list[RolloutAnalysis]:
        """Every tick's analysis, oldest first: poll with ``after_id`` set to the last id seen."""
        params: dict[str, Any] = {"limit": limit}
        if after_id is not None:
            params["after_id"] = after_id
        answer = self._request("GET", f"/rollouts/{rollout_id}/analyses", params=params)
        return [RolloutAnalysis.model_validate(a) for a in answer]

    # ----------------------------------------------------------- experiments
    def create_experiment(
        self,
        spec: ExperimentSpec | Mapping[str, Any],
        *,
        start: bool = False,
        reason: str | None = None,
    ) -> ExperimentRecord:
        """Define an A/B experiment on an endpoint; ``start``: route its variants at once."""
        body_spec = spec.model_dump(mode="json") if isinstance(spec, ExperimentSpec) else dict(spec)
        answer = self._request(
            "POST",
            "/experiments",
            json={"spec": body_spec, "start": start, "reason": reason},
            timeout=600.0,
        )
        return ExperimentRecord.model_validate(answer)

    def experiments(self, *, endpoint: str | None = None, state: str | None = None) -> list[ExperimentRecord]:
        params: dict[str, Any] = {}
        if endpoint:
            params["endpoint"] = endpoint
        if state:
            params["state"] = state
        return [
            ExperimentRecord.model_validate(r) for r in self._request("GET", "/experiments", params=params)
        ]

    def experiment(self, name: str) -> dict[str, Any]:
        """The experiment, units per variant, and a look taken now: verdict, reason, every comparison."""
        result: dict[str, Any] = self._request("GET", f"/experiments/{name}")
        return result

    def experiment_looks(
        self, name: str, *, limit: int = 500, after: float | None = None
    ) -> list[dict[str, Any]]:
        """The kept looks, oldest first (estimates and their confidence sequences over time); poll with
        ``after`` set to the last ``ts`` seen."""
        params: dict[str, Any] = {"limit": limit}
        if after is not None:
            params["after"] = after
        result: list[dict[str, Any]] = self._request("GET", f"/experiments/{name}/looks", params=params)
        return result

    def experiment_action(
        self, name: str, action: str, *, reason: str | None = None, expected_revision: int | None = None
    ) -> ExperimentRecord:
        """``start``, ``resume``, ``pause`` or ``conclude``."""
        body: dict[str, Any] = {"reason": reason}
        if expected_revision is not None:
            body["expected_revision"] = expected_revision
        answer = self._request("POST", f"/experiments/{name}/{action}", json=body, timeout=600.0)
        return ExperimentRecord.model_validate(answer)

    def promote_experiment(
        self,
        name: str,
        *,
        strategy: str = "canary",
        variant: str | None = None,
        reason: str | None = None,
        rollout: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Conclude it and roll its winner out; returns the experiment and the rollout it started.
        ``rollout``: more rollout spec fields (steps, analysis, blue_green options, tick_s)."""
        result: dict[str, Any] = self._request(
            "POST",
            f"/experiments/{name}/promote",
            json={
                "strategy": strategy,
                "variant": variant,
                "reason": reason,
                "rollout": dict(rollout) if rollout is not None else None,
            },
            timeout=600.0,
        )
        return result

    def outcomes(self, name: str, outcomes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Outcomes for an experiment: each ``{"unit" or "request_id", "metric", "value"[, "covariate"]}``.
        A unit's outcome for a metric is joined once, however often it is sent (a retried webhook)."""
        result: dict[str, Any] = self._request(
            "POST", f"/experiments/{name}/outcomes", json={"outcomes": list(outcomes)}, timeout=120.0
        )
        return result

    # ------------------------------------------------------------- features
    def features(self) -> dict[str, Any]:
        """The feature repository: entities, feature views (TTL, materialised until), feature services."""
        result: dict[str, Any] = self._request("GET", "/features")
        return result

    def apply_features(self, *, reason: str | None = None) -> dict[str, Any]:
        """``feast apply`` on the repository's definitions (run by the control plane)."""
        result: dict[str, Any] = self._request(
            "POST", "/features/apply", json={"reason": reason}, timeout=COMMAND_TIMEOUT
        )
        return result

    def materialize_features(
        self,
        *,
        end: datetime | None = None,
        start: datetime | None = None,
        views: Sequence[str] | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Load the offline store's values into the online store, up to ``end`` (now by default)."""
        body: dict[str, Any] = {"reason": reason}
        if end is not None:
            body["end"] = end.isoformat()
        if start is not None:
            body["start"] = start.isoformat()
        if views is not None:
            body["views"] = list(views)
        result: dict[str, Any] = self._request(
            "POST", "/features/materialize", json=body, timeout=COMMAND_TIMEOUT
        )
        return result

    def historical_features(self, endpoint: str, ids: Sequence[Any], timestamps: Sequence[float]) -> Any:
        """A DataFrame of the endpoint's fetched inputs per (entity id, epoch seconds), from Feast's
        point-in-time join: the features each entity had then (for training sets that match serving)."""
        import pandas as pd

        body = {
            "endpoint": endpoint,
            "ids": [_plain(i) for i in ids],
            "timestamps": [float(t) for t in timestamps],
        }
        result = self._request("POST", "/features/historical", json=body, timeout=COMMAND_TIMEOUT)
        return pd.DataFrame(result["columns"])

    # ----------------------------------------------------------- monitoring
    def create_monitor(
        self, spec: MonitorSpec | Mapping[str, Any], *, reason: str | None = None
    ) -> MonitorRecord:
        """Watch an endpoint: series, drift against the serving version's reference, performance."""
        body = spec.model_dump(mode="json") if isinstance(spec, MonitorSpec) else dict(spec)
        return MonitorRecord.model_validate(
            self._request("POST", "/monitors", json={"spec": body, "reason": reason}, timeout=120.0)
        )

    def monitors(self, *, endpoint: str | None = None) -> list[MonitorRecord]:
        params = {"endpoint": endpoint} if endpoint else {}
        return [MonitorRecord.model_validate(m) for m in self._request("GET", "/monitors", params=params)]

    def monitor(self, name: str, *, history: int = 0) -> dict[str, Any]:
        """The monitor's values now (series, drift per column, performance), its rules, and history."""
        result: dict[str, Any] = self._request(
            "GET", f"/monitors/{name}", params={"history": history}, timeout=120.0
        )
        return result

    def delete_monitor(self, name: str) -> MonitorRecord:
        return MonitorRecord.model_validate(self._request("DELETE", f"/monitors/{name}"))

    def create_alert_rule(
        self, spec: AlertRuleSpec | Mapping[str, Any], *, reason: str | None = None
    ) -> AlertRuleRecord:
        body = spec.model_dump(mode="json") if isinstance(spec, AlertRuleSpec) else dict(spec)
        return AlertRuleRecord.model_validate(
            self._request("POST", "/alert-rules", json={"spec": body, "reason": reason}, timeout=120.0)
        )

    def alert_rules(self, *, monitor: str | None = None) -> list[AlertRuleRecord]:
        params = {"monitor": monitor} if monitor else {}
        return [
            AlertRuleRecord.model_validate(r) for r in self._request("GET", "/alert-rules", params=params)
        ]

    def delete_alert_rule(self, name: str) -> AlertRuleRecord:
        return AlertRuleRecord.model_validate(self._request("DELETE", f"/alert-rules/{name}"))

    def alerts(
        self,
        *,
        rule: str | None = None,
        monitor: str | None = None,
        endpoint: str | None = None,
        limit: int = 200,
    ) -> list[AlertEvent]:
        params: dict[str, Any] = {"limit": limit}
        for key, value in (("rule", rule), ("monitor", monitor), ("endpoint", endpoint)):
            if value is not None:
                params[key] = value
        return [AlertEvent.model_validate(e) for e in self._request("GET", "/alerts", params=params)]

    def feedback(
        self,
        endpoint: str,
        labels: Mapping[str, float] | Sequence[tuple[str, float]] = (),
        *,
        outcomes: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """Ground truth for earlier predictions, by request id (the ``x-request-id`` of each answer);
        ``outcomes`` (``{"unit" or "request_id", "metric", "value"}``) go to the endpoint's A/B experiment."""
        pairs = list(labels.items()) if isinstance(labels, Mapping) else list(labels)
        body: dict[str, Any] = {
            "endpoint": endpoint,
            "labels": [{"request_id": r, "label": y} for r, y in pairs],
        }
        if outcomes:
            body["outcomes"] = [dict(o) for o in outcomes]
        result: dict[str, Any] = self._request("POST", "/feedback", json=body, timeout=120.0)
        return result

    def labelled_data(
        self,
        endpoint: str,
        *,
        window_s: float | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
    ) -> Any:
        """A pandas DataFrame of logged requests with fed-back labels: features, ``prediction``,
        ``label``, ``version``, ``request_id`` and ``ts`` (the data retraining learns from)."""
        import pandas as pd

        params: dict[str, Any] = {"endpoint": endpoint}
        for key, value in (("window_s", window_s), ("since", since), ("until", until)):
            if value is not None:
                params[key] = value.timestamp() if isinstance(value, datetime) else value
        result = self._request("GET", "/labelled-data", params=params, timeout=300.0)
        frame = pd.DataFrame(result["columns"])
        frame.attrs.update({k: result[k] for k in ("since", "until", "rows", "skipped_batches")})
        return frame

    def predict(self, endpoint: str, frame: Any, *, version: int | None = None, probe: bool = True) -> Any:
        """Score a DataFrame through the router: one score per row (a classifier's positive class).

        ``probe`` (the default) keeps these requests out of the prediction log and the monitors, as
        an evaluation should; ``version`` pins one served version.
        """
        import numpy as np

        router = self.endpoint_status(endpoint).get("router_url")
        if not router:
            raise UnavailableError(f"endpoint {endpoint!r} has no router address; is it deployed?")
        split = frame.to_dict(orient="split")
        headers: dict[str, str] = {}
        if probe:
            headers[PROBE_HEADER] = "1"
        if version is not None:
            headers[VERSION_SELECT_HEADER] = str(version)
        scores: list[Any] = []
        rows = split["data"]
        for start in range(0, max(len(rows), 1), 1000):
            body = {"dataframe_split": {"columns": split["columns"], "data": rows[start : start + 1000]}}
            response = self._http.post(
                f"{router}/endpoints/{endpoint}/invocations", json=body, headers=headers, timeout=120.0
            )
            if response.status_code >= 400:
                raise error_from_dict(
                    {"message": f"scoring through the router failed: {response.text[:500]}"},
                    response.status_code,
                )
            predictions = response.json()["predictions"]
            values = np.asarray(predictions, dtype=np.float64)
            scores.append(values.reshape(len(predictions), -1)[:, -1])
        return np.concatenate(scores) if scores else np.empty(0)

    def traffic(
        self, endpoints: Sequence[str] | None = None, *, since: float | None = None
    ) -> dict[str, Any]:
        """Live per-second traffic of every endpoint (or those named) at or after ``since``, and running
        totals; ask again with ``since=answer["endpoints"][name]["next"]`` for only what is new."""
        params: dict[str, Any] = {}
        if endpoints:
            params["endpoint"] = list(endpoints)
        if since is not None:
            params["since"] = since
        result: dict[str, Any] = self._request("GET", "/traffic", params=params)
        return result

    def series(self, endpoint: str, *, window_s: float = 300.0, step_s: float = 10.0) -> dict[str, Any]:
        """Requests/s, error rate and latency percentiles per step, per version ("1", "2"...) and "all"."""
        result: dict[str, Any] = self._request(
            "GET", "/series", params={"endpoint": endpoint, "window_s": window_s, "step_s": step_s}
        )
        return result

    def monitor_history(
        self,
        monitor: str | Sequence[str] | None = None,
        *,
        endpoint: str | None = None,
        series: str | Sequence[str] | None = None,
        key: str | Sequence[str] | None = None,
        start: datetime | float | None = None,
        end: datetime | float | None = None,
        step_s: float | None = None,
    ) -> dict[str, Any]:
        """Persisted monitor history, per step of ``step_s``: ``monitors → name → series → series name →
        key → {"ts", "mean", "min", "max", "count"}`` (column-wise lists). Defaults: the last hour, about
        1,000 steps, every monitor-wide series (key ``all``). ``series="drift"`` gives one key per column;
        a traffic series (``latency_p95_ms``...) gives ``all`` and each version; ``alert_state`` one key
        per rule (0 ok, 1 pending, 2 firing)."""
        params: dict[str, Any] = {}
        for name, value in (("monitor", monitor), ("series", series), ("key", key)):
            if value is not None:
                params[name] = [value] if isinstance(value, str) else list(value)
        for name, moment in (("start", start), ("end", end)):
            if moment is not None:
                params[name] = moment.timestamp() if isinstance(moment, datetime) else moment
        if endpoint is not None:
            params["endpoint"] = endpoint
        if step_s is not None:
            params["step_s"] = step_s
        result: dict[str, Any] = self._request("GET", "/monitor-history", params=params, timeout=120.0)
        return result

    def drift_report(
        self, monitor: str, *, window_s: float | None = None, until: datetime | float | None = None
    ) -> ReportRecord:
        """A full Evidently report of any window (the monitor's, ending now, by default), archived."""
        end = until.timestamp() if isinstance(until, datetime) else until
        body = {"window_s": window_s, "until": end}
        return ReportRecord.model_validate(
            self._request("POST", f"/monitors/{monitor}/reports", json=body, timeout=600.0)
        )

    def drift_report_file(self, monitor: str, report_id: int, *, kind: str = "html") -> bytes:
        """An archived report's file: the Evidently HTML (``html``) or its JSON (``json``)."""
        response = self._http.get(
            f"{API_PREFIX}/monitors/{monitor}/reports/{report_id}/{kind}", headers=self._auth()
        )
        if response.status_code >= 400:
            raise error_from_dict(response.json().get("error", {}), response.status_code)
        return response.content

    def drift_reports(self, monitor: str) -> list[ReportRecord]:
        return [ReportRecord.model_validate(r) for r in self._request("GET", f"/monitors/{monitor}/reports")]

    def monitor_distribution(
        self, monitor: str, column: str | None = None, *, bins: int = 30
    ) -> dict[str, Any]:
        """One column's reference vs current-window distribution (shares on shared bins or values), from
        the live histograms, with its live score; ``column`` defaults to the first watched, or ``prediction``."""
        params: dict[str, Any] = {"bins": bins} if column is None else {"bins": bins, "column": column}
        result: dict[str, Any] = self._request("GET", f"/monitors/{monitor}/distribution", params=params)
        return result

    # ------------------------------------------------------------- runbooks
    def runbooks(self) -> list[dict[str, Any]]:
        """Every runbook with its title, description and declared parameters."""
        result: list[dict[str, Any]] = self._request("GET", "/runbooks")
        return result

    def runbook(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/runbooks/{name}")
        return result

    def run_runbook(
        self,
        name: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
        reason: str | None = None,
        wait_s: float | None = None,
    ) -> RunRecord:
        """Start a run; with ``wait_s``, also wait up to that long for it to end and return its record."""
        body = {"parameters": dict(parameters or {}), "timeout_s": timeout_s, "reason": reason}
        run = RunRecord.model_validate(self._request("POST", f"/runbooks/{name}/runs", json=body))
        return run if not wait_s else self.wait_run(run.id, timeout_s=wait_s)

    def runbook_runs(
        self,
        *,
        runbook: str | None = None,
        status: str | None = None,
        endpoint: str | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        params: dict[str, Any] = {"limit": limit}
        for key, value in (("runbook", runbook), ("status", status), ("endpoint", endpoint)):
            if value is not None:
                params[key] = value
        return [RunRecord.model_validate(r) for r in self._request("GET", "/runbook-runs", params=params)]

    def runbook_run(self, run_id: str) -> RunRecord:
        return RunRecord.model_validate(self._request("GET", f"/runbook-runs/{run_id}"))

    def wait_run(self, run_id: str, *, timeout_s: float = 600.0) -> RunRecord:
        """The run's record once it has ended, or as it is after ``timeout_s``."""
        return self._long_poll(
            f"/runbook-runs/{run_id}", timeout_s, RunRecord.model_validate, lambda r: r.status.is_final
        )

    def _long_poll(
        self, path: str, timeout_s: float, parse: Callable[[Any], _Record], done: Callable[[_Record], bool]
    ) -> _Record:
        """GET ``path`` with ``wait_s`` (the server holds the answer until the thing ends or the step is up),
        again until ``done`` says so or ``timeout_s`` has passed; the last answer."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = max(0.0, deadline - time.monotonic())
            step = min(left, 15.0)
            answer = parse(self._request("GET", path, params={"wait_s": step}, timeout=step + 30))
            if done(answer) or left <= 0:
                return answer

    def cancel_run(self, run_id: str) -> RunRecord:
        return RunRecord.model_validate(
            self._request("POST", f"/runbook-runs/{run_id}/cancel", timeout=120.0)
        )

    def run_notebook(self, run_id: str, *, format: str = "ipynb") -> bytes:
        """The archived executed notebook (``ipynb``), its HTML rendering (``html``) or the input copy."""
        response = self._http.get(
            f"{API_PREFIX}/runbook-runs/{run_id}/notebook", params={"format": format}, headers=self._auth()
        )
        if response.status_code >= 400:
            raise error_from_dict(response.json().get("error", {}), response.status_code)
        return response.content

    def create_schedule(self, spec: ScheduleSpec | Mapping[str, Any]) -> ScheduleRecord:
        body = spec.model_dump(mode="json") if isinstance(spec, ScheduleSpec) else dict(spec)
        return ScheduleRecord.model_validate(self._request("POST", "/runbook-schedules", json=body))

    def schedules(self) -> list[ScheduleRecord]:
        return [ScheduleRecord.model_validate(s) for s in self._request("GET", "/runbook-schedules")]

    def delete_schedule(self, name: str) -> ScheduleRecord:
        return ScheduleRecord.model_validate(self._request("DELETE", f"/runbook-schedules/{name}"))

    # ---------------------------------------------------------------- audit
    def audit(
        self,
        *,
        target: str | None = None,
        target_prefix: str | None = None,
        action: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_id: int | None = None,
        limit: int = 100,
        oldest_first: bool = False,
    ) -> list[AuditEvent]:
        """Audit events, newest first; ``after_id`` (with ``oldest_first``) follows the log as a cursor."""
        params: dict[str, Any] = {"limit": limit, "order": "asc" if oldest_first else "desc"}
        if after_id is not None:
            params["after_id"] = after_id
        for key, value in (
            ("target", target),
            ("target_prefix", target_prefix),
            ("action", action),
            ("actor", actor),
            ("since", since.isoformat() if since else None),
            ("until", until.isoformat() if until else None),
        ):
            if value is not None:
                params[key] = value
        return [AuditEvent.model_validate(e) for e in self._request("GET", "/audit", params=params)]


def _fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Registration keyword arguments as JSON, checked by the same model the server uses."""
    allowed = set(RegistrationRequest.model_fields)
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationError(f"unknown registration fields: {sorted(unknown)}", fields=sorted(unknown))
    return RegistrationRequest.model_validate(dict(fields)).model_dump(mode="json", exclude_none=True)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value JSON can carry."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value
