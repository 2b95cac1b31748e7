"""The pieces of ``workbench export docker`` and ``export k8s`` that need no server: names Kubernetes
accepts, resources, the route table, the Dockerfile's two ways of getting the wheel, the source copy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from workbench.export import container, kubernetes
from workbench.specs.endpoint import EndpointSpec

DNS_1035 = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


def _spec(**fields: object) -> EndpointSpec:
    base: dict[str, object] = {
        "name": "churn",
        "routes": [
            {"model": "churn", "version": 1, "weight": 90},
            {"model": "churn", "version": 2, "weight": 10},
        ],
    }
    return EndpointSpec.model_validate({**base, **fields})


@pytest.mark.parametrize(
    "parts",
    [
        ("wb", "churn", "churn", "v1"),
        ("wb", "Churn_Model.v2", "X"),
        ("9lives",),
        ("wb", "a" * 80, "b" * 80),
        ("__",),
    ],
)
def test_names_are_dns_labels(parts: tuple[str, ...]) -> None:
    name = kubernetes.dns_name(*parts)
    assert DNS_1035.fullmatch(name), name


def test_long_names_stay_apart() -> None:
    first, second = kubernetes.dns_name("wb", "a" * 70 + "x"), kubernetes.dns_name("wb", "a" * 70 + "y")
    assert first != second
    assert len(first) == len(second) == 63


def test_shadows_get_a_deployment_and_the_router_mirrors_to_them() -> None:
    spec = _spec(shadows=[{"model": "churn", "version": 3, "sample_percent": 25}], sticky_salt="s1")
    documents = kubernetes.manifests(spec, "repo/churn", {})
    deployments = [d["metadata"]["name"] for d in documents if d["kind"] == "Deployment"]
    assert deployments == ["wb-churn-churn-v1", "wb-churn-churn-v2", "wb-churn-churn-v3", "wb-churn-router"]
    routes = kubernetes.route_table(spec).endpoints["churn"]
    assert routes.sticky_salt == "s1"
    (shadow,) = routes.shadows
    assert (shadow.version, shadow.sample_percent, shadow.upstreams[0].host) == (3, 25.0, "wb-churn-churn-v3")


@pytest.mark.parametrize(
    ("threads", "device", "model_mib", "cpu", "memory", "gpu"),
    [
        (None, "auto", 0, "1", "640Mi", None),
        (4, "cpu", 100, "4", "1024Mi", None),
        (2, "cuda:0", 1000, "2", "4608Mi", "1"),
    ],
)
def test_resources_follow_threads_model_size_and_device(
    threads: int | None, device: str, model_mib: int, cpu: str, memory: str, gpu: str | None
) -> None:
    resources = kubernetes.replica_resources(_spec(threads=threads, device=device), model_mib * 1024 * 1024)
    assert resources["requests"] == {"cpu": cpu, "memory": memory}
    assert resources["limits"].get("memory") == memory
    assert resources["limits"].get("nvidia.com/gpu") == gpu


def test_a_given_wheel_replaces_the_build_stage() -> None:
    text = container.dockerfile(_spec(), "churn", 2, wheel="mlops_workbench-1.0.0-py3-none-any.whl")
    assert "AS wheel" not in text
    assert "COPY mlops_workbench-1.0.0-py3-none-any.whl /tmp/wheels/" in text
    built = container.dockerfile(_spec(), "churn", 2, wheel=None)
    assert "COPY --from=wheel /wheels/ /tmp/wheels/" in built


def test_the_replica_config_carries_the_endpoints_serving_settings() -> None:
    spec = _spec(
        batching={"max_batch_size": 32, "max_wait_ms": 5}, threads=3, torchscript=True, log_sample_rate=0.5
    )
    config = container.replica_config(spec, "churn", 2)
    assert (config.replica_id, config.max_batch_size, config.max_wait_ms, config.threads) == (
        "churn-churn-v2",
        32,
        5.0,
        3,
    )
    assert (config.torchscript, config.log_sample_rate, config.port, config.uds) == (True, 0.5, 8080, None)


def test_the_source_copy_skips_what_the_build_makes(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    for name in (
        "pyproject.toml",
        "README.md",
        "workbench/__init__.py",
        "workbench/jupyter/labextension/package.json",
        "extensions/workbench-lab/package.json",
        "extensions/workbench-lab/node_modules/x/index.js",
        "extensions/workbench-lab/lib/index.js",
        "tests/test_x.py",
        "notebooks/a.ipynb",
    ):
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_text("x")
    copied = container.copy_source(checkout, tmp_path / "source")
    assert sorted(copied) == [
        "README.md",
        "extensions/workbench-lab/package.json",
        "pyproject.toml",
        "workbench/__init__.py",
    ]


def test_two_models_with_the_same_version_get_their_own_images() -> None:
    spec = _spec(
        routes=[
            {"model": "churn", "version": 1, "weight": 50},
            {"model": "churn-xgb", "version": 1, "weight": 50},
        ]
    )
    images = [
        d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in kubernetes.manifests(spec, "repo/x", {})
        if d["kind"] == "Deployment" and d["metadata"]["name"] != "wb-churn-router"
    ]
    assert images == ["repo/x:churn-churn-v1", "repo/x:churn-churn-xgb-v1"]
    assert len(container.replica_id("e" * 63, "m" * 128, 1)) <= 128


def test_the_router_pods_roll_when_the_routes_change() -> None:
    def digest(weights: tuple[int, int]) -> str:
        spec = _spec(
            routes=[
                {"model": "churn", "version": 1, "weight": weights[0]},
                {"model": "churn", "version": 2, "weight": weights[1]},
            ]
        )
        (router,) = [
            d
            for d in kubernetes.manifests(spec, "repo/x", {})
            if d["metadata"]["name"] == "wb-churn-router" and d["kind"] == "Deployment"
        ]
        return str(router["spec"]["template"]["metadata"]["annotations"]["workbench/routes-digest"])

    assert digest((90, 10)) == digest((90, 10))
    assert digest((90, 10)) != digest((50, 50))
