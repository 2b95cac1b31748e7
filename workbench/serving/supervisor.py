"""The local serving backend: replica processes and a router on this machine, kept alive.

Processes are started in their own session, so they outlive a control plane killed with SIGKILL: the
router keeps serving its last routes, and the next control plane adopts the processes it finds alive
(recorded in ``run/supervisor.json``, a machine-local file because processes are machine-local) instead
of starting them again. A graceful stop of the control plane stops the data plane too.

The pieces, by responsibility: :mod:`~workbench.serving.processes` (spawn, readiness, stop),
:mod:`~workbench.serving.process_table` (the in-memory state and its one short lock),
:mod:`~workbench.serving.publishing` (replica names, route tables, pushes to the router) and
:mod:`~workbench.serving.watchdog` (health checks, crash → back-off → restart). Every start, crash and
restart is audited. No lock is held while a process warms up, a health check or a route push is in
flight, or a retired replica drains: a deploy of one endpoint never holds up another's, nor a status.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from workbench.errors import UnavailableError
from workbench.serving.backend import ModelDirs
from workbench.serving.config import ReadyInfo, ReplicaConfig, RouterConfig
from workbench.serving.forkserver_client import ForkServer
from workbench.serving.process_table import ROUTER_ID, ProcessTable, from_record
from workbench.serving.processes import (
    START_TIMEOUT_S,
    Managed,
    retire,
    socket_path,
    spawn,
    terminate,
    wait_ready,
)
from workbench.serving.publishing import push_routes, replica_ids, replica_options, route_table
from workbench.serving.watchdog import AuditFn, Watchdog, healthy
from workbench.settings import Settings
from workbench.specs.endpoint import EndpointSpec
from workbench.tokens import ensure_token

__all__ = ["ROUTER_ID", "LocalSupervisor", "replica_ids"]

log = logging.getLogger("workbench.supervisor")


class LocalSupervisor:
    """Starts, watches and restarts the router and the replicas (the ``local`` serving backend)."""

    def __init__(self, settings: Settings, audit: AuditFn) -> None:
        self.settings = settings
        self._audit = audit
        self.run_dir = settings.home / "run"
        self.log_dir = settings.home / "logs"
        self.prediction_dir = settings.home / "predictions"
        self.table = ProcessTable(self.run_dir / "supervisor.json")
        self._http = httpx.Client(timeout=5.0)
        self._watchdog = Watchdog(self.table, self._http, audit, self._republish)
        # Replicas are forked from a process that has imported torch and the serving code already
        # (:mod:`~workbench.serving.replica_forkserver`), started with the first replica.
        self._forkserver = (
            ForkServer(self.run_dir, self.log_dir / "replica-forkserver.log")
            if settings.replica_forkserver
            else None
        )

    # ---------------------------------------------------------------- API
    @property
    def router_url(self) -> str | None:
        router = self.table.get(ROUTER_ID)
        return router.base_url() if router is not None else None

    @property
    def router_grpc_tls(self) -> str | None:
        """``mutual``, ``tls`` or None (plaintext), as the running router was configured."""
        router = self.table.get(ROUTER_ID)
        if router is None or router.info is None or router.info.grpc_port is None or not router.config_json:
            return None
        tls = RouterConfig.model_validate_json(router.config_json).grpc_tls
        if tls is None:
            return None
        return "mutual" if tls.client_ca is not None else "tls"

    @property
    def router_grpc(self) -> str | None:
        """``host:port`` of the router's OIP gRPC service (a gRPC target, not a URL), or None."""
        router = self.table.get(ROUTER_ID)
        if router is None or router.info is None or router.info.grpc_port is None:
            return None
        host = self.settings.host
        return f"[{host}]:{router.info.grpc_port}" if ":" in host else f"{host}:{router.info.grpc_port}"

    def start(
        self, endpoints: Sequence[EndpointSpec], model_dirs: Callable[[EndpointSpec], ModelDirs]
    ) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        ensure_token(self.settings.token_file)  # the router authenticates route updates with it
        self._adopt()
        self._ensure_router()
        for spec in endpoints:
            try:
                self.prepare(spec, model_dirs(spec))
            except Exception as exc:  # one broken endpoint must not keep the others down
                log.error("endpoint %s could not be started: %s", spec.name, exc)
        self.table.set_specs(endpoints)
        wanted = {pid for spec in endpoints for pid in replica_ids(spec)}
        self._push()
        self._retire_all(self.table.take_unwanted(wanted.__contains__), reason="no longer routed")
        self._watchdog.start()

    def prepare(self, spec: EndpointSpec, model_dirs: ModelDirs) -> None:
        """Start the replicas ``spec`` needs that are not running, and wait for all to be ready.

        The wait holds no lock: other endpoints deploy, and everybody reads status, meanwhile.
        """
        deadline = time.monotonic() + START_TIMEOUT_S
        started: list[Managed] = []
        try:
            for process_id, (model, version) in replica_ids(spec).items():
                current = self.table.get(process_id)
                if current is not None and current.state == "ready":
                    continue  # no need to know where its model is
                fresh = self._replica(process_id, spec, model, version, model_dirs[(model, version)])
                managed = self.table.claim(fresh, deadline)
                if managed is None:
                    continue
                started.append(managed)
                self._launch(managed)
            for managed in started:
                info = wait_ready(managed, deadline)
                self.table.update(managed, info=info, state="ready", health_failures=0)
        except Exception:
            for managed in started:
                self.table.update(managed, state="failed")
                retire(managed, self.run_dir)
                self.table.remove(managed)
            self.table.save()
            raise
        self.table.save()

    def publish(self, name: str, spec: EndpointSpec | None) -> None:
        """Route ``name`` as ``spec`` says (None: not at all), then stop its replicas nothing routes to."""
        self.table.set_spec(name, spec)
        self._push()
        wanted = set(replica_ids(spec)) if spec is not None else set()
        retired = self.table.take_unwanted(wanted.__contains__, endpoint=name)
        self._retire_all(retired, reason="no longer routed")

    def status(self) -> dict[str, Any]:
        routers = self.table.describe(kind="router")
        return {
            "backend": "local",
            "router": routers[0] if routers else None,
            "router_url": self.router_url,
            "router_grpc": self.router_grpc,
            "router_grpc_tls": self.router_grpc_tls,
            "replicas": self.table.describe(kind="replica"),
        }

    def endpoint_status(self, name: str) -> list[dict[str, Any]]:
        return self.table.describe(endpoint=name)

    def close(self, *, stop_processes: bool = True) -> None:
        self._watchdog.stop()
        if stop_processes:
            processes = self.table.clear()
            self.table.save()
            for managed in processes:
                retire(managed, self.run_dir)
        if self._forkserver is not None:
            self._forkserver.close()
        self._http.close()

    # ------------------------------------------------------------ routes
    def _push(self) -> None:
        """Push the route table of this moment to the router (no lock held during the HTTP call)."""
        router = self.table.get(ROUTER_ID)
        url = router.base_url() if router is not None else None
        if url is None:
            return
        revision, specs, ready = self.table.routing_view()
        push_routes(self._http, url, self.settings.read_token() or "", route_table(revision, specs, ready))

    def _republish(self) -> None:
        try:
            self._push()
        except UnavailableError as exc:
            log.warning("route update after a restart failed: %s", exc)

    def _retire_all(self, retired: list[Managed], *, reason: str) -> None:
        if retired:
            self.table.save()
        for managed in retired:  # draining may take a while: no lock held
            retire(managed, self.run_dir)
            self._audit(
                actor="supervisor",
                action="replica.stop",
                target=managed.target,
                before={"replica": managed.process_id, "version": managed.version},
                reason=reason,
            )

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
            **replica_options(spec),
            host=self.settings.host,
            port=0,
            uds=socket_path(self.run_dir, process_id),
            ready_file=self.run_dir / f"{process_id}.ready.json",
            prediction_log_dir=self.prediction_dir / spec.name,
            feature_repo=self.settings.feature_repo_path if spec.features is not None else None,
        )
        config_path = self.run_dir / f"{process_id}.json"
        return Managed(
            process_id=process_id,
            kind="replica",
            command=[sys.executable, "-m", "workbench.serving.replica", str(config_path)],
            config_path=config_path,
            ready_file=config.ready_file,
            log_path=self.log_dir / f"{process_id}.log",
            endpoint=spec.name,
            model=model,
            version=version,
            config_json=config.model_dump_json(indent=2),
            forkserver=self._forkserver if _forkable(model_dir) else None,
        )

    def _ensure_router(self) -> None:
        router = self.table.get(ROUTER_ID)
        if router is not None and router.state == "ready":
            return
        config = RouterConfig(
            host=self.settings.host,
            port=self.settings.router_port,
            grpc_port=self.settings.grpc_port(),
            grpc_tls=self.settings.router_grpc_tls,
            routes_file=self.run_dir / "routes.json",
            token_file=self.settings.token_file,
            ready_file=self.run_dir / "router.ready.json",
        )
        config_path = self.run_dir / "router.json"
        router = Managed(
            process_id=ROUTER_ID,
            kind="router",
            command=[sys.executable, "-m", "workbench.serving.router", str(config_path)],
            config_path=config_path,
            ready_file=config.ready_file,
            log_path=self.log_dir / "router.log",
            config_json=config.model_dump_json(indent=2),
        )
        router.state = "starting"
        self.table.put(router)
        self._launch(router)
        try:
            info = wait_ready(router, time.monotonic() + START_TIMEOUT_S)
        except Exception:
            self.table.update(router, state="failed")
            raise
        if config.port == 0 or config.grpc_port == 0:
            # Keep the ports the router was given: a restarted router must be found where it was.
            bound = {"port": info.port, "grpc_port": info.grpc_port}
            router.config_json = config.model_copy(update=bound).model_dump_json(indent=2)
            config_path.write_text(router.config_json)
        self.table.update(router, info=info, state="ready", health_failures=0)
        self.table.save()

    def _launch(self, managed: Managed) -> None:
        if not spawn(managed):
            raise UnavailableError(f"{managed.kind} {managed.process_id} was stopped before it started")
        self._audit(
            actor="supervisor",
            action=f"{managed.kind}.start",
            target=managed.target,
            after={"process": managed.process_id, "pid": managed.pid, "version": managed.version},
        )

    # ---------------------------------------------------------- adoption
    def _adopt(self) -> None:
        """Take over processes a previous control plane left running (it was killed, not stopped)."""
        for record in self.table.load_records():
            managed = from_record(record)
            if managed.alive() and managed.ready_file.is_file():
                managed.info = ReadyInfo.model_validate_json(managed.ready_file.read_bytes())
                if managed.info.pid == managed.pid and healthy(self._http, managed):
                    managed.state = "ready"
                    self.table.put(managed)
                    self._audit(
                        actor="supervisor",
                        action=f"{managed.kind}.adopt",
                        target=managed.target,
                        after={"process": managed.process_id, "pid": managed.pid},
                    )
                    continue
            if managed.alive():
                terminate(managed)


def _forkable(model_dir: Path) -> bool:
    """Whether a replica of ``model_dir`` is forked: not an ONNX model, which is served without torch
    (the fork server has it loaded, and an ONNX replica must not carry its hundreds of MB)."""
    from workbench.serving.model import serving_flavor

    try:
        return serving_flavor(model_dir) != "onnx"
    except Exception:  # unreadable: the replica itself says why, from either kind of start
        return True
