"""Kubernetes manifests for an endpoint: ``workbench export k8s ENDPOINT``.

Two shapes, for two kinds of cluster:

* **Plain Kubernetes** (the default): per version, a Deployment of the replica image
  (:mod:`workbench.export.container`) and a Service; and the router, a Deployment of two pods with a
  Service for HTTP (8080) and OIP gRPC (8081), reading the endpoint's routes from a ConfigMap. The routes
  are the same table the local router is given (:func:`workbench.serving.publishing.endpoint_routes`),
  with each version reached through its Service's name, so weights, sticky keys and shadows behave as they
  do on one machine. Changing them is a ``kubectl apply`` of a new export: in the cluster the routes come
  from the manifest, and the router's admin token is a random one made at each start, used by nobody.
* **KServe** (``--kserve``): an ``InferenceService`` (``serving.kserve.io/v1beta1``) whose predictor is the
  version's MLflow model on KServe's MLflow runtime, speaking OIP v2 (``protocolVersion: v2``, MLServer).
  KServe then owns scaling and its own canary (``canaryTrafficPercent`` on the next revision); the model's
  files must be where the cluster can read them (``--storage-uri``: s3://, gs://, pvc://...).

Probes: readiness on the replica's OIP ``/v2/health/ready`` (ready once the model is loaded and warmed),
liveness on ``/v2/health/live``, and a startup probe that allows a slow model load before liveness counts.
Resources: CPU requested per torch thread, memory from the model's size on disk, a GPU when the endpoint
asks for CUDA.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Final

from workbench.export import container
from workbench.serving.config import RouterConfig
from workbench.serving.publishing import endpoint_routes
from workbench.serving.routes import RouteTable, Upstream
from workbench.specs.endpoint import EndpointSpec

GRPC_PORT: Final = 8081
ROUTER_CONFIG: Final = "/etc/workbench/router.json"
ROUTES_FILE: Final = "/etc/workbench/routes.json"
ROUTER_REPLICAS: Final = 2
_MANAGED_BY: Final = {"app.kubernetes.io/managed-by": "workbench-export"}
_MIB: Final = 1024 * 1024


def dns_name(*parts: str) -> str:
    """A DNS-1035 label (what Kubernetes names Services and Deployments with) made of ``parts``: lowercase,
    dashes for anything else, at most 63 characters (a hash keeps two long names apart)."""
    raw = "-".join(parts)
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    if not name:
        name = "wb"
    elif not name[0].isalpha():
        name = f"wb-{name}"
    if len(name) > 63:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        name = f"{name[:54].rstrip('-')}-{digest}"
    return name


def version_name(spec: EndpointSpec, model: str, version: int) -> str:
    return dns_name("wb", spec.name, model, f"v{version}")


def router_name(spec: EndpointSpec) -> str:
    return dns_name("wb", spec.name, "router")


def image_for(image: str, spec: EndpointSpec, model: str, version: int) -> str:
    """The image ``workbench export docker`` builds for a version, as tagged by the docs' build command."""
    return f"{image}:{container.replica_id(spec.name, model, version)}"


def _labels(spec: EndpointSpec, component: str, **extra: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "workbench",
        "app.kubernetes.io/instance": dns_name(spec.name),
        "app.kubernetes.io/component": component,
        **_MANAGED_BY,
        **extra,
    }


def _http_probe(path: str, port: str, **timing: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port}, **timing}


def _security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": container.USER_ID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def replica_resources(spec: EndpointSpec, model_bytes: int) -> dict[str, Any]:
    """CPU per torch thread; memory for the weights a few times over (load, copies, batch activations)
    plus the interpreter and libraries (~600 MiB with torch); a GPU when the endpoint asks for CUDA."""
    memory_mib = 600 + 4 * max(1, model_bytes // _MIB)
    memory = f"{((memory_mib + 127) // 128) * 128}Mi"
    requests: dict[str, Any] = {"cpu": str(spec.threads or 1), "memory": memory}
    limits: dict[str, Any] = {"memory": memory}
    if spec.device.startswith("cuda"):
        limits["nvidia.com/gpu"] = "1"
    return {"requests": requests, "limits": limits}


def _versions(spec: EndpointSpec) -> list[tuple[str, int]]:
    seen: dict[tuple[str, int], None] = {}
    for route in spec.routes:
        seen[(route.model, route.version)] = None
    for shadow in spec.shadows:
        seen[(shadow.model, shadow.version)] = None
    return list(seen)


def route_table(spec: EndpointSpec) -> RouteTable:
    """The endpoint's routes with every version reached through its Service."""

    def upstreams(model: str, version: int) -> tuple[Upstream, ...]:
        name = version_name(spec, model, version)
        return (Upstream(replica_id=name, host=name, port=container.PORT),)

    return RouteTable(revision=1, endpoints={spec.name: endpoint_routes(spec, upstreams)})


def manifests(
    spec: EndpointSpec, image: str, model_bytes: dict[tuple[str, int], int]
) -> list[dict[str, Any]]:
    """Deployments and Services for every version the endpoint routes or mirrors to, and its router."""
    documents: list[dict[str, Any]] = []
    versions = _versions(spec)
    for model, version in versions:
        name = version_name(spec, model, version)
        labels = _labels(
            spec, "replica", **{"workbench/model": dns_name(model), "workbench/version": str(version)}
        )
        selector = {
            "app.kubernetes.io/instance": labels["app.kubernetes.io/instance"],
            "workbench/version": str(version),
            "workbench/model": labels["workbench/model"],
        }
        documents.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "replicas": spec.replicas,
                    "selector": {"matchLabels": selector},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "securityContext": {"runAsNonRoot": True, "fsGroup": container.USER_ID},
                            "containers": [
                                {
                                    "name": "replica",
                                    "image": image_for(image, spec, model, version),
                                    "ports": [{"name": "http", "containerPort": container.PORT}],
                                    "startupProbe": _http_probe(
                                        container.LIVE_PATH, "http", periodSeconds=5, failureThreshold=60
                                    ),
                                    "readinessProbe": _http_probe(
                                        container.READY_PATH, "http", periodSeconds=5, failureThreshold=2
                                    ),
                                    "livenessProbe": _http_probe(
                                        container.LIVE_PATH, "http", periodSeconds=10, failureThreshold=3
                                    ),
                                    # The root filesystem is read-only: caches a library writes under HOME go to /tmp.
                                    "env": [{"name": "HOME", "value": "/tmp"}],
                                    "resources": replica_resources(
                                        spec, model_bytes.get((model, version), 0)
                                    ),
                                    "securityContext": _security(),
                                    "volumeMounts": [
                                        {"name": "predictions", "mountPath": str(container.PREDICTIONS)},
                                        {"name": "tmp", "mountPath": "/tmp"},
                                    ],
                                }
                            ],
                            "volumes": [
                                {"name": "predictions", "emptyDir": {}},
                                {"name": "tmp", "emptyDir": {}},
                            ],
                        },
                    },
                },
            }
        )
        documents.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "selector": selector,
                    "ports": [{"name": "http", "port": container.PORT, "targetPort": "http"}],
                },
            }
        )
    documents.extend(_router(spec, image_for(image, spec, *versions[0])))
    return documents


