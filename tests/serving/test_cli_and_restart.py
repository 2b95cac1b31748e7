"""``workbench deploy`` from the command line, and a control plane killed with SIGKILL: the router
keeps serving its last routes, and the next control plane adopts the running processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests._servers import free_port, plane_env
from tests.serving.conftest import oip_columns, wait_until
from workbench.client import Client
from workbench.demo.dataset import FEATURES, generate_churn, split_frame
from workbench.demo.training import train_version
from workbench.launcher import ControlPlaneProcess
from workbench.settings import Settings


def _cli(env: dict[str, str], *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "workbench", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == expect, (args, result.stdout, result.stderr)
    return result


def test_cli_deploy_then_sigkill_the_control_plane(tmp_path: Path, mlflow_template: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    api_port, router_port = free_port(), free_port()
    env = plane_env(home, api_port, router_port)
    url = f"http://127.0.0.1:{api_port}"
    router = f"http://127.0.0.1:{router_port}"
    data = generate_churn(3000, seed=5)
    train, holdout = split_frame(data, holdout_fraction=0.25, seed=5)
    rows = holdout.head(4)

    first = ControlPlaneProcess(url, env, home / "logs" / "first.log").start()
    try:
        settings = Settings.for_home(home, api_url=url)
        with Client(url, settings=settings) as client:
            trained = train_version(1, train, holdout, seed=5)
            client.register_model("churn", trained.module, input_example=holdout[list(FEATURES)].head(2))
        out = _cli(
            env, "deploy", "web", "models:/churn/1", "--max-batch-size", "16", "--reason", "launch"
        ).stdout
        assert "web serves models:/churn/1" in out
        assert f"{router}/v2/models/web/infer" in out
        status = json.loads(_cli(env, "endpoints", "show", "web", "--json").stdout)
        (replica,) = status["replicas"]
        assert replica["state"] == "ready"
        assert "web" in _cli(env, "endpoints", "list").stdout
        assert httpx.post(f"{router}/v2/models/web/infer", json=oip_columns(rows)).status_code == 200
        refused = _cli(env, "deploy", "web", "models:/churn/9", expect=1)
        assert refused.stderr.startswith("error:")
        assert "no version 9" in refused.stderr

        os.kill(first.process.pid, signal.SIGKILL)  # type: ignore[union-attr]
        first.process.wait(timeout=10)  # type: ignore[union-attr]
        # The control plane is gone; the data plane is not.
        for _ in range(20):
            assert httpx.post(f"{router}/v2/models/web/infer", json=oip_columns(rows)).status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/api/v1/health")
    finally:
        first.stop()

    with ControlPlaneProcess(url, env, home / "logs" / "second.log"):
        status = json.loads(_cli(env, "endpoints", "show", "web", "--json").stdout)
        (adopted,) = status["replicas"]
        assert adopted["pid"] == replica["pid"], "the replica was restarted instead of adopted"
        assert httpx.post(f"{router}/v2/models/web/infer", json=oip_columns(rows)).status_code == 200
        actions = {e["action"] for e in json.loads(_cli(env, "audit", "--json", "-n", "200").stdout)}
        assert {"replica.adopt", "router.adopt", "endpoint.deploy"} <= actions
        _cli(env, "undeploy", "web", "--reason", "done")
        assert httpx.post(f"{router}/v2/models/web/infer", json=oip_columns(rows)).status_code == 404
    # A graceful stop of the control plane stops the data plane with it.
    wait_until(lambda: not _listening(router), timeout=30)


def _listening(url: str) -> bool:
    try:
        httpx.get(f"{url}/-/health", timeout=1)
    except httpx.HTTPError:
        return False
    return True


def test_cli_rollouts_blue_green_rollback_and_a_shadow_from_a_spec_file(
    tmp_path: Path, mlflow_template: Path
) -> None:
    import threading

    import orjson

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    api_port, router_port = free_port(), free_port()
    env = plane_env(home, api_port, router_port)
    url, router = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{router_port}"
    data = generate_churn(3000, seed=6)
    train, holdout = split_frame(data, holdout_fraction=0.25, seed=6)
    bodies = [orjson.dumps(oip_columns(holdout.iloc[[i]])) for i in range(100)]
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(timeout=30) as http:
            for n in range(10**6):
                if stop.is_set():
                    return
                http.post(f"{router}/v2/models/web/infer", content=bodies[n % len(bodies)])

    with ControlPlaneProcess(url, env, home / "logs" / "cp.log"):
        with Client(url, settings=Settings.for_home(home, api_url=url)) as client:
            for number in (1, 2):
                trained = train_version(number, train, holdout, seed=6)  # type: ignore[arg-type]
                client.register_model("churn", trained.module, input_example=holdout[list(FEATURES)].head(2))
        _cli(env, "deploy", "web", "models:/churn/1")
        bad = _cli(env, "rollout", "start", "web", "models:/churn/2", "--strategy", "sideways", expect=1)
        assert bad.stderr.startswith("error:")
        assert "strategy" in bad.stderr
        assert "canary" in bad.stderr

        out = _cli(env, "rollout", "start", "web", "models:/churn/2", "--strategy", "blue_green").stdout
        assert "switched: 100% to the candidate" in out
        headers = httpx.post(f"{router}/v2/models/web/infer", content=bodies[0]).headers
        assert headers["x-workbench-model-version"] == "2"
        _cli(env, "rollback", "web", "--reason", "cli test")
        headers = httpx.post(f"{router}/v2/models/web/infer", content=bodies[0]).headers
        assert headers["x-workbench-model-version"] == "1"

        spec = home.parent / "shadow.yaml"
        spec.write_text(
            "strategy: shadow\ntick_s: 0.5\nshadow: {duration_s: 30, min_pairs: 100}\n"
            # Latency and prediction shift are left out: on a busy CI machine a mirrored replica can be
            # slower than the primary, and this test is about agreement deciding the shadow.
            "analysis: {min_samples: 100, checks: [{name: error_rate, kind: error_rate, threshold: 0.01}]}\n"
        )
        worker = threading.Thread(target=traffic, daemon=True)
        worker.start()
        try:
            out = _cli(env, "rollout", "start", "web", "models:/churn/2", "--spec", str(spec)).stdout
            assert "mirroring 100% of requests" in out
            watched = _cli(env, "rollout", "status", "web", "--watch").stdout
        finally:
            stop.set()
            worker.join(timeout=30)
        assert "shadow rollout" in watched
        assert "agreement" in watched  # the analysis table
        detail = json.loads(_cli(env, "rollout", "status", "web", "--json").stdout)
        assert detail["rollout"]["phase"] == "rolled_back"  # v2 does not answer like v1
        failed = {m["name"]: m["reason"] for m in detail["analysis"]["metrics"] if m["verdict"] == "fail"}
        assert "agreement" in failed, (failed, [e["message"] for e in detail.get("events", [])])
        endpoint = json.loads(_cli(env, "endpoints", "show", "web", "--json").stdout)
        assert endpoint["endpoint"]["spec"]["shadows"] == []
        missing = _cli(
            env, "rollout", "start", "web", "models:/churn/2", "--spec", str(home / "nope.yaml"), expect=2
        )
        assert "nope.yaml" in missing.stderr
