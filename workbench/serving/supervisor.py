"""The local serving backend: replica processes and a router on this machine, kept alive.

Processes are started in their own session, so they outlive a control plane killed with SIGKILL: the
router keeps serving its last routes, and the next control plane adopts the processes it finds alive
(recorded in ``run/supervisor.json``, a machine-local file because processes are machine-local) instead
of starting them again. A graceful stop of the control plane stops the data plane too.

A monitor thread health-checks every process; a crashed or hung one is taken out of the routes,
restarted with exponential back-off, and put back when ready. Every start, crash and restart is audited.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from workbench.errors import UnavailableError, ValidationError
from workbench.serving.backend import ModelDirs
from workbench.serving.config import ReadyInfo, ReplicaConfig, RouterConfig
from workbench.serving.routes import EndpointRoutes, RouteTable, ShadowRoute, Upstream, VersionRoute
from workbench.settings import Settings
from workbench.specs.endpoint import EndpointSpec
from workbench.tokens import ensure_token

log = logging.getLogger("workbench.supervisor")

AuditFn = Callable[..., Any]
ROUTER_ID = "router"
_START_TIMEOUT_S = 180.0
_HEALTH_EVERY_S = 2.0
_HEALTH_FAILURES_BEFORE_RESTART = 3
_MAX_BACKOFF_S = 30.0
_STOP_TIMEOUT_S = 30.0


@dataclass
class Managed:
    """One supervised process and what the supervisor knows of it."""

    process_id: str
    kind: str
    command: list[str]
    config_path: Path
    ready_file: Path
    log_path: Path
    endpoint: str | None = None
    model: str | None = None
    version: int | None = None
    popen: subprocess.Popen[bytes] | None = None
    pid: int | None = None
    info: ReadyInfo | None = None
    state: str = "new"
    restarts: int = 0
    next_start_at: float = 0.0
    health_failures: int = 0
    last_health_at: float = 0.0
    last_error: str | None = None
    started_at: float = field(default_factory=time.time)

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def exit_code(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None

    def base_url(self) -> str | None:
        return f"http://127.0.0.1:{self.info.port}" if self.info is not None else None

    def as_record(self) -> dict[str, Any]:
        return {
            "process_id": self.process_id,
            "kind": self.kind,
            "command": self.command,
            "config_path": str(self.config_path),
            "ready_file": str(self.ready_file),
            "log_path": str(self.log_path),
            "endpoint": self.endpoint,
            "model": self.model,
            "version": self.version,
            "pid": self.pid,
        }


def replica_ids(spec: EndpointSpec) -> dict[str, tuple[str, int]]:
    """The replicas ``spec`` needs, named so that a change of serving options gives new names.

    A replica's identity hashes everything that shapes the process (batching, device, threads, payload
    limit), so changing those starts fresh replicas beside the old ones and swaps them without a gap.
    """
    shape = orjson.dumps(
        {
            "device": spec.device,
            "threads": spec.threads,
            "batching": spec.batching.model_dump(),
            "payload": spec.payload_limit_bytes,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    digest = hashlib.sha256(shape).hexdigest()[:8]
    wanted: dict[str, tuple[str, int]] = {}
    versions = [(r.model, r.version) for r in spec.routes] + [(s.model, s.version) for s in spec.shadows]
    for model, version in versions:
        for index in range(spec.replicas):
            wanted[f"{spec.name}.{model}.v{version}.{digest}.r{index}"] = (model, version)
    return wanted


class LocalSupervisor:
    """Starts, watches and restarts the router and the replicas (the ``local`` serving backend)."""

    def __init__(self, settings: Settings, audit: AuditFn) -> None:
        self.settings = settings
        self._audit = audit
        self.run_dir = settings.home / "run"
        self.log_dir = settings.home / "logs"
        self.prediction_dir = settings.home / "predictions"
        self._lock = threading.RLock()
        self._processes: dict[str, Managed] = {}
        self._specs: dict[str, EndpointSpec] = {}
        self._revision = int(time.time() * 1000)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = httpx.Client(timeout=5.0)

    # ---------------------------------------------------------------- API
    @property
    def router_url(self) -> str | None:
        router = self._processes.get(ROUTER_ID)
        return router.base_url() if router is not None else None

    def start(
        self, endpoints: Sequence[EndpointSpec], model_dirs: Callable[[EndpointSpec], ModelDirs]
    ) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        ensure_token(self.settings.token_file)  # the router authenticates route updates with it
        with self._lock:
            self._adopt()
            self._ensure_router()
            for spec in endpoints:
                try:
                    self.prepare(spec, model_dirs(spec))
                except Exception as exc:  # one broken endpoint must not keep the others down
                    log.error("endpoint %s could not be started: %s", spec.name, exc)
            self.publish(endpoints)
        self._thread = threading.Thread(target=self._monitor, name="supervisor", daemon=True)
        self._thread.start()

    def prepare(self, spec: EndpointSpec, model_dirs: ModelDirs) -> None:
        """Start the replicas ``spec`` needs that are not running, and wait for all to be ready."""
        with self._lock:
            started: list[Managed] = []
            try:
                for process_id, (model, version) in replica_ids(spec).items():
                    managed = self._processes.get(process_id)
                    if managed is not None and managed.state in ("ready", "starting"):
                        continue
                    managed = self._replica(process_id, spec, model, version, model_dirs[(model, version)])
                    self._launch(managed)
                    started.append(managed)
                for managed in started:
                    self._wait_ready(managed)
            except Exception:
                for managed in started:
                    self._retire(managed)
                    self._processes.pop(managed.process_id, None)
                self._save()
                raise
            self._save()

    def publish(self, endpoints: Sequence[EndpointSpec]) -> None:
        """Push routes for ``endpoints`` to the router, then stop replicas nothing routes to."""
        with self._lock:
            self._specs = {spec.name: spec for spec in endpoints}
            self._push_routes()
            wanted = {pid for spec in endpoints for pid in replica_ids(spec)}
            retired = [m for pid, m in self._processes.items() if m.kind == "replica" and pid not in wanted]
            for managed in retired:
                self._processes.pop(managed.process_id)
            self._save()
        for managed in retired:  # outside the lock: draining may take a while
            self._retire(managed)
            self._audit(
                actor="supervisor",
                action="replica.stop",
                target=f"endpoint:{managed.endpoint}",
                before={"replica": managed.process_id, "version": managed.version},
                reason="no longer routed",
            )

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "backend": "local",
                "router": self._describe(self._processes[ROUTER_ID])
                if ROUTER_ID in self._processes
                else None,
                "router_url": self.router_url,
                "replicas": [self._describe(m) for m in self._processes.values() if m.kind == "replica"],
            }

    def endpoint_status(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [self._describe(m) for m in self._processes.values() if m.endpoint == name]

    def close(self, *, stop_processes: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if stop_processes:
            with self._lock:
                processes = list(self._processes.values())
                self._processes.clear()
                self._save()
            for managed in processes:
                self._retire(managed)
        self._http.close()

    # ------------------------------------------------------------ routes
    def _push_routes(self) -> None:
        router = self._processes.get(ROUTER_ID)
        if router is None or router.info is None:
            return
        self._revision = max(self._revision + 1, int(time.time() * 1000))
        table = self._table(self._revision)
        token = self.settings.read_token() or ""
        try:
            response = self._http.put(
                f"{router.base_url()}/-/routes",
                content=table.model_dump_json(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise UnavailableError(f"cannot update the router's routes: {exc}") from exc
        if response.status_code != 200:
            raise UnavailableError(f"the router refused the routes: {response.text[:300]}")

    def _table(self, revision: int) -> RouteTable:
        endpoints: dict[str, EndpointRoutes] = {}
        for spec in self._specs.values():
            ids = replica_ids(spec)

            def upstreams(
                model: str, version: int, ids: dict[str, tuple[str, int]] = ids
            ) -> tuple[Upstream, ...]:
                found = []
                for pid, key in ids.items():
                    managed = self._processes.get(pid)
                    if (
                        key == (model, version)
                        and managed is not None
                        and managed.state == "ready"
                        and managed.info
                    ):
                        found.append(
                            Upstream(
                                replica_id=pid,
                                port=managed.info.port,
                                uds=str(managed.info.uds) if managed.info.uds else None,
                            )
                        )
                return tuple(found)

            endpoints[spec.name] = EndpointRoutes(
                name=spec.name,
                versions=tuple(
                    VersionRoute(
                        model=r.model,
                        version=r.version,
                        weight=r.weight,
                        upstreams=upstreams(r.model, r.version),
                    )
                    for r in spec.routes
                ),
                shadows=tuple(
                    ShadowRoute(
                        model=s.model,
                        version=s.version,
                        sample_percent=s.sample_percent,
                        upstreams=upstreams(s.model, s.version),
                    )
                    for s in spec.shadows
                ),
                payload_limit_bytes=spec.payload_limit_bytes,
            )
        return RouteTable(revision=revision, endpoints=endpoints)

    # --------------------------------------------------------- processes
    def _replica(
        self, process_id: str, spec: EndpointSpec, model: str, version: int, model_dir: Path
    ) -> Managed:
        config = ReplicaConfig(
            replica_id=process_id,
            endpoint=spec.name,
            model=model,
            version=version,
            model_dir=model_dir,
            device=spec.device,
            threads=spec.threads,
            max_batch_size=spec.batching.max_batch_size,
            max_wait_ms=spec.batching.max_wait_ms,
            payload_limit_bytes=spec.payload_limit_bytes,
            host=self.settings.host,
            port=0,
            uds=_socket_path(self.run_dir, process_id),
            ready_file=self.run_dir / f"{process_id}.ready.json",
            prediction_log_dir=self.prediction_dir / spec.name,
            log_sample_rate=spec.log_sample_rate,
        )
        config_path = self.run_dir / f"{process_id}.json"
        config_path.write_text(config.model_dump_json(indent=2))
        managed = Managed(
            process_id=process_id,
            kind="replica",
            command=[sys.executable, "-m", "workbench.serving.replica", str(config_path)],
            config_path=config_path,
            ready_file=config.ready_file,
            log_path=self.log_dir / f"{process_id}.log",
            endpoint=spec.name,
            model=model,
            version=version,
        )
        self._processes[process_id] = managed
        return managed

    def _ensure_router(self) -> None:
        router = self._processes.get(ROUTER_ID)
        if router is not None and router.state == "ready":
            return
        config = RouterConfig(
            host=self.settings.host,
            port=self.settings.router_port,
            routes_file=self.run_dir / "routes.json",
            token_file=self.settings.token_file,
            ready_file=self.run_dir / "router.ready.json",
        )
        config_path = self.run_dir / "router.json"
        config_path.write_text(config.model_dump_json(indent=2))
        router = Managed(
            process_id=ROUTER_ID,
            kind="router",
            command=[sys.executable, "-m", "workbench.serving.router", str(config_path)],
            config_path=config_path,
            ready_file=config.ready_file,
            log_path=self.log_dir / "router.log",
        )
        self._processes[ROUTER_ID] = router
        self._launch(router)
        self._wait_ready(router)
        if config.port == 0 and router.info is not None:
            # Keep the port the router was given: a restarted router must be found where it was.
            config_path.write_text(
                config.model_copy(update={"port": router.info.port}).model_dump_json(indent=2)
            )
        self._save()

    def _launch(self, managed: Managed) -> None:
        managed.ready_file.unlink(missing_ok=True)
        managed.info = None
        managed.health_failures = 0
        handle = managed.log_path.open("ab")
        try:
            managed.popen = subprocess.Popen(
                managed.command,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            handle.close()
        managed.pid = managed.popen.pid
        managed.state = "starting"
        managed.started_at = time.time()
        self._audit(
            actor="supervisor",
            action=f"{managed.kind}.start",
            target=f"endpoint:{managed.endpoint}" if managed.endpoint else "router",
            after={"process": managed.process_id, "pid": managed.pid, "version": managed.version},
        )

    def _wait_ready(self, managed: Managed, timeout: float = _START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if managed.ready_file.is_file():
                managed.info = ReadyInfo.model_validate_json(managed.ready_file.read_bytes())
                managed.state = "ready"
                managed.health_failures = 0
                return
            if not managed.alive():
                managed.state = "failed"
                code = managed.exit_code()
                message = _failure_message(managed.log_path) or f"exited with code {code}"
                managed.last_error = message
                if code == 2:
                    raise ValidationError(f"{managed.kind} {managed.process_id} could not start: {message}")
                raise UnavailableError(f"{managed.kind} {managed.process_id} could not start: {message}")
            time.sleep(0.05)
        self._terminate(managed)
        raise UnavailableError(f"{managed.kind} {managed.process_id} was not ready within {timeout:.0f}s")

    def _terminate(self, managed: Managed) -> None:
        """SIGTERM (the process drains in-flight requests), SIGKILL if it does not exit in time."""
        managed.state = "stopping"
        if managed.alive() and managed.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(managed.pid, signal.SIGTERM)
            deadline = time.monotonic() + _STOP_TIMEOUT_S
            while managed.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if managed.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(managed.pid, signal.SIGKILL)
        if managed.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                managed.popen.wait(timeout=5)
        managed.state = "stopped"
        managed.ready_file.unlink(missing_ok=True)

    def _retire(self, managed: Managed) -> None:
        """Stop a process for good: its config and socket go too (a restart keeps them)."""
        self._terminate(managed)
        for path in (managed.config_path, _socket_path(self.run_dir, managed.process_id)):
            path.unlink(missing_ok=True)

    # ------------------------------------------------------------ monitor
    def _monitor(self) -> None:
        while not self._stop.wait(0.25):
            try:
                self._check_all()
            except Exception:  # the monitor must outlive any single failure
                log.exception("supervisor check failed")

    def _check_all(self) -> None:
        changed = False
        with self._lock:
            now = time.monotonic()
            for managed in list(self._processes.values()):
                if managed.state == "ready":
                    if not managed.alive():
                        self._on_crash(managed, f"exited with code {managed.exit_code()}")
                        changed = True
                    elif now - managed.last_health_at >= _HEALTH_EVERY_S:
                        managed.last_health_at = now
                        if self._healthy(managed):
                            managed.health_failures = 0
                        else:
                            managed.health_failures += 1
                            if managed.health_failures >= _HEALTH_FAILURES_BEFORE_RESTART:
                                self._terminate(managed)
                                self._on_crash(managed, "failed its health checks")
                                changed = True
                elif managed.state == "backoff" and now >= managed.next_start_at:
                    changed |= self._restart(managed)
            if changed:
                try:
                    self._push_routes()
                except UnavailableError as exc:
                    log.warning("route update after a restart failed: %s", exc)

    def _on_crash(self, managed: Managed, why: str) -> None:
        managed.state = "backoff"
        managed.last_error = _failure_message(managed.log_path) or why
        delay = min(_MAX_BACKOFF_S, 0.5 * (2**managed.restarts))
        managed.next_start_at = time.monotonic() + delay
        managed.restarts += 1
        log.warning("%s %s %s; restarting in %.1fs", managed.kind, managed.process_id, why, delay)
        self._audit(
            actor="supervisor",
            action=f"{managed.kind}.crash",
            target=f"endpoint:{managed.endpoint}" if managed.endpoint else "router",
            before={"process": managed.process_id, "pid": managed.pid, "version": managed.version},
            reason=f"{why}; restart #{managed.restarts} in {delay:.1f}s",
        )

    def _restart(self, managed: Managed) -> bool:
        try:
            self._launch(managed)
            self._wait_ready(managed)
        except Exception as exc:
            self._on_crash(managed, f"restart failed: {exc}")
            return False
        self._audit(
            actor="supervisor",
            action=f"{managed.kind}.restart",
            target=f"endpoint:{managed.endpoint}" if managed.endpoint else "router",
            after={"process": managed.process_id, "pid": managed.pid, "restarts": managed.restarts},
        )
        self._save()
        return True

    def _healthy(self, managed: Managed) -> bool:
        url = managed.base_url()
        if url is None:
            return False
        path = "/-/health" if managed.kind == "router" else "/v2/health/ready"
        try:
            response = self._http.get(url + path, timeout=2.0)
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
        if managed.kind == "replica":
            return bool(response.json().get("replica_id") == managed.process_id)
        return True

    # ---------------------------------------------------------- adoption
    def _state_file(self) -> Path:
        return self.run_dir / "supervisor.json"

    def _save(self) -> None:
        records = [m.as_record() for m in self._processes.values() if m.state not in ("stopped", "failed")]
        tmp = self._state_file().with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps({"processes": records}, option=orjson.OPT_INDENT_2))
        os.replace(tmp, self._state_file())

    def _adopt(self) -> None:
        """Take over processes a previous control plane left running (it was killed, not stopped)."""
        path = self._state_file()
        if not path.is_file():
            return
        try:
            records = orjson.loads(path.read_bytes()).get("processes", [])
        except orjson.JSONDecodeError:
            return
        for record in records:
            managed = Managed(
                process_id=record["process_id"],
                kind=record["kind"],
                command=list(record["command"]),
                config_path=Path(record["config_path"]),
                ready_file=Path(record["ready_file"]),
                log_path=Path(record["log_path"]),
                endpoint=record.get("endpoint"),
                model=record.get("model"),
                version=record.get("version"),
                pid=record.get("pid"),
            )
            if managed.alive() and managed.ready_file.is_file():
                managed.info = ReadyInfo.model_validate_json(managed.ready_file.read_bytes())
                if managed.info.pid == managed.pid and self._healthy(managed):
                    managed.state = "ready"
                    self._processes[managed.process_id] = managed
                    self._audit(
                        actor="supervisor",
                        action=f"{managed.kind}.adopt",
                        target=f"endpoint:{managed.endpoint}" if managed.endpoint else "router",
                        after={"process": managed.process_id, "pid": managed.pid},
                    )
                    continue
            if managed.alive():
                self._terminate(managed)

    # ----------------------------------------------------------- display
    @staticmethod
    def _describe(managed: Managed) -> dict[str, Any]:
        return {
            "id": managed.process_id,
            "kind": managed.kind,
            "endpoint": managed.endpoint,
            "model": managed.model,
            "version": managed.version,
            "state": managed.state,
            "pid": managed.pid,
            "port": managed.info.port if managed.info else None,
            "device": managed.info.device if managed.info else None,
            "restarts": managed.restarts,
            "last_error": managed.last_error,
        }


def _socket_path(run_dir: Path, process_id: str) -> Path:
    """Unix socket paths are limited to ~107 bytes: a deep home falls back to a short private directory."""
    path = run_dir / f"{process_id}.sock"
    if len(str(path)) < 100:
        return path
    short = Path(tempfile.gettempdir()) / f"wb-{hashlib.sha256(str(run_dir).encode()).hexdigest()[:10]}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short / f"{hashlib.sha256(process_id.encode()).hexdigest()[:16]}.sock"


def _failure_message(log_path: Path) -> str | None:
    """The replica's own one-line explanation, if it printed one before exiting."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()[-50:]
    except OSError:
        return None
    for line in reversed(lines):
        for marker in ("workbench-replica-error: ", "workbench-router-error: "):
            if marker in line:
                return line.split(marker, 1)[1].strip()
    return None