def router_config() -> RouterConfig:
    from pathlib import Path

    return RouterConfig(
        host="0.0.0.0",  # a pod listens on its own network namespace
        port=container.PORT,
        grpc_port=GRPC_PORT,
        routes_file=Path(ROUTES_FILE),
        token_file=Path("/tmp/workbench/token"),
        ready_file=Path("/tmp/workbench/router.ready.json"),
    )


def _router(spec: EndpointSpec, image: str) -> list[dict[str, Any]]:
    name = router_name(spec)
    labels = _labels(spec, "router")
    selector = {
        "app.kubernetes.io/instance": labels["app.kubernetes.io/instance"],
        "app.kubernetes.io/component": "router",
    }
    # The admin token only guards PUT /-/routes, which nothing uses here: a fresh random one per start.
    config = {
        "router.json": router_config().model_dump_json(indent=2),
        "routes.json": route_table(spec).model_dump_json(indent=2),
    }
    # The router reads its routes at start: a new digest in the pod template makes `kubectl apply` of a new
    # export roll the router pods, so new weights take effect (a changed ConfigMap alone restarts nothing).
    digest = hashlib.sha256("".join(config.values()).encode()).hexdigest()[:16]
    start = (
        "mkdir -p /tmp/workbench && python -c 'import secrets; print(secrets.token_urlsafe(32))' "
        f"> /tmp/workbench/token && exec python -m workbench.serving.router {ROUTER_CONFIG}"
    )
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels},
            "data": config,
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": ROUTER_REPLICAS,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": labels, "annotations": {"workbench/routes-digest": digest}},
                    "spec": {
                        "securityContext": {"runAsNonRoot": True},
                        "containers": [
                            {
                                "name": "router",
                                "image": image,
                                "command": ["sh", "-c", start],
                                "env": [{"name": "HOME", "value": "/tmp"}],
                                "ports": [
                                    {"name": "http", "containerPort": container.PORT},
                                    {"name": "grpc", "containerPort": GRPC_PORT},
                                ],
                                "readinessProbe": _http_probe("/v2/health/ready", "http", periodSeconds=5),
                                "livenessProbe": _http_probe(
                                    "/-/health", "http", periodSeconds=10, failureThreshold=3
                                ),
                                "resources": {
                                    "requests": {"cpu": "250m", "memory": "256Mi"},
                                    "limits": {"memory": "512Mi"},
                                },
                                "securityContext": _security(),
                                "volumeMounts": [
                                    {"name": "config", "mountPath": "/etc/workbench", "readOnly": True},
                                    {"name": "tmp", "mountPath": "/tmp"},
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "config", "configMap": {"name": name}},
                            {"name": "tmp", "emptyDir": {}},
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": dns_name("wb", spec.name), "labels": labels},
            "spec": {
                "selector": selector,
                "ports": [
                    {"name": "http", "port": container.PORT, "targetPort": "http"},
                    {
                        "name": "grpc",
                        "port": GRPC_PORT,
                        "targetPort": "grpc",
                        "appProtocol": "kubernetes.io/h2c",
                    },
                ],
            },
        },
    ]


def inference_service(
    spec: EndpointSpec, model: str, version: int, storage_uri: str, model_bytes: int
) -> dict[str, Any]:
    """A KServe InferenceService serving one version on KServe's MLflow runtime over OIP v2."""
    resources = replica_resources(spec, model_bytes)
    predictor: dict[str, Any] = {
        "minReplicas": spec.replicas,
        "model": {
            "modelFormat": {"name": "mlflow"},
            "protocolVersion": "v2",
            "runtime": "kserve-mlserver",
            "storageUri": storage_uri,
            "resources": resources,
        },
    }
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": dns_name(spec.name),
            "labels": _labels(
                spec,
                "inference-service",
                **{"workbench/model": dns_name(model), "workbench/version": str(version)},
            ),
        },
        "spec": {"predictor": predictor},
    }
