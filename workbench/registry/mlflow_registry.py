"""The MLflow adapter: the only module that talks to MLflow's tracking and registry stores.

It uses one explicit ``MlflowClient`` bound to the configured URIs and never the fluent API
(``mlflow.set_tracking_uri`` is process-global and would leak between control planes and tests).
Writes that span several MLflow calls are compensated on failure, so a refused registration leaves
no run, no registered model and no version behind.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from workbench.errors import NotFoundError, UnavailableError, ValidationError, WorkbenchError
from workbench.registry.reference import check_reference, read_reference, reference_digest
from workbench.registry.refs import ModelRef, check_alias, check_model_name, check_version
from workbench.registry.types import (
    Lineage,
    ModelVersionInfo,
    ReferenceData,
    RegisteredModelInfo,
    RegistrationRequest,
)

REGISTRATION_EXPERIMENT = "workbench-registrations"
TAG_PREFIX = "workbench."
_LINEAGE_TAGS = {
    "run_id": "workbench.lineage.run_id",
    "source": "workbench.lineage.source",
    "data_digest": "workbench.lineage.data_digest",
    "data_rows": "workbench.lineage.data_rows",
    "code_version": "workbench.lineage.code_version",
    "parent_version": "workbench.lineage.parent_version",
    "data_window": "workbench.lineage.data_window",
    "trained_by": "workbench.lineage.trained_by",
}
_REFERENCE_TAG = "workbench.reference"
_OPTIMIZATION_TAG = "workbench.optimization"
_REGISTRATION_RUN_TAG = "workbench.registration_run"
_REFERENCE_ARTIFACT_DIR = "reference"
_T = TypeVar("_T")
_MAX_STORED_INT = 2**63 - 1


def _millis_to_datetime(value: int | None) -> datetime:
    return datetime.fromtimestamp((value or 0) / 1000, tz=UTC)


class MlflowRegistry:
    """Models, versions, aliases, lineage and reference data, on any MLflow tracking/registry URI."""

    def __init__(self, tracking_uri: str, registry_uri: str, artifact_root: Path) -> None:
        from mlflow import MlflowClient

        self._tracking_uri = tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
        self._artifact_root = artifact_root
        self._signature_cache: dict[tuple[str, int], tuple[dict[str, Any] | None, list[str]]] = {}
        self._lock = threading.Lock()
        self._experiment_id: str | None = None

    # ------------------------------------------------------------------ reads
    def list_models(self) -> list[RegisteredModelInfo]:
        models = self._paged(lambda token: self._client.search_registered_models(page_token=token))
        return sorted((self._model_info(m) for m in models), key=lambda m: m.name)

    def get_model(self, name: str) -> RegisteredModelInfo:
        return self._model_info(self._get_registered_model(name))

    def list_versions(self, name: str) -> list[ModelVersionInfo]:
        model = self._get_registered_model(name)
        versions = self._versions_of(name)
        return sorted(
            (self._version_info(v, model.aliases) for v in versions), key=lambda v: v.version, reverse=True
        )

    def get_version(self, name: str, version: int | str) -> ModelVersionInfo:
        number = check_version(version)
        model = self._get_registered_model(name)
        if number > _MAX_STORED_INT:  # beyond any version a SQL store can hold (and beyond SQLite's INTEGER)
            raise NotFoundError(f"model {name!r} has no version {number}", model=name)
        mv = self._call(
            lambda: self._client.get_model_version(name, str(number)),
            not_found=f"model {name!r} has no version {number}",
        )
        return self._version_info(mv, model.aliases)

    def resolve(self, ref: ModelRef | str) -> ModelVersionInfo:
        """Resolve an alias or a version number to the version it names now."""
        ref = ModelRef.parse(ref) if isinstance(ref, str) else ref
        if ref.version is not None:
            return self.get_version(ref.name, ref.version)
        model = self._get_registered_model(ref.name)
        assert ref.alias is not None
        if ref.alias not in model.aliases:
            raise NotFoundError(
                f"model {ref.name!r} has no alias {ref.alias!r}",
                model=ref.name,
                alias=ref.alias,
                aliases=sorted(model.aliases),
            )
        return self.get_version(ref.name, model.aliases[ref.alias])

    def model_path(self, name: str, version: int) -> Path:
        """A local directory holding the version's MLflow model (downloaded if the store is remote)."""
        info = self.get_version(name, version)
        return self._download(info.source)

    def reference_path(self, name: str, version: int) -> Path:
        """A local file holding the version's reference dataset (downloaded if the store is remote)."""
        info = self.get_version(name, version)
        if info.reference is None:
            raise NotFoundError(f"models:/{name}/{version} has no reference dataset", model=name)
        return self._download(info.reference.artifact_uri)

    def load_reference(self, name: str, version: int) -> Any:
        """The version's reference dataset as a DataFrame (for monitoring)."""
        info = self.get_version(name, version)
        if info.reference is None:
            raise NotFoundError(f"models:/{name}/{version} has no reference dataset", model=name)
        return read_reference(self._download(info.reference.artifact_uri))

    # ------------------------------------------------------------------ writes
    def register(
        self,
        name: str,
        request: RegistrationRequest,
        *,
        model_dir: Path | None = None,
        run_id: str | None = None,
        artifact_path: str = "model",
        reference_path: Path | None = None,
        origin: str,
    ) -> ModelVersionInfo:
        """Register a version from a local model directory or from a run's artifacts.

        Everything that can be checked is checked before the first write; the writes that follow are
        undone if a later one fails.
        """
        check_model_name(name)
        for alias in request.aliases:
            check_alias(alias)
        if (model_dir is None) == (run_id is None):
            raise ValidationError("register needs exactly one of a model directory or a run id")
        if request.lineage.parent_version is not None:
            self.get_version(name, request.lineage.parent_version)

        if run_id is not None:
            self._call(lambda: self._client.get_run(run_id), not_found=f"run {run_id!r} does not exist")
            source_uri = self._run_artifact_uri(run_id, artifact_path)
            mlmodel_dir = self._download_mlmodel(
                source_uri, f"run {run_id} has no MLflow model at {artifact_path!r}"
            )
        else:
            assert model_dir is not None
            mlmodel_dir = model_dir
        signature, _flavors = _read_mlmodel(mlmodel_dir)
        reference_frame = None
        if reference_path is not None:
            reference_frame = read_reference(reference_path)
            target = request.reference.target if request.reference else None
            check_reference(reference_frame, signature, target)

        created_model = False
        registration_run: str | None = None
        version: Any = None
        try:
            with self._lock:
                registration_run = self._start_registration_run(name, request, origin)
            if model_dir is not None:
                self._client.log_artifacts(registration_run, str(model_dir), artifact_path)
                source_uri = self._run_artifact_uri(registration_run, artifact_path)
            tags = self._version_tags(request, origin, run_id or registration_run)
            tags[_REGISTRATION_RUN_TAG] = registration_run
            if reference_frame is not None and reference_path is not None:
                tags[_REFERENCE_TAG] = json.dumps(
                    self._log_reference(registration_run, reference_frame, request)
                )
            self._client.set_terminated(registration_run, "FINISHED")
            if not self._exists(name):
                self._client.create_registered_model(name)
                created_model = True
            version = self._client.create_model_version(
                name,
                source_uri,
                run_id=run_id or registration_run,
                tags=tags,
                description=request.description,
            )
            for alias in request.aliases:
                self._client.set_registered_model_alias(name, alias, str(version.version))
        except WorkbenchError:
            self._undo(name, version, created_model, registration_run)
            raise
        except Exception as exc:
            self._undo(name, version, created_model, registration_run)
            raise UnavailableError(f"registry write failed: {exc}", model=name) from exc
        return self.get_version(name, int(version.version))

    def set_alias(self, name: str, alias: str, version: int) -> int | None:
        """Point ``alias`` at ``version``; returns the version it pointed at before (None if new)."""
        check_alias(alias)
        model = self._get_registered_model(name)
        self.get_version(name, version)
        previous = model.aliases.get(alias)
        self._client.set_registered_model_alias(name, alias, str(version))
        return int(previous) if previous is not None else None

    def delete_alias(self, name: str, alias: str) -> int:
        check_alias(alias)
        model = self._get_registered_model(name)
        if alias not in model.aliases:
            raise NotFoundError(f"model {name!r} has no alias {alias!r}", model=name, alias=alias)
        previous = int(model.aliases[alias])
        self._client.delete_registered_model_alias(name, alias)
        return previous

    def counts(self) -> dict[str, int]:
        """Totals, deleted runs included, so tests can prove a refused request wrote nothing."""
        from mlflow.entities import ViewType

        models = self._paged(lambda token: self._client.search_registered_models(page_token=token))
        versions = sum(len(self._versions_of(m.name)) for m in models)
        experiment = self._client.get_experiment_by_name(REGISTRATION_EXPERIMENT)
        runs: list[Any] = []
        if experiment is not None:
            experiment_ids = [experiment.experiment_id]
            runs = self._paged(
                lambda token: self._client.search_runs(
                    experiment_ids, run_view_type=ViewType.ALL, page_token=token
                )
            )
        return {"models": len(models), "versions": versions, "registration_runs": len(runs)}

    def _versions_of(self, name: str) -> list[Any]:
        return self._paged(
            lambda token: self._client.search_model_versions(f"name='{name}'", page_token=token)
        )

    # ------------------------------------------------------------------ helpers
    def _start_registration_run(self, name: str, request: RegistrationRequest, origin: str) -> str:
        experiment_id = self._registration_experiment()
        run = self._client.create_run(
            experiment_id,
            run_name=f"register-{name}",
            tags={"workbench.model": name, "workbench.origin": origin[:4000]},
        )
        run_id: str = run.info.run_id
        for key, value in request.params.items():
            self._client.log_param(run_id, key[:250], str(value)[:6000])
        for key, metric in request.metrics.items():
            self._client.log_metric(run_id, key[:250], float(metric))
        return run_id

    def _registration_experiment(self) -> str:
        if self._experiment_id is None:
            existing = self._client.get_experiment_by_name(REGISTRATION_EXPERIMENT)
            if existing is not None:
                self._experiment_id = str(existing.experiment_id)
            else:
                self._artifact_root.mkdir(parents=True, exist_ok=True)
                self._experiment_id = str(
                    self._client.create_experiment(
                        REGISTRATION_EXPERIMENT,
                        artifact_location=(self._artifact_root / REGISTRATION_EXPERIMENT).as_uri(),
                    )
                )
        return self._experiment_id

    def _log_reference(self, run_id: str, frame: Any, request: RegistrationRequest) -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            staged = Path(tmp) / "reference.parquet"
            frame.to_parquet(staged, index=False)
            self._client.log_artifact(run_id, str(staged), _REFERENCE_ARTIFACT_DIR)
        return ReferenceData(
            artifact_uri=self._run_artifact_uri(run_id, f"{_REFERENCE_ARTIFACT_DIR}/reference.parquet"),
            rows=len(frame),
            columns=[str(c) for c in frame.columns],
            digest=reference_digest(frame),
            target=request.reference.target if request.reference else None,
        ).model_dump()

    def _version_tags(self, request: RegistrationRequest, origin: str, run_id: str) -> dict[str, str]:
        tags = {k: str(v) for k, v in request.tags.items()}
        lineage = request.lineage.model_copy(
            update={"run_id": request.lineage.run_id or run_id, "source": origin}
        )
        for field_name, tag in _LINEAGE_TAGS.items():
            value = getattr(lineage, field_name)
            if value is not None:
                tags[tag] = str(value)
        return tags

    def _undo(self, name: str, version: Any, created_model: bool, registration_run: str | None) -> None:
        """Best-effort compensation: a failed registration must not leave half a version behind."""
        for action in (
            (lambda: self._client.delete_registered_model(name)) if created_model else None,
            (lambda: self._client.delete_model_version(name, str(version.version)))
            if version is not None and not created_model
            else None,
            (lambda: self._client.delete_run(registration_run)) if registration_run else None,
        ):
            if action is None:
                continue
            with contextlib.suppress(Exception):  # compensation must try every step
                action()

    def _exists(self, name: str) -> bool:
        try:
            self._client.get_registered_model(name)
        except Exception as exc:
            if _is_not_found(exc):
                return False
            raise
        return True

    def _get_registered_model(self, name: str) -> Any:
        check_model_name(name)
        return self._call(
            lambda: self._client.get_registered_model(name), not_found=f"model {name!r} does not exist"
        )

    def _model_info(self, model: Any) -> RegisteredModelInfo:
        latest = [int(v.version) for v in (model.latest_versions or [])]
        versions = self._versions_of(model.name)
        numbers = [int(v.version) for v in versions] or latest
        return RegisteredModelInfo(
            name=model.name,
            description=model.description or None,
            created_at=_millis_to_datetime(model.creation_timestamp),
            updated_at=_millis_to_datetime(model.last_updated_timestamp),
            aliases={str(k): int(v) for k, v in (model.aliases or {}).items()},
            latest_version=max(numbers) if numbers else None,
            version_count=len(numbers),
            tags={str(k): str(v) for k, v in (model.tags or {}).items()},
        )

    def _version_info(self, mv: Any, model_aliases: dict[str, Any]) -> ModelVersionInfo:
        number = int(mv.version)
        tags = {str(k): str(v) for k, v in (mv.tags or {}).items()}
        signature, flavors = self._signature(mv.name, number, mv.source)
        metrics: dict[str, float] = {}
        params: dict[str, str] = {}
        run_id = tags.get(_LINEAGE_TAGS["run_id"]) or mv.run_id
        # The training run's metrics first, then what was given at registration (which wins).
        for source_run in dict.fromkeys(r for r in (run_id, tags.get(_REGISTRATION_RUN_TAG)) if r):
            try:
                run = self._client.get_run(source_run)
            except Exception as exc:
                if not _is_not_found(exc):
                    raise
                continue
            metrics.update({str(k): float(v) for k, v in run.data.metrics.items()})
            params.update({str(k): str(v) for k, v in run.data.params.items()})
        optimization = None
        if _OPTIMIZATION_TAG in tags:
            with contextlib.suppress(ValueError):
                optimization = json.loads(tags[_OPTIMIZATION_TAG])
        reference = None
        if _REFERENCE_TAG in tags:
            reference = ReferenceData.model_validate_json(tags[_REFERENCE_TAG])
        lineage = Lineage(
            run_id=run_id,
            source=tags.get(_LINEAGE_TAGS["source"]),
            data_digest=tags.get(_LINEAGE_TAGS["data_digest"]),
            data_rows=int(tags[_LINEAGE_TAGS["data_rows"]]) if _LINEAGE_TAGS["data_rows"] in tags else None,
            code_version=tags.get(_LINEAGE_TAGS["code_version"]),
            parent_version=int(tags[_LINEAGE_TAGS["parent_version"]])
            if _LINEAGE_TAGS["parent_version"] in tags
            else None,
            data_window=tags.get(_LINEAGE_TAGS["data_window"]),
            trained_by=tags.get(_LINEAGE_TAGS["trained_by"]),
        )
        return ModelVersionInfo(
            name=mv.name,
            version=number,
            aliases=sorted(a for a, v in model_aliases.items() if int(v) == number),
            status=str(mv.status),
            source=str(mv.source),
            created_at=_millis_to_datetime(mv.creation_timestamp),
            description=mv.description or None,
            tags={k: v for k, v in tags.items() if not k.startswith(TAG_PREFIX)},
            flavors=flavors,
            signature=signature,
            metrics=metrics,
            params=params,
            lineage=lineage,
            reference=reference,
            optimization=optimization if isinstance(optimization, dict) else None,
        )

    def _signature(self, name: str, version: int, source: str) -> tuple[dict[str, Any] | None, list[str]]:
        key = (name, version)
        if key not in self._signature_cache:
            try:
                directory = self._download_mlmodel(source, f"models:/{name}/{version} has no MLmodel file")
                self._signature_cache[key] = _read_mlmodel(directory)
            except WorkbenchError:
                return None, []
        return self._signature_cache[key]

    def _run_artifact_uri(self, run_id: str, artifact_path: str) -> str:
        run = self._client.get_run(run_id)
        return f"{str(run.info.artifact_uri).rstrip('/')}/{artifact_path.strip('/')}"

    def _download(self, artifact_uri: str) -> Path:
        import mlflow.artifacts

        local = _local_path(artifact_uri)
        if local is not None:
            if not local.exists():
                raise NotFoundError(f"artifact {artifact_uri} is missing from the artifact store")
            return local
        try:
            return Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=artifact_uri, tracking_uri=self._tracking_uri
                )
            )
        except Exception as exc:
            raise UnavailableError(f"cannot download {artifact_uri}: {exc}") from exc

    def _download_mlmodel(self, source_uri: str, missing: str) -> Path:
        local = _local_path(source_uri)
        if local is not None:
            if not (local / "MLmodel").is_file():
                raise NotFoundError(missing)
            return local
        import mlflow.artifacts

        target = Path(tempfile.mkdtemp(prefix="workbench-mlmodel-"))
        try:
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"{source_uri.rstrip('/')}/MLmodel",
                dst_path=str(target),
                tracking_uri=self._tracking_uri,
            )
        except Exception:
            shutil.rmtree(target, ignore_errors=True)
            raise NotFoundError(missing) from None
        return target

    def _call(self, fn: Callable[[], _T], *, not_found: str) -> _T:
        try:
            return fn()
        except WorkbenchError:
            raise
        except Exception as exc:
            if _is_not_found(exc):
                raise NotFoundError(not_found) from None
            raise UnavailableError(f"registry call failed: {exc}") from exc

    @staticmethod
    def _paged(fetch: Callable[[str | None], Any]) -> list[Any]:
        items: list[Any] = []
        token: str | None = None
        while True:
            page = fetch(token)
            items.extend(page)
            token = getattr(page, "token", None)
            if not token:
                return items


def _read_mlmodel(directory: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """Signature (as plain dicts) and flavors of an MLflow model directory; refuses a non-model."""
    from mlflow.models import Model

    mlmodel = directory / "MLmodel"
    if not mlmodel.is_file():
        raise ValidationError(
            f"{directory} is not an MLflow model directory: it has no MLmodel file", field="source.path"
        )
    try:
        model = Model.load(str(mlmodel))
    except Exception as exc:
        raise ValidationError(f"cannot read {mlmodel}: {exc}", field="source.path") from None
    signature = None
    if model.signature is not None:
        raw = model.signature.to_dict()
        signature = {k: (json.loads(v) if isinstance(v, str) else v) for k, v in raw.items()}
    return signature, sorted(model.flavors)


def _local_path(uri: str) -> Path | None:
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(uri).path))
    if "://" not in uri and not uri.startswith(("runs:", "models:")):
        return Path(uri)
    return None


def _is_not_found(exc: Exception) -> bool:
    code = getattr(exc, "error_code", "")
    return code in {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"} or "RESOURCE_DOES_NOT_EXIST" in str(code)
