"""Production integrations against the real data plane (issue 17).

Prometheus and Grafana: Debian's ``promtool`` validates every ``/metrics`` output and the generated
files, a real ``prometheus`` (started here on a free port with the config that ``workbench export
prometheus`` writes) scrapes the router and the control plane, and PromQL returns a
replica's batch-size histogram through the router. The Grafana dashboard's every query names metrics
that the live outputs contain. Containers and Kubernetes: ``workbench export docker`` writes a build
context whose replica (the image's command, run here without a container engine) serves the version's
answers from the exported files; ``workbench export k8s`` writes manifests that the official
``kubernetes`` and ``kserve`` models read without an unknown field."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from tests._servers import free_port
from tests.serving.conftest import World, make_world, oip_columns, replica_ready, wait_until
from tests.serving.test_monitoring import _monitor
from workbench.demo.dataset import generate_churn
from workbench.export import grafana
from workbench.export.targets import targets, write_targets
from workbench.serving.config import ReplicaConfig, RouterConfig
from workbench.serving.routes import RouteTable
from workbench.specs.monitor import AlertRuleSpec


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get(
            "WORKBENCH_REQUIRE_POSTGRES"
        ):  # set by `make test`, which installs the system packages
            pytest.fail(
                f"{name} is required (make test installs Debian's prometheus package) but was not found"
            )
        pytest.skip(f"{name} is not installed (apt-get install prometheus)")
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Iterator[World]:
    yield from make_world(tmp_path_factory.mktemp("prometheus"), mlflow_template, serving_backend="local")


@pytest.fixture(scope="module")
def served(world: World) -> str:
    """An endpoint with traffic, a monitor that has judged drift, and an alert rule it has evaluated: every
    family the dashboards and rules read exists."""
    world.client.deploy("scraped", "models:/churn/1", max_batch_size=16, max_wait_ms=2)
    world.plane.monitoring.create_monitor(_monitor("scraped", "scraped"), actor="tester")
    world.client.create_alert_rule(
        AlertRuleSpec(name="scraped-drift", monitor="scraped", series="drift_share", op=">=", threshold=0.5)
    )
    rows = generate_churn(1200, seed=5)
    with httpx.Client(timeout=30) as http:
        for start in range(0, 1200, 100):
            body = oip_columns(rows.iloc[start : start + 100])
            assert http.post(f"{world.router}/v2/models/scraped/infer", json=body).status_code == 200
    wait_until(lambda: world.plane.monitoring.engine.tick("scraped")["drift"] is not None, timeout=60)
    return "scraped"


def _outputs(world: World) -> dict[str, str]:
    return {
        "router": httpx.get(f"{world.router}/metrics", timeout=30).text,
        "control plane": httpx.get(f"{world.api_url}/api/v1/metrics", timeout=30).text,
    }


def test_promtool_accepts_every_metrics_output(world: World, served: str) -> None:
    promtool = _tool("promtool")
    replica = world.client.endpoint_status(served)["replicas"][0]
    outputs = {**_outputs(world), "replica": httpx.get(f"http://127.0.0.1:{replica['port']}/metrics").text}
    for source, text in outputs.items():
        checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
        # Exit 0: valid exposition; lint findings (none expected) are printed and fail it too.
        assert checked.returncode == 0, f"{source}: {checked.stdout}{checked.stderr}"
    assert f'replica="{replica["id"]}"' in outputs["router"]


def test_every_grafana_query_names_metrics_the_live_outputs_contain(world: World, served: str) -> None:
    text = "\n".join(_outputs(world).values())
    exposed = {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")
    }
    board = grafana.dashboard()
    assert board["panels"], "the dashboard has no panels"
    for query in grafana.queries(board):
        names = grafana.metric_names(query)
        assert names, f"a query names no workbench metric: {query}"
        assert names <= exposed, f"{sorted(names - exposed)} in {query!r} are not exposed"


def test_a_real_prometheus_scrapes_the_router_and_control_plane_with_the_exported_config(
    world: World, served: str, tmp_path: Path
) -> None:
    prometheus, promtool = _tool("prometheus"), _tool("promtool")
    # What `workbench up` writes at start: the control plane's and the router's addresses.
    write_targets(world.settings.home, targets(world.api_url, world.router, "local"))
    out = tmp_path / "prom"
    env = {
        **os.environ,
        "WORKBENCH_HOME": str(world.settings.home),
        "WORKBENCH_URL": world.api_url,
        "WORKBENCH_ALLOWED_ROOTS": str(tmp_path),
    }
    cli = [sys.executable, "-m", "workbench"]
    exported = subprocess.run(
        [*cli, "export", "prometheus", "--out", str(out)], env=env, capture_output=True, text=True
    )
    assert exported.returncode == 0, exported.stderr
    config_file, rules_file = out / "prometheus.yml", out / "workbench-rules.yml"
    rules = yaml.safe_load(rules_file.read_text())
    assert [r["labels"]["rule"] for r in rules["groups"][0]["rules"]] == ["scraped-drift"]
    checked = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = yaml.safe_load(config_file.read_text())
    config["global"]["scrape_interval"] = "1s"  # the test's only change: a scrape a second, not every 15 s
    config_file.write_text(yaml.safe_dump(config))
    checked = subprocess.run([promtool, "check", "config", str(config_file)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "prometheus.log").open("w") as log:
        server = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config_file}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        replica = world.client.endpoint_status(served)["replicas"][0]["id"]

        def query(promql: str) -> list[dict[str, object]]:
            try:
                answer = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
            except (httpx.HTTPError, ValueError):  # not up yet: refused, or a plain-text 503 while it starts
                return []
            return list(answer["data"]["result"]) if answer.get("status") == "success" else []

        batches = wait_until(
            lambda: query(f'workbench_replica_batch_size_rows_bucket{{replica="{replica}"}}'), timeout=60
        )
        assert {b["metric"]["endpoint"] for b in batches} == {served}  # type: ignore[index]
        assert {b["metric"]["component"] for b in batches} == {"router"}  # type: ignore[index]
        assert wait_until(
            lambda: query('workbench_monitor_value{monitor="scraped",series="drift_share"}'), timeout=30
        )
        assert wait_until(lambda: query('up{component="control-plane"} == 1'), timeout=30)
        loaded = httpx.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"]
        assert [r["name"] for g in loaded for r in g["rules"]] == ["Workbench_scraped_drift"]
    finally:
        server.terminate()
        server.wait(timeout=30)


# --------------------------------------------------------------------------------------------------------------
# Containers and Kubernetes: workbench export docker / k8s


REPO = Path(__file__).resolve().parents[2]
KSERVE_PYTHON = REPO / ".venv-kserve" / "bin" / "python"


def _export(world: World, roots: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "WORKBENCH_HOME": str(world.settings.home),
        "WORKBENCH_URL": world.api_url,
        "WORKBENCH_ALLOWED_ROOTS": str(roots),
    }
    return subprocess.run(
        [sys.executable, "-m", "workbench", "export", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _strict_load(path: Path) -> list[dict[str, str]]:
    """The documents read into KServe's and the kubernetes client's models (in the KServe environment)."""
    if not KSERVE_PYTHON.exists():
        if os.environ.get("WORKBENCH_REQUIRE_POSTGRES"):  # set by `make test`, which makes .venv-kserve
            pytest.fail(f"{KSERVE_PYTHON} is required: make test creates it")
        pytest.skip("no .venv-kserve (make test creates it)")
    loaded = subprocess.run(
        [str(KSERVE_PYTHON), str(Path(__file__).parent / "_strict_k8s_load.py"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    return [json.loads(line) for line in loaded.stdout.splitlines()]


@pytest.fixture(scope="module")
def split(world: World) -> str:
    """Two versions 70/30 with a sticky salt: routes the Kubernetes router must keep as they are."""
    world.client.create_endpoint(
        "exported",
        [{"model": "models:/churn/1", "weight": 70}, {"model": "models:/churn/2", "weight": 30}],
        batching={"max_batch_size": 8},
        threads=2,
    )
    return "exported"


def test_export_docker_writes_a_build_context_whose_replica_serves_the_versions_answers(
    world: World, served: str, tmp_path: Path
) -> None:
    context = tmp_path / "image"
    done = _export(world, tmp_path, "docker", served, "--out", str(context))
    assert done.returncode == 0, done.stderr
    assert f"docker build -t IMAGE:{served}-churn-v1 {context}" in done.stdout
    lines = (context / "Dockerfile").read_text().splitlines()
    instructions = [line for line in lines if line and not line.startswith("#") and not line.startswith(" ")]
    # Two stages: the wheel, built as a release builds it, then the image that installs it.
    assert [i for i in instructions if i.startswith("FROM ")] == [
        "FROM python:3.11-slim AS wheel",
        "FROM python:3.11-slim",
    ]
    assert "RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels /src" in instructions
    order = [
        next(n for n, i in enumerate(instructions) if i.startswith(prefix))
        for prefix in (
            "RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu",
            "RUN pip install --no-cache-dir /tmp/wheels/mlops_workbench-*.whl",
            "COPY --chown=10001 model/ /opt/workbench/model/",
            "USER 10001",
            "HEALTHCHECK",
            "ENTRYPOINT",
        )
    ]
    assert order == sorted(order)  # torch alone first; no root left when the replica starts
    assert any("/v2/health/ready" in i for i in instructions if i.startswith("HEALTHCHECK"))
    assert (
        instructions[-1]
        == 'ENTRYPOINT ["python", "-m", "workbench.serving.replica", "/opt/workbench/replica.json"]'
    )
    assert "EXPOSE 8080" in instructions
    # The build context holds what those instructions copy: the source the wheel is built from ...
    source = context / "source"
    assert (source / "pyproject.toml").read_bytes() == (REPO / "pyproject.toml").read_bytes()
    hatch = tomllib.loads((source / "pyproject.toml").read_text())["tool"]["hatch"]
    wheel_target = hatch["build"]["targets"]["wheel"]
    needed = [
        *wheel_target["packages"],
        *wheel_target["force-include"],
        "jupyter-config/server-config",
        hatch["build"]["hooks"]["jupyter-builder"]["build-kwargs"]["path"],
        "extensions/workbench-lab/package.json",
        "extensions/workbench-lab/yarn.lock",
        "README.md",
    ]
    assert [n for n in needed if not (source / n).exists()] == []
    assert not list(source.rglob("node_modules"))
    assert not (source / "tests").exists()
    # ... the model, as the registry holds it, and the replica's config with the endpoint's settings.
    assert (context / "model" / "MLmodel").is_file()
    config = ReplicaConfig.model_validate_json((context / "replica.json").read_text())
    assert (config.host, config.port, config.uds, str(config.model_dir)) == (
        "0.0.0.0",
        8080,
        None,
        "/opt/workbench/model",
    )
    assert (config.endpoint, config.version, config.max_batch_size, config.max_wait_ms) == (
        served,
        1,
        16,
        2.0,
    )
    # The image's command on this machine (its paths here instead of the image's): the replica serves the
    # version's answers from the exported files alone.
    port = free_port()
    local = config.model_copy(
        update={
            "model_dir": context / "model",
            "host": "127.0.0.1",
            "port": port,
            "ready_file": tmp_path / "ready.json",
            "prediction_log_dir": tmp_path / "predictions",
        }
    )
    (tmp_path / "replica.json").write_text(local.model_dump_json())
    with (tmp_path / "replica.log").open("w") as log:
        replica = subprocess.Popen(
            [sys.executable, "-m", "workbench.serving.replica", str(tmp_path / "replica.json")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: (tmp_path / "ready.json").is_file() and replica_ready(url), timeout=120)
        rows = world.frame.iloc[100:105]
        answer = httpx.post(f"{url}/v2/models/{served}/infer", json=oip_columns(rows), timeout=30)
        assert answer.status_code == 200, answer.text
        (output,) = answer.json()["outputs"]
        np.testing.assert_allclose(output["data"], world.expected(1, rows).reshape(-1), rtol=1e-6, atol=1e-6)
    finally:
        replica.terminate()
        replica.wait(timeout=30)


def test_export_k8s_writes_deployments_services_and_the_routes_of_the_endpoint(
    world: World, split: str, tmp_path: Path
) -> None:
    out = tmp_path / "k8s"
    done = _export(world, tmp_path, "k8s", split, "--out", str(out), "--image", "registry.example.com/churn")
    assert done.returncode == 0, done.stderr
    documents = list(yaml.safe_load_all((out / "manifests.yaml").read_text()))
    assert [(d["kind"], d["metadata"]["name"]) for d in documents] == [
        ("Deployment", "wb-exported-churn-v1"),
        ("Service", "wb-exported-churn-v1"),
        ("Deployment", "wb-exported-churn-v2"),
        ("Service", "wb-exported-churn-v2"),
        ("ConfigMap", "wb-exported-router"),
        ("Deployment", "wb-exported-router"),
        ("Service", "wb-exported"),
    ]
    loaded = _strict_load(out / "manifests.yaml")
    assert [entry["model"].rsplit(".", 1)[1] for entry in loaded] == [
        "V1Deployment",
        "V1Service",
        "V1Deployment",
        "V1Service",
        "V1ConfigMap",
        "V1Deployment",
        "V1Service",
    ]
    for version, deployment in ((1, documents[0]), (2, documents[2])):
        (replica,) = deployment["spec"]["template"]["spec"]["containers"]
        assert replica["image"] == f"registry.example.com/churn:exported-churn-v{version}"
        assert replica["ports"] == [{"name": "http", "containerPort": 8080}]
        assert replica["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
        assert replica["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
        assert replica["startupProbe"]["failureThreshold"] * replica["startupProbe"]["periodSeconds"] >= 300
        assert replica["resources"]["requests"]["cpu"] == "2"  # the endpoint's two torch threads
        assert replica["resources"]["requests"]["memory"] == replica["resources"]["limits"]["memory"]
        assert replica["securityContext"]["runAsNonRoot"] is True
        assert replica["securityContext"]["runAsUser"] == 10001
        template_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= template_labels.items()
    # The router's routes are the endpoint's: weights, salt and limit, each version through its Service.
    config_map = documents[4]["data"]
    table = RouteTable.model_validate_json(config_map["routes.json"])
    routes = table.endpoints[split]
    assert [(r.version, r.weight) for r in routes.versions] == [(1, 70.0), (2, 30.0)]
    assert [[(u.host, u.port) for u in r.upstreams] for r in routes.versions] == [
        [("wb-exported-churn-v1", 8080)],
        [("wb-exported-churn-v2", 8080)],
    ]
    live = world.plane.get_endpoint(split).spec
    assert routes.payload_limit_bytes == live.payload_limit_bytes
    router_config = RouterConfig.model_validate_json(config_map["router.json"])
    assert (router_config.port, router_config.grpc_port) == (8080, 8081)
    (router,) = documents[5]["spec"]["template"]["spec"]["containers"]
    assert router["image"] == "registry.example.com/churn:exported-churn-v1"
    # A new export with other routes changes the router's pod template, so `kubectl apply` rolls its pods.
    assert documents[5]["spec"]["template"]["metadata"]["annotations"]["workbench/routes-digest"]
    assert {p["name"]: p["containerPort"] for p in router["ports"]} == {"http": 8080, "grpc": 8081}
    assert router["command"][-1].endswith("python -m workbench.serving.router /etc/workbench/router.json")
    service_ports = {p["name"]: p["port"] for p in documents[6]["spec"]["ports"]}
    assert service_ports == {"http": 8080, "grpc": 8081}


def test_export_k8s_kserve_loads_into_kserves_inference_service(
    world: World, split: str, tmp_path: Path
) -> None:
    out = tmp_path / "kserve"
    done = _export(
        world,
        tmp_path,
        "k8s",
        split,
        "--out",
        str(out),
        "--kserve",
        "--storage-uri",
        "s3://models/churn/2",
        "--version",
        "2",
    )
    assert done.returncode == 0, done.stderr
    (loaded,) = _strict_load(out / "inference-service.yaml")
    assert loaded == {
        "kind": "InferenceService",
        "model": "kserve.models.v1beta1_inference_service.V1beta1InferenceService",
    }
    document = yaml.safe_load((out / "inference-service.yaml").read_text())
    model = document["spec"]["predictor"]["model"]
    assert (model["modelFormat"], model["protocolVersion"], model["runtime"], model["storageUri"]) == (
        {"name": "mlflow"},
        "v2",
        "kserve-mlserver",
        "s3://models/churn/2",
    )
    assert document["metadata"]["labels"]["workbench/version"] == "2"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("docker", "nope"), "endpoint 'nope' does not exist"),
        (("k8s", "nope"), "endpoint 'nope' does not exist"),
        (("docker", "{split}", "--version", "9"), "does not serve version 9"),
        (("k8s", "{split}", "--kserve"), "--kserve needs --storage-uri"),
        (("k8s", "{split}", "--kserve", "--storage-uri", "/local/path"), "--kserve needs --storage-uri"),
        (("k8s", "{split}", "--image", "Not An Image"), "is not an image repository name"),
        (("docker", "{split}", "--wheel", "/nowhere/x.whl"), "is not an mlops_workbench wheel file"),
    ],
)
def test_exports_refuse_bad_input_and_write_nothing(
    world: World, split: str, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    out = tmp_path / "out"
    done = _export(world, tmp_path, *[a.format(split=split) for a in args], "--out", str(out))
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no staging directory left behind either


def test_exports_write_only_into_new_empty_or_earlier_export_directories(
    world: World, split: str, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text("mine")
    done = _export(world, tmp_path, "k8s", split, "--out", str(project))
    assert done.returncode != 0
    assert "is not empty and was not written by workbench export" in done.stderr, done.stderr
    assert sorted(p.name for p in project.iterdir()) == ["notes.txt"]
    again = tmp_path / "again"
    for _ in range(2):  # an earlier export's directory is written again, its files replaced
        done = _export(world, tmp_path, "k8s", split, "--out", str(again))
        assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in again.iterdir()) == [".workbench-export", "manifests.yaml"]


def test_exports_outside_the_allowed_roots_are_refused(world: World, split: str, tmp_path: Path) -> None:
    allowed, elsewhere = tmp_path / "allowed", tmp_path / "elsewhere"
    allowed.mkdir()
    for kind in ("docker", "k8s"):
        done = _export(world, allowed, kind, split, "--out", str(elsewhere / kind))
        assert done.returncode != 0
        assert "--out" in done.stderr, done.stderr
        assert "allowed" in done.stderr, done.stderr
    assert not elsewhere.exists()
