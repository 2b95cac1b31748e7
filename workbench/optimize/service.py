"""Optimisations in the control plane: checked up front, run one at a time in a worker, gated, registered.

One at a time because every optimisation ends in timing runs: two at once on a small machine would
measure each other. The worker (a child process) only makes and measures; registering happens here,
after ``decide`` accepts, so a variant that is refused, or a worker that dies, leaves no version behind.
Every request and every outcome is in the audit log; the rows in ``optimizations`` keep the figures of
refused variants too, which is what the comparison table is read from.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from workbench.errors import ValidationError, WorkbenchError
from workbench.optimize.gate import decide
from workbench.optimize.job import OptimizationJob
from workbench.optimize.methods import Method, parse_method
from workbench.optimize.table import comparison
from workbench.records.optimizations import OptimizationRecord, OptimizationStatus
from workbench.registry.refs import check_alias
from workbench.registry.types import Lineage, ModelVersionInfo, ReferenceSpec, RegistrationRequest
from workbench.specs.optimization import OptimizationRequest
from workbench.store.optimizations import OptimizationRepository

if TYPE_CHECKING:
    from workbench.control_plane import ControlPlane

log = logging.getLogger("workbench.optimize")

WORKER_TIMEOUT_S = 1800.0
OPTIMIZATION_TAG = "workbench.optimization"


def _new_id() -> str:
    return f"opt-{datetime.now(tz=UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class OptimizationService:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.repo = OptimizationRepository()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="optimize")
        self._process: subprocess.Popen[bytes] | None = None
        self._process_lock = threading.Lock()
        self._closed = False
        self._guard = threading.Lock()
        self._done: dict[str, threading.Event] = {}
        self._recover()

    # ------------------------------------------------------------------ reads
    def get(self, optimization_id: str) -> OptimizationRecord:
        with self.plane.db.read() as connection:
            return self.repo.get(connection, optimization_id)

    def records(
        self, *, model: str | None = None, version: int | None = None, limit: int = 100
    ) -> list[OptimizationRecord]:
        with self.plane.db.read() as connection:
            return self.repo.list(connection, model=model, version=version, limit=limit)

    def variants(self, name: str, version: int) -> dict[str, Any]:
        """The comparison table of a version and every variant asked of it (registered or refused)."""
        info = self.plane.registry.get_version(name, version)
        records = self.records(model=name, version=info.version)
        return {"model": info.uri, "rows": comparison(records), "optimizations": [r.id for r in records]}

    # ------------------------------------------------------------------ start
    def start(
        self, name: str, version: int, request: OptimizationRequest, *, actor: str
    ) -> OptimizationRecord:
        """Check everything that can be checked before any work, record the request, queue the worker."""
        method = parse_method(request.method)
        info = self.plane.registry.get_version(name, version)
        self._check_parent(info, method)
        for alias in request.aliases:
            check_alias(alias)
        serving_batch, batch_source = self._serving_batch(info, request)
        settings: dict[str, Any] = {
            "accuracy_budget_points": request.accuracy_budget_points,
            "min_speedup": request.min_speedup,
            "serving_batch": serving_batch,
            "serving_batch_source": batch_source,
            "threads": request.threads if request.threads is not None else self._endpoint_threads(info),
            "aliases": list(request.aliases),
            "owner": _owner(),
        }
        optimization_id = _new_id()
        with self.plane.db.write() as connection:
            record = self.repo.create(
                connection,
                optimization_id=optimization_id,
                model=info.name,
                version=info.version,
                method=method.spelling,
                settings=settings,
                actor=actor,
                reason=request.reason,
            )
            self.plane.audit.record(
                connection,
                actor=actor,
                action="model.optimize",
                target=info.uri,
                after={"optimization": optimization_id, "method": method.spelling, **settings},
                reason=request.reason,
            )
        self._executor.submit(self._run, optimization_id)
        return record

    def _check_parent(self, info: ModelVersionInfo, method: Method) -> None:
        if info.reference is None:
            raise ValidationError(
                f"{info.uri} has no reference data to evaluate a variant on: register it with reference data "
                "and its target column",
                field="model",
            )
        if info.reference.target is None:
            raise ValidationError(
                f"{info.uri}'s reference data names no target column, so a variant's accuracy cannot be measured",
                field="model",
            )
        convertible = "pytorch" in info.flavors or (method.kind == "onnx-int8" and "onnx" in info.flavors)
        if not convertible:
            need = (
                "a pytorch model (or, for onnx-int8, an onnx model)"
                if method.kind == "onnx-int8"
                else "a pytorch model"
            )
            raise ValidationError(
                f"{method.spelling} cannot convert {info.uri}: its flavours are {', '.join(info.flavors) or 'none'}, "
                f"and it needs {need}",
                field="method",
                flavors=info.flavors,
            )
        inputs = (info.signature or {}).get("inputs") or []
        if not inputs or any(isinstance(spec, dict) and spec.get("type") == "tensor" for spec in inputs):
            raise ValidationError(
                f"{info.uri} has no column signature: variants are judged on its reference rows, fed as columns",
                field="model",
            )

    def _serving_endpoints(self, info: ModelVersionInfo) -> list[Any]:
        return [
            record
            for record in self.plane.list_endpoints()
            if any(r.model == info.name and r.version == info.version for r in record.spec.routes)
        ]

    def _serving_batch(self, info: ModelVersionInfo, request: OptimizationRequest) -> tuple[int, str]:
        if request.batch_size is not None:
            return request.batch_size, "given"
        for record in self._serving_endpoints(info):
            try:
                observed = self.plane.monitoring.engine.feed(record.spec.name).live.typical_batch(
                    str(info.version), now=time.time()
                )
            except WorkbenchError:
                observed = None
            if observed:
                return max(1, round(observed)), f"observed on endpoint {record.spec.name}"
        return 1, "no traffic observed: one-row requests assumed"

    def _endpoint_threads(self, info: ModelVersionInfo) -> int | None:
        for record in self._serving_endpoints(info):
            if record.spec.threads is not None:
                return int(record.spec.threads)
        return None

    # ------------------------------------------------------------------ run
    def _run(self, optimization_id: str) -> None:
        try:
            self._execute(optimization_id)
        except Exception as exc:  # the record must end, whatever happened
            log.exception("optimization %s failed", optimization_id)
            message = exc.message if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"
            self._finish(optimization_id, OptimizationStatus.FAILED, error=message)

    def _execute(self, optimization_id: str) -> None:
        if self._closed:
            return
        record = self.get(optimization_id)
        with self.plane.db.write() as connection:
            self.repo.start(connection, optimization_id, record.settings)
        workdir = self.plane.settings.home / "optimizations" / optimization_id
        workdir.mkdir(parents=True, exist_ok=True)
        info = self.plane.registry.get_version(record.model, record.version)
        assert info.reference is not None
        assert info.reference.target is not None
        reference = self.plane.registry.reference_path(record.model, record.version)
        job = OptimizationJob(
            model=record.model,
            version=record.version,
            parent_dir=self.plane.registry.model_path(record.model, record.version),
            reference_path=reference,
            target=info.reference.target,
            method=record.method,
            serving_batch=int(record.settings["serving_batch"]),
            threads=record.settings.get("threads"),
            output_dir=workdir,
        )
        (workdir / "job.json").write_text(job.model_dump_json(indent=2))
        result = self._run_worker(workdir)
        if not result.get("ok"):
            error = result.get("error", {})
            self._finish(
                optimization_id, OptimizationStatus.FAILED, error=str(error.get("message", "worker failed"))
            )
            return
        result.pop("ok")
        verdict = decide(
            result,
            accuracy_budget_points=float(record.settings["accuracy_budget_points"]),
            min_speedup=float(record.settings["min_speedup"]),
            serving_batch=int(record.settings["serving_batch"]),
        )
        variant_dir = workdir / "variant"
        if not verdict.accepted:
            self._finish(
                optimization_id,
                OptimizationStatus.REFUSED,
                result=result,
                verdict=verdict.model_dump(mode="json"),
            )
            _remove(variant_dir)
            return
        registered = self._register(
            record, info, reference, variant_dir, result, verdict.model_dump(mode="json")
        )
        self._finish(
            optimization_id,
            OptimizationStatus.REGISTERED,
            result=result,
            verdict=verdict.model_dump(mode="json"),
            variant_version=registered.version,
        )
        _remove(variant_dir)

    def _run_worker(self, workdir: Path) -> dict[str, Any]:
        with (workdir / "worker.log").open("wb") as output:
            with self._process_lock:
                if self._closed:
                    raise WorkbenchError("the control plane is shutting down")
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "workbench.optimize.worker", str(workdir / "job.json")],
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    cwd=workdir,
                )
            try:
                self._process.wait(timeout=WORKER_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
                raise WorkbenchError(
                    f"the optimisation worker ran over {WORKER_TIMEOUT_S:.0f} s and was stopped"
                ) from None
            finally:
                with self._process_lock:
                    self._process = None
        path = workdir / "result.json"
        if not path.is_file():
            tail = (workdir / "worker.log").read_text(errors="replace")[-800:]
            raise WorkbenchError(f"the optimisation worker ended without a result: {tail}")
        result: dict[str, Any] = orjson.loads(path.read_bytes())
        return result

    def _register(
        self,
        record: OptimizationRecord,
        parent: ModelVersionInfo,
        reference: Path,
        variant_dir: Path,
        result: dict[str, Any],
        verdict: dict[str, Any],
    ) -> ModelVersionInfo:
        summary = {
            "optimization": record.id,
            "method": record.method,
            "parent_version": parent.version,
            "serving_batch": verdict["serving_batch"],
            "speedup": verdict["speedup"],
            "quality_delta": verdict["quality_delta"],
            "size_bytes": result["variant"]["size_bytes"],
            "parent_size_bytes": result["parent"]["size_bytes"],
            "replica_rss_mb": result["variant"].get("replica_rss_mb"),
            "parent_replica_rss_mb": result["parent"].get("replica_rss_mb"),
            "flavor": result["variant"]["flavor"],
        }
        batch = str(verdict["serving_batch"])
        metrics = {
            "optimize.speedup": float(verdict["speedup"]),
            "optimize.p50_ms_batch1": float(result["variant"]["latency_ms"]["1"]["p50"]),
            f"optimize.p50_ms_batch{batch}": float(result["variant"]["latency_ms"][batch]["p50"]),
            "optimize.size_bytes": float(result["variant"]["size_bytes"]),
            **{f"optimize.{k}": float(v) for k, v in result["variant"]["quality"].items()},
            **{f"optimize.delta.{k}": float(v) for k, v in verdict["quality_delta"].items()},
        }
        delta = ", ".join(
            f"{k.removesuffix('_points')} {v:+.2f}" for k, v in verdict["quality_delta"].items()
        )
        request = RegistrationRequest(
            description=(
                f"{record.method} variant of {parent.uri}: {verdict['speedup']:.2f}x faster at batch {batch}, "
                f"{delta} on {result['evaluation_rows']} reference rows"
            ),
            tags={OPTIMIZATION_TAG: orjson.dumps(summary).decode(), "optimized.method": record.method},
            params={
                "optimize.method": record.method,
                "optimize.parent": parent.uri,
                "optimize.id": record.id,
            },
            metrics=metrics,
            lineage=Lineage(
                parent_version=parent.version,
                data_digest=parent.lineage.data_digest,
                data_rows=parent.lineage.data_rows,
                code_version=parent.lineage.code_version,
                trained_by=f"optimization:{record.id}",
            ),
            reference=ReferenceSpec(
                path=str(reference), target=parent.reference.target if parent.reference else None
            ),
            aliases=list(record.settings.get("aliases", [])),
            reason=record.reason or f"{record.method} of {parent.uri}, registered by its gate",
        )
        info = self.plane.registry.register(
            record.model,
            request,
            model_dir=variant_dir,
            reference_path=reference,
            origin=f"optimize:{record.id}",
        )
        self.plane.audit_registration(info, request, record.actor)
        return info

    def _finish(
        self,
        optimization_id: str,
        status: OptimizationStatus,
        *,
        result: dict[str, Any] | None = None,
        verdict: dict[str, Any] | None = None,
        variant_version: int | None = None,
        error: str | None = None,
    ) -> None:
        with self.plane.db.write() as connection:
            record = self.repo.get(connection, optimization_id)
            self.repo.finish(
                connection,
                optimization_id,
                status=status,
                result=result,
                verdict=verdict,
                variant_version=variant_version,
                error=error,
            )
            self.plane.audit.record(
                connection,
                actor=record.actor,
                action=f"model.optimize.{status.value}",
                target=record.parent_uri,
                after={
                    "optimization": optimization_id,
                    "method": record.method,
                    "variant_version": variant_version,
                    "reasons": (verdict or {}).get("reasons"),
                    "error": error,
                },
            )
        with self._guard:
            self._done.setdefault(optimization_id, threading.Event()).set()

    # ------------------------------------------------------------------ lifecycle
    def _recover(self) -> None:
        """Rows left queued or running by a control plane that is gone end as failed (nothing was registered)."""
        with self.plane.db.read() as connection:
            pending = [
                r
                for status in (OptimizationStatus.QUEUED, OptimizationStatus.RUNNING)
                for r in self.repo.list(connection, status=status, limit=1000)
            ]
        for record in pending:
            owner = str(record.settings.get("owner", ""))
            host, _, pid = owner.rpartition(":")
            if (
                host == socket.gethostname()
                and pid.isdigit()
                and _alive(int(pid))
                and int(pid) != os.getpid()
            ):
                continue  # another control plane on this machine is still running it
            self._finish(
                record.id,
                OptimizationStatus.FAILED,
                error="interrupted: the control plane stopped before the optimisation finished; nothing was registered",
            )

    def wait(self, optimization_id: str, timeout_s: float) -> OptimizationRecord:
        """The record once it has finished, or as it stands after ``timeout_s`` (long polls, tests, the demo)."""
        record = self.get(optimization_id)
        if not record.status.finished:
            with self._guard:
                done = self._done.setdefault(optimization_id, threading.Event())
            done.wait(timeout_s)
            record = self.get(optimization_id)
        return record

    def close(self) -> None:
        self._closed = True
        with self._process_lock:
            if self._process is not None and self._process.poll() is None:
                self._process.kill()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _alive(pid: int) -> bool:
    import psutil

    return bool(psutil.pid_exists(pid))


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
