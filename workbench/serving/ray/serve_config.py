"""Endpoint specs as Ray Serve's declarative config: which applications, with which options.

One application per served model version, and one ingress application (the router) for every endpoint.
Ray Serve rebuilds an application's deployments when its arguments change, so a version never shares
an application with another: deploying v4 must not restart v3's replicas. The ingress is one
application because Ray's HTTP proxy routes by one path prefix per application, and the Open Inference
Protocol puts the model's name after ``/v2/models/``; it takes the route table as its ``user_config``,
which Ray applies to running replicas in place (``reconfigure``), without a restart. Pure functions: the
backend applies what they build.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from workbench.serving.backend import ModelDirs
from workbench.serving.publishing import endpoint_routes, replica_options, shape_digest
from workbench.serving.routes import EndpointRoutes, RouteTable, Upstream
from workbench.specs.endpoint import EndpointSpec
from workbench.specs.features import FeatureLookup

#: The application that routes every endpoint, at Ray Serve's HTTP root.
INGRESS_APP = "workbench"
INGRESS_DEPLOYMENT = "router"
VERSION_DEPLOYMENT = "version"
#: Every application Workbench declares starts with this, so status pages can tell them apart.
APP_PREFIX = "wb."
VERSION_IMPORT = "workbench.serving.ray.version:version_app"
INGRESS_IMPORT = "workbench.serving.ray.ingress:router_app"


class VersionArgs(BaseModel):
    """What a Ray replica of one model version needs: the local replica's config, less its sockets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    app: str
    endpoint: str
    model: str
    version: int
    model_dir: str
    device: str = "auto"
    threads: int | None = None
    torchscript: bool = False
    max_batch_size: int = 64
    max_wait_ms: float = 2.0
    payload_limit_bytes: int = 8 * 1024 * 1024
    prediction_log_dir: str | None = None
    log_sample_rate: float = 1.0
    features: FeatureLookup | None = None
    feature_repo: str | None = None


def version_app_name(spec: EndpointSpec, model: str, version: int) -> str:
    """Named by the options that shape a replica, as local replicas are: new options, a new application
    beside the old one, swapped without a gap."""
    return f"{APP_PREFIX}{spec.name}.{model}.v{version}.{shape_digest(spec)}"


def served_versions(spec: EndpointSpec) -> list[tuple[str, int]]:
    return list(
        dict.fromkeys(
            [(r.model, r.version) for r in spec.routes] + [(s.model, s.version) for s in spec.shadows]
        )
    )


def replica_resources(spec: EndpointSpec) -> dict[str, float]:
    """``ray_actor_options`` of a version's replicas: CPUs default to the torch threads, GPUs to one for
    a cuda device."""
    chosen = spec.ray
    cpus = chosen.num_cpus if chosen is not None and chosen.num_cpus is not None else float(spec.threads or 1)
    gpus = chosen.num_gpus if chosen is not None and chosen.num_gpus is not None else None
    if gpus is None:
        gpus = 1.0 if spec.device.startswith("cuda") else 0.0
    return {"num_cpus": cpus, "num_gpus": gpus}


def version_apps(
    spec: EndpointSpec, model_dirs: ModelDirs, *, prediction_dir: Path, feature_repo: Path | None
) -> dict[str, dict[str, Any]]:
    """The applications serving ``spec``'s versions, by name, as Ray Serve config entries."""
    apps: dict[str, dict[str, Any]] = {}
    for model, version in served_versions(spec):
        name = version_app_name(spec, model, version)
        args = VersionArgs(
            app=name,
            endpoint=spec.name,
            model=model,
            version=version,
            model_dir=str(model_dirs[(model, version)]),
            **replica_options(spec),
            prediction_log_dir=str(prediction_dir / spec.name),
            feature_repo=str(feature_repo)
            if spec.features is not None and feature_repo is not None
            else None,
        )
        deployment: dict[str, Any] = {
            "name": VERSION_DEPLOYMENT,
            "ray_actor_options": replica_resources(spec),
            # Enough requests in flight per replica to fill a batch twice over.
            "max_ongoing_requests": max(16, min(4096, 2 * spec.batching.max_batch_size)),
            "health_check_period_s": 5.0,
            "graceful_shutdown_timeout_s": 30.0,
        }
        scaling = spec.ray.autoscaling if spec.ray is not None else None
        if scaling is not None:
            deployment["autoscaling_config"] = {
                "min_replicas": scaling.min_replicas,
                "max_replicas": scaling.max_replicas,
                "initial_replicas": max(scaling.min_replicas, 1),
                "target_ongoing_requests": scaling.target_ongoing_requests,
            }
        else:
            deployment["num_replicas"] = spec.replicas
        apps[name] = {
            "name": name,
            "import_path": VERSION_IMPORT,
            "route_prefix": None,
            "args": args.model_dump(mode="json"),
            "deployments": [deployment],
        }
    return apps


def route_table(revision: int, specs: Iterable[EndpointSpec], serving: Mapping[str, object]) -> RouteTable:
    """The local router's table, each version reached through its application (when it is declared)."""
    endpoints: dict[str, EndpointRoutes] = {}
    for spec in specs:

        def upstreams(model: str, version: int, spec: EndpointSpec = spec) -> tuple[Upstream, ...]:
            name = version_app_name(spec, model, version)
            return (Upstream(replica_id=name, port=0, ray_app=name),) if name in serving else ()

        endpoints[spec.name] = endpoint_routes(spec, upstreams)
    return RouteTable(revision=revision, endpoints=endpoints)


def ingress_app(
    table: RouteTable, *, replicas: int, cpus: float, request_timeout_s: float = 60.0
) -> dict[str, Any]:
    return {
        "name": INGRESS_APP,
        "import_path": INGRESS_IMPORT,
        "route_prefix": "/",
        "args": {"request_timeout_s": request_timeout_s},
        "deployments": [
            {
                "name": INGRESS_DEPLOYMENT,
                "num_replicas": replicas,
                "ray_actor_options": {"num_cpus": cpus},
                "max_ongoing_requests": 1024,
                "user_config": {"routes": table.model_dump(mode="json")},
                "health_check_period_s": 5.0,
            }
        ],
    }


def serve_config(apps: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The whole declarative config: Ray Serve deletes any application it does not name."""
    return {"applications": [dict(app) for app in sorted(apps, key=lambda a: str(a["name"]))]}
