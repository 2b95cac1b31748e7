"""Prometheus and Grafana against the real data plane: Debian's ``promtool`` validates every ``/metrics``
output and the generated files, a real ``prometheus`` (started here on a free port with the config that
``workbench export prometheus`` writes) scrapes the router and the control plane, and PromQL returns a
replica's batch-size histogram through the router. The Grafana dashboard's every query names metrics
that the live outputs contain."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests._servers import free_port
from tests.serving.conftest import World, make_world, oip_columns, wait_until
from tests.serving.test_monitoring import _monitor
from workbench.demo.dataset import generate_churn
from workbench.export import grafana
from workbench.export.targets import targets, write_targets
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
            except httpx.HTTPError:
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
