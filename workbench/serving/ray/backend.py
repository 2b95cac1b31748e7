"""The ``ray`` serving backend: endpoints as Ray Serve applications, declared whole to Ray's controller.

The control plane keeps the desired applications (:mod:`.serve_config`) and applies them as one
declarative config; Ray reconciles (starts, restarts, places, scales, drains) and reports. Applying the
same config again changes nothing, which is how a restarted control plane adopts what runs: it declares
what its stored endpoints need, and every application that already serves them is left alone. The
config lives in Ray's controller, so traffic keeps flowing while no control plane runs.

Changes follow the local backend's order: a deploy declares the new versions and waits for Ray to report
them running (or fails with Ray's reason and withdraws them); then the route table changes in place on
the ingress, which is confirmed before the versions no longer routed are withdrawn (Ray drains them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from workbench.errors import UnavailableError, ValidationError
from workbench.serving.backend import ModelDirs
from workbench.serving.ray import serve_config
from workbench.serving.ray.cluster import Cluster, connect, find_cluster, free_port, stop_local
from workbench.serving.ray.reconcile import Reconciler, drift
from workbench.serving.watchdog import AuditFn
from workbench.settings import Settings
from workbench.specs.endpoint import EndpointSpec

log = logging.getLogger("workbench.ray")
READY_TIMEOUT_S = 180.0
#: After Ray says replicas wait to be scheduled (``SERVE_SLOW_STARTUP_WARNING_S``), how long before the
#: deploy is refused with Ray's reason.
PLACEMENT_TIMEOUT_S = 5.0
POLL_S = 0.1


class RayBackend:
    def __init__(self, settings: Settings, audit: AuditFn) -> None:
        self.settings = settings
        self._audit = audit
        self.prediction_dir = settings.home / "predictions"
        self._lock = threading.RLock()
        self._routed: dict[str, EndpointSpec] = {}
        self._apps: dict[str, dict[str, Any]] = {}
        self._revision = 0
        #: The config as last declared: what a reconciliation declares again, unchanged.
        self._declared: dict[str, Any] | None = None
        self._reconciler: Reconciler | None = None
        self._cluster: Cluster | None = None
        self._client: Any = None
        self._router_url: str | None = None

    # ------------------------------------------------------------- connection
    def _ensure(self) -> Any:
        if self._client is not None:
            return self._client
        with self._lock:
            if self._client is None:
                cluster = find_cluster(self.settings)
                connect(cluster)
                from ray.serve._private.api import serve_start

                # Port 0 (tests) means any free port; Ray's proxy needs a number.
                port = self.settings.router_port or free_port()
                client = serve_start(http_options={"host": self.settings.host, "port": port})
                config = client.http_config
                self._router_url = f"http://{config.host}:{config.port}"
                self._cluster = cluster
                self._client = client
        return self._client

    @property
    def router_url(self) -> str | None:
        return self._router_url

    # -------------------------------------------------------------------- API
    def start(
        self, endpoints: Sequence[EndpointSpec], model_dirs: Callable[[EndpointSpec], ModelDirs]
    ) -> None:
        self._ensure()
        with self._lock:
            for spec in endpoints:
                try:
                    self._apps.update(self._version_apps(spec, model_dirs(spec)))
                except Exception as exc:  # one endpoint whose model is gone must not keep the others down
                    log.error("endpoint %s cannot be served: %s", spec.name, exc)
                    continue
                self._routed[spec.name] = spec
            self._apply()
            if self._reconciler is None:
                self._reconciler = Reconciler(self.reconcile, self.settings.ray_reconcile_s)
                self._reconciler.start()
        self._audit(
            actor="supervisor",
            action="ray.adopt",
            target="serving/ray",
            after={
                "address": self._cluster.address if self._cluster else None,
                "applications": sorted(self._apps),
            },
        )
        try:
            self._wait_running(list(self._apps), time.monotonic() + READY_TIMEOUT_S)
        except UnavailableError as exc:
            log.error("not every endpoint is serving on Ray: %s", exc)

    def prepare(self, spec: EndpointSpec, model_dirs: ModelDirs) -> None:
        self._ensure()
        wanted = self._version_apps(spec, model_dirs)
        self._check_placeable(spec)
        with self._lock:
            changed = {name: app for name, app in wanted.items() if self._apps.get(name) != app}
            previous = {name: self._apps[name] for name in changed if name in self._apps}
            self._apps.update(changed)
            self._apply()
        try:
            self._wait_running(list(changed), time.monotonic() + READY_TIMEOUT_S)
        except Exception:
            with self._lock:
                for name in changed:
                    if name in previous:
                        self._apps[name] = previous[name]
                    else:
                        self._apps.pop(name, None)
                self._apply()
            raise
        for name in changed:
            self._audit(
                actor="supervisor",
                action="replica.start",
                target=f"endpoint:{spec.name}",
                after={"application": name, "version": wanted[name]["args"]["version"]},
            )

    def publish(self, name: str, spec: EndpointSpec | None) -> None:
        self._ensure()
        with self._lock:
            if spec is None:
                self._routed.pop(name, None)
            else:
                self._routed[name] = spec
            revision = self._apply()
        self._wait_routes(revision, time.monotonic() + 60.0)
        wanted = (
            {serve_config.version_app_name(spec, m, v) for m, v in serve_config.served_versions(spec)}
            if spec
            else set()
        )
        with self._lock:
            prefix = f"{serve_config.APP_PREFIX}{name}."
            retired = [app for app in self._apps if app.startswith(prefix) and app not in wanted]
            for app in retired:
                del self._apps[app]
            if retired:
                self._apply()
        for app in retired:
            self._audit(
                actor="supervisor",
                action="replica.stop",
                target=f"endpoint:{name}",
                before={"application": app},
                reason="no longer routed",
            )

    def status(self) -> dict[str, Any]:
        replicas: list[dict[str, Any]] = []
        with self._lock:
            apps = dict(self._apps)
        statuses: dict[str, Any] = {}
        details: dict[str, Any] = {}
        if self._client is not None:
            try:
                from ray import serve

                statuses = dict(serve.status().applications)
                details = self._client.get_serve_details().get("applications") or {}
            except Exception as exc:  # Ray unreachable: say so, keep answering
                log.warning("Ray Serve status unavailable: %s", exc)
        for name, app in sorted(apps.items()):
            args = app["args"]
            found = statuses.get(name)
            deployment = found.deployments.get(serve_config.VERSION_DEPLOYMENT) if found is not None else None
            replica_states = dict(deployment.replica_states) if deployment is not None else {}
            processes = _replica_processes(details.get(name))
            replicas.append(
                {
                    "id": name,
                    "kind": "replica",
                    "endpoint": args["endpoint"],
                    "model": args["model"],
                    "version": args["version"],
                    "state": _state(found.status if found is not None else None),
                    "pid": next((p["pid"] for p in processes if p["state"] == "RUNNING"), None),
                    "port": None,
                    "device": args["device"],
                    "restarts": 0,
                    "last_error": (found.message or None)
                    if found is not None and found.status != "RUNNING"
                    else None,
                    "ray": {
                        "application": name,
                        "status": _name(found.status) if found is not None else "NOT_DECLARED",
                        "replicas": {str(k): v for k, v in replica_states.items()},
                        "processes": processes,
                        **app["deployments"][0],
                    },
                }
            )
        ingress = statuses.get(serve_config.INGRESS_APP)
        return {
            "backend": "ray",
            "router": {
                "id": serve_config.INGRESS_APP,
                "kind": "router",
                "state": _state(ingress.status if ingress is not None else None),
                "url": self._router_url,
                "ray_address": self._cluster.address if self._cluster is not None else None,
            },
            "router_url": self._router_url,
            "replicas": replicas,
        }

    def reconcile(self) -> dict[str, list[str]] | None:
        """Declare the last config again if Ray lacks one of its applications or runs one it does not
        name; what was found, or None when Ray runs what was declared."""
        from ray import serve
        from ray.serve.schema import ServeDeploySchema

        with self._lock:
            if self._declared is None or self._client is None:
                return None
            declared = [app["name"] for app in self._declared["applications"]]
            found = drift(declared, {n: a.status for n, a in serve.status().applications.items()})
            if not found:
                return None
            self._client.deploy_apps(ServeDeploySchema.model_validate(self._declared))
        after = {"missing": list(found.missing), "foreign": list(found.foreign)}
        log.warning("Ray ran other applications than declared; declared again: %s", after)
        self._audit(actor="supervisor", action="ray.reconcile", target="serving/ray", after=after)
        return after

    def endpoint_status(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.status()["replicas"] if r["endpoint"] == name]

    def close(self, *, stop_processes: bool = True) -> None:
        """A graceful stop: the applications are withdrawn (and a local cluster started here stopped)."""
        if self._client is None:
            return
        import ray

        if self._reconciler is not None:
            self._reconciler.stop()
            self._reconciler = None
        started = time.monotonic()
        if stop_processes:
            self._withdraw_all(time.monotonic() + 30.0)
        withdrawn = time.monotonic()
        ray.shutdown()
        if stop_processes and self._cluster is not None and self._cluster.local:
            stop_local(self._cluster)
            (self.settings.home / "run" / "ray.json").unlink(missing_ok=True)
        log.info(
            "Ray backend closed: applications withdrawn in %.1f s, cluster stopped in %.1f s",
            withdrawn - started,
            time.monotonic() - withdrawn,
        )
        self._client = None

    # ------------------------------------------------------------- internals
    def _version_apps(self, spec: EndpointSpec, model_dirs: ModelDirs) -> dict[str, dict[str, Any]]:
        return serve_config.version_apps(
            spec,
            model_dirs,
            prediction_dir=self.prediction_dir,
            feature_repo=self.settings.feature_repo_path if spec.features is not None else None,
        )

    def _apply(self) -> int:
        """Declare every application as it stands now (the lock held); the route table's revision."""
        from ray.serve.schema import ServeDeploySchema

        self._revision = max(self._revision + 1, time.time_ns() // 1_000_000)
        table = serve_config.route_table(self._revision, self._routed.values(), self._apps)
        ingress = serve_config.ingress_app(
            table, replicas=self.settings.ray_ingress_replicas, cpus=self.settings.ray_ingress_cpus
        )
        config = serve_config.serve_config([*self._apps.values(), ingress])
        try:
            self._client.deploy_apps(ServeDeploySchema.model_validate(config))
        except Exception as exc:
            raise UnavailableError(f"Ray Serve refused the config: {exc}") from exc
        self._declared = config
        return self._revision

    def _withdraw_all(self, deadline: float) -> None:
        """Declare no application and wait until Ray has drained them all: each replica's shutdown
        closes its prediction-log writer, so what it logged reaches disk before the cluster stops.
        (``serve.shutdown`` would do the same, then wait 30 s for its controller here.)"""
        from ray import serve
        from ray.serve.schema import ServeDeploySchema

        try:
            self._client.deploy_apps(ServeDeploySchema.model_validate({"applications": []}))
            while serve.status().applications and time.monotonic() < deadline:
                time.sleep(POLL_S)
        except Exception as exc:  # Ray unreachable: nothing left to drain from here
            log.warning("Ray Serve applications not withdrawn cleanly: %s", exc)

    def _check_placeable(self, spec: EndpointSpec) -> None:
        """Refuse at once what no node of the cluster could ever hold (Ray would wait forever)."""
        import ray

        wanted = serve_config.replica_resources(spec)
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
        for resource, key in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
            amount = wanted[resource]
            if amount <= 0:
                continue
            largest = max((float(n.get(key, 0.0)) for n in nodes), default=0.0)
            if amount > largest:
                raise ValidationError(
                    f"no node of the Ray cluster has {amount:g} {key} for a replica of endpoint {spec.name!r} "
                    f"(the largest has {largest:g}); lower ray.{resource} or add nodes",
                    field=f"ray.{resource}",
                    resources=wanted,
                )

    def _wait_running(self, names: Iterable[str], deadline: float) -> None:
        """Until Ray reports every application running; a failure raises with Ray's own message."""
        from ray import serve

        pending = set(names)
        started = time.monotonic()
        while pending:
            applications = serve.status().applications
            for name in list(pending):
                found = applications.get(name)
                if found is None:
                    continue
                if found.status == "RUNNING":
                    pending.discard(name)
                elif found.status in ("DEPLOY_FAILED", "UNHEALTHY"):
                    raise UnavailableError(f"Ray could not start {name}: {_reason(found)}", application=name)
                elif (
                    time.monotonic() - started > PLACEMENT_TIMEOUT_S
                    and _unplaced(found)
                    and self._short_of(name)
                ):
                    raise UnavailableError(f"Ray cannot place {name}: {_reason(found)}", application=name)
            if not pending:
                return
            if time.monotonic() > deadline:
                reasons = "; ".join(f"{n}: {_reason(applications.get(n))}" for n in sorted(pending))
                raise UnavailableError(f"Ray did not start every application in time: {reasons}")
            time.sleep(POLL_S)

    def _short_of(self, name: str) -> bool:
        """Whether the cluster lacks, now, what a replica of ``name`` reserves. Ray says "taken more than
        5 s to be scheduled" of a replica that is only slow to start on a busy machine too (seen in a
        clean-clone run: 28.75 CPUs free for a replica wanting 1); only a shortfall is a refusal."""
        import ray

        with self._lock:
            app = self._apps.get(name)
        if app is None:
            return False
        wanted = app["deployments"][0]["ray_actor_options"]
        available = ray.available_resources()  # type: ignore[no-untyped-call]
        return any(
            amount > float(available.get(key, 0.0)) + 1e-9
            for resource, key in (("num_cpus", "CPU"), ("num_gpus", "GPU"))
            if (amount := float(wanted.get(resource) or 0.0)) > 0
        )

    def _wait_routes(self, revision: int, deadline: float) -> None:
        """Until the ingress serves ``revision`` and Ray reports it updated (every replica reconfigured)."""
        from ray import serve

        handle = serve.get_app_handle(serve_config.INGRESS_APP).options(method_name="revision")
        while True:
            try:
                served = handle.remote().result(timeout_s=5)
                ingress = serve.status().applications.get(serve_config.INGRESS_APP)
                deployment = ingress.deployments.get(serve_config.INGRESS_DEPLOYMENT) if ingress else None
                if served >= revision and deployment is not None and deployment.status == "HEALTHY":
                    return
            except Exception as exc:  # the ingress is (re)starting: ask again
                log.debug("ingress not answering yet: %s", exc)
            if time.monotonic() > deadline:
                raise UnavailableError(f"the Ray ingress did not take routes revision {revision} in time")
            time.sleep(POLL_S)


def _name(status: Any) -> str:
    return str(getattr(status, "value", status))


def _state(status: Any) -> str:
    return {
        "RUNNING": "ready",
        "DEPLOYING": "starting",
        "NOT_STARTED": "starting",
        "DEPLOY_FAILED": "failed",
        "UNHEALTHY": "unhealthy",
        "DELETING": "stopping",
    }.get(_name(status), "unknown")


def _replica_processes(application: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Each replica of a version's deployment: Ray's id, state and process (the pid Ray restarts)."""
    deployment = ((application or {}).get("deployments") or {}).get(serve_config.VERSION_DEPLOYMENT) or {}
    return [
        {"replica_id": r.get("replica_id"), "state": _name(r.get("state")), "pid": r.get("pid")}
        for r in deployment.get("replicas") or []
    ]


def _reason(found: Any) -> str:
    if found is None:
        return "not declared"
    messages = [found.message] if found.message else []
    messages += [d.message for d in found.deployments.values() if d.message]
    return " ".join(messages) or str(found.status)


def _unplaced(found: Any) -> bool:
    return any("to be scheduled" in (d.message or "") for d in found.deployments.values())
