"""The ray backend's pure parts: specs to Ray Serve's config, route tables, settings, refusals."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests._servers import free_port
from workbench.errors import UnavailableError, ValidationError
from workbench.serving.publishing import shape_digest
from workbench.serving.ray import serve_config
from workbench.serving.ray.cluster import answers, find_cluster
from workbench.serving.ray.inprocess import call
from workbench.serving.ray.reconcile import Reconciler, drift
from workbench.serving.router_app import RouterApp
from workbench.settings import Settings
from workbench.specs.endpoint import AutoscalingSpec, EndpointSpec

DIRS = {("churn", 1): Path("/models/1"), ("churn", 2): Path("/models/2"), ("churn", 3): Path("/models/3")}


def _spec(**options: object) -> EndpointSpec:
    return EndpointSpec.model_validate(
        {
            "name": "web",
            "routes": [
                {"model": "churn", "version": 1, "weight": 90},
                {"model": "churn", "version": 2, "weight": 10},
            ],
            "shadows": [{"model": "churn", "version": 3}],
            **options,
        }
    )


def test_a_version_is_an_application_named_by_the_options_that_shape_its_replicas() -> None:
    spec = _spec(batching={"max_batch_size": 16, "max_wait_ms": 1})
    apps = serve_config.version_apps(spec, DIRS, prediction_dir=Path("/home/predictions"), feature_repo=None)
    assert sorted(apps) == [f"wb.web.churn.v{v}.{shape_digest(spec)}" for v in (1, 2, 3)]
    app = apps[f"wb.web.churn.v2.{shape_digest(spec)}"]
    assert app["import_path"] == "workbench.serving.ray.version:version_app"
    assert app["route_prefix"] is None
    assert app["args"]["model_dir"] == "/models/2"
    assert app["args"]["prediction_log_dir"] == "/home/predictions/web"
    assert (app["args"]["max_batch_size"], app["args"]["max_wait_ms"]) == (16, 1.0)
    (deployment,) = app["deployments"]
    assert deployment["num_replicas"] == 1
    assert deployment["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 0.0}
    other = serve_config.version_apps(
        _spec(batching={"max_batch_size": 64}), DIRS, prediction_dir=Path("/p"), feature_repo=None
    )
    assert set(other).isdisjoint(apps), (
        "new batching options must make new applications, swapped without a gap"
    )


def test_resources_default_to_threads_and_the_device_and_autoscaling_replaces_the_count() -> None:
    assert serve_config.replica_resources(_spec(threads=4)) == {"num_cpus": 4.0, "num_gpus": 0.0}
    assert serve_config.replica_resources(_spec(device="cuda:0")) == {"num_cpus": 1.0, "num_gpus": 1.0}
    assert serve_config.replica_resources(_spec(ray={"num_cpus": 0.5, "num_gpus": 0.25})) == {
        "num_cpus": 0.5,
        "num_gpus": 0.25,
    }
    spec = _spec(ray={"autoscaling": {"min_replicas": 0, "max_replicas": 3, "target_ongoing_requests": 8}})
    (app, *_) = serve_config.version_apps(spec, DIRS, prediction_dir=Path("/p"), feature_repo=None).values()
    (deployment,) = app["deployments"]
    assert "num_replicas" not in deployment
    assert deployment["autoscaling_config"] == {
        "min_replicas": 0,
        "max_replicas": 3,
        "initial_replicas": 1,
        "target_ongoing_requests": 8.0,
    }
    with pytest.raises(ValueError, match="must not exceed max_replicas"):
        AutoscalingSpec(min_replicas=5, max_replicas=2)


def test_the_route_table_reaches_only_declared_applications() -> None:
    spec = _spec()
    declared = {serve_config.version_app_name(spec, "churn", 1): {}}
    table = serve_config.route_table(7, [spec], declared)
    routes = table.endpoints["web"]
    assert table.revision == 7
    assert [(r.version, r.weight, [u.ray_app for u in r.upstreams]) for r in routes.versions] == [
        (1, 90.0, [serve_config.version_app_name(spec, "churn", 1)]),
        (2, 10.0, []),
    ]
    assert routes.shadows[0].upstreams == ()


def test_the_whole_config_is_valid_for_ray_serve_and_carries_the_routes_as_user_config() -> None:
    from ray.serve.schema import ServeDeploySchema

    spec = _spec()
    apps = serve_config.version_apps(spec, DIRS, prediction_dir=Path("/p"), feature_repo=None)
    table = serve_config.route_table(3, [spec], apps)
    ingress = serve_config.ingress_app(table, replicas=2, cpus=0.25)
    config = serve_config.serve_config([*apps.values(), ingress])
    parsed = ServeDeploySchema.model_validate(config)
    names = [app.name for app in parsed.applications]
    assert names == sorted(names)
    (router,) = [app for app in parsed.applications if app.name == "workbench"]
    assert router.route_prefix == "/"
    (deployment,) = router.deployments
    assert deployment.num_replicas == 2
    assert ingress["deployments"][0]["user_config"]["routes"]["revision"] == 3


def test_routes_cannot_be_pushed_to_a_router_that_takes_them_from_its_backend() -> None:
    app = RouterApp(token="secret", routes_file=None)
    status, _, body = asyncio.run(
        call(app, "PUT", "/-/routes", [(b"authorization", b"Bearer secret")], b'{"revision": 1}')
    )
    assert status == 405
    assert b"serving backend" in body
    status, _, _ = asyncio.run(call(app, "GET", "/v2/health/ready", [], b""))
    assert status == 200


def test_an_address_that_does_not_answer_is_refused_at_once(tmp_path: Path) -> None:
    port = free_port()
    assert answers(f"127.0.0.1:{port}") is not None
    assert answers("no-port") == "'no-port' is not host:port"
    settings = Settings.for_home(tmp_path, ray_address=f"127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(UnavailableError, match="does not answer"):
        find_cluster(settings)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WORKBENCH_RAY_NUM_CPUS", "lots"),
        ("WORKBENCH_RAY_NUM_CPUS", "-1"),
        ("WORKBENCH_RAY_INGRESS_REPLICAS", "0"),
        ("WORKBENCH_RAY_INGRESS_CPUS", "100"),
        ("WORKBENCH_RAY_RECONCILE_S", "0"),
        ("WORKBENCH_RAY_RECONCILE_S", "often"),
    ],
)
def test_bad_ray_settings_are_refused_by_name(tmp_path: Path, variable: str, value: str) -> None:
    with pytest.raises(ValidationError, match=variable):
        Settings.from_env({"WORKBENCH_HOME": str(tmp_path), variable: value})


def test_ray_settings_are_read_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "WORKBENCH_HOME": str(tmp_path),
            "WORKBENCH_RAY_ADDRESS": " 10.0.0.5:6379 ",
            "WORKBENCH_RAY_NUM_CPUS": "16",
            "WORKBENCH_RAY_INGRESS_REPLICAS": "2",
            "WORKBENCH_RAY_INGRESS_CPUS": "0.5",
            "WORKBENCH_RAY_RECONCILE_S": "30",
        }
    )
    assert settings.ray_reconcile_s == 30.0
    assert (settings.ray_address, settings.ray_num_cpus) == ("10.0.0.5:6379", 16.0)
    assert (settings.ray_ingress_replicas, settings.ray_ingress_cpus) == (2, 0.5)


def test_reconciliation_finds_missing_and_foreign_applications_but_not_those_draining() -> None:
    running = {"wb.a.m.v1.x": "RUNNING", "wb.b.m.v2.y": "DELETING", "someone-elses": "RUNNING"}
    found = drift(["workbench", "wb.a.m.v1.x", "wb.c.m.v3.z"], running)
    assert found.missing == ("wb.c.m.v3.z", "workbench")
    assert found.foreign == ("someone-elses",)
    assert not drift(["wb.a.m.v1.x"], {"wb.a.m.v1.x": "DEPLOYING", "wb.old": "DELETING"})


def test_a_failing_look_does_not_stop_the_reconciliation_loop() -> None:
    looks: list[float] = []

    def look() -> None:
        looks.append(time.monotonic())
        if len(looks) == 1:
            raise ConnectionError("Ray's head is restarting")

    loop = Reconciler(look, every_s=0.01)
    loop.start()
    deadline = time.monotonic() + 10
    while len(looks) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.stop()
    stopped = len(looks)
    time.sleep(0.05)
    assert stopped >= 3
    assert len(looks) == stopped  # stop() returns once the loop has ended
