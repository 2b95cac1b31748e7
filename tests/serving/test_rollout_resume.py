"""A control plane killed with SIGKILL in the middle of a canary: traffic keeps flowing on the last
routes, and the restarted control plane resumes the rollout from its recorded step to the end."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests._servers import free_port
from tests.serving.conftest import oip_columns
from tests.serving.test_rollouts import ANALYSIS, Load
from workbench.client import Client
from workbench.demo.dataset import FEATURES, generate_churn, split_frame
from workbench.demo.training import train_version
from workbench.launcher import ControlPlaneProcess
from workbench.serving.ray.cluster import stop_recorded_cluster
from workbench.settings import Settings
from workbench.specs.rollout import CanaryStep, RolloutSpec


@pytest.mark.parametrize("backend", ["local", pytest.param("ray", marks=pytest.mark.xdist_group("ray"))])
def test_a_canary_survives_a_control_plane_sigkill(
    tmp_path: Path, mlflow_template: Path, backend: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    api_port, router_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(
        WORKBENCH_HOME=str(home),
        WORKBENCH_API_PORT=str(api_port),
        WORKBENCH_ROUTER_PORT=str(router_port),
        WORKBENCH_ALLOWED_ROOTS=str(tmp_path),
        WORKBENCH_DASHBOARD="0",
        WORKBENCH_SERVING_BACKEND=backend,
        WORKBENCH_RAY_NUM_CPUS="8",
    )
    url, router = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{router_port}"
    settings = Settings.for_home(home, api_url=url)
    data = generate_churn(3000, seed=9)
    train, holdout = split_frame(data, holdout_fraction=0.25, seed=9)
    example = holdout[list(FEATURES)].head(2)
    body = orjson.dumps(oip_columns(holdout.head(1)))
    spec = RolloutSpec(
        endpoint="web",
        candidate="models:/churn/2",
        steps=(CanaryStep(weight=30, min_duration_s=4), CanaryStep(weight=60, min_duration_s=4)),
        analysis=ANALYSIS,
        tick_s=0.5,
        step_timeout_s=120,
    )

    first = ControlPlaneProcess(url, env, home / "logs" / "first.log").start()
    second = ControlPlaneProcess(url, env, home / "logs" / "second.log")
    try:
        with Client(url, settings=settings) as client:
            for number in (1, 2):
                trained = train_version(number, train, holdout, seed=9)  # type: ignore[arg-type]
                client.register_model("churn", trained.module, input_example=example)
            client.deploy("web", "models:/churn/1")
        with Load(f"{router}/v2/models/web/infer", body) as load:
            with Client(url, settings=settings) as client:
                rollout = client.start_rollout(spec, reason="canary across a crash")
            os.kill(first.process.pid, signal.SIGKILL)  # type: ignore[union-attr]
            first.process.wait(timeout=10)  # type: ignore[union-attr]
            # No control plane: the router keeps the canary's split.
            versions = {
                httpx.post(f"{router}/v2/models/web/infer", content=body).headers["x-workbench-model-version"]
                for _ in range(60)
            }
            assert versions == {"1", "2"}
            second.start()
            with Client(url, settings=settings) as client:
                deadline = time.monotonic() + 150
                while time.monotonic() < deadline:
                    detail = client.rollout(rollout.id)
                    if detail["rollout"]["phase"] in ("succeeded", "rolled_back", "failed", "error"):
                        break
                    time.sleep(0.5)
        assert set(load.statuses) == {200}, "a request failed across the crash and the restart"
        assert detail["rollout"]["phase"] == "succeeded", detail["events"]
        steps = [e["step_index"] for e in detail["events"] if e["phase"] == "progressing"]
        assert steps[0] == 0
        assert max(steps) == 1, "the resumed rollout did not go on to its next step"
        with Client(url, settings=settings) as client:
            routes = client.get_endpoint("web").spec.routes
            assert [(r.version, r.weight) for r in routes] == [(2, 100.0)]
            assert client.resolve("models:/churn@champion").version == 2
            actions = {e.action for e in client.audit(limit=500)}
        adopted = {"ray.adopt"} if backend == "ray" else {"replica.adopt", "router.adopt"}
        assert {*adopted, "rollout.start", "rollout.promote"} <= actions
    finally:
        second.stop()
        first.stop()
        if backend == "ray":  # a failure between the kill and the restart leaves the cluster to stop here
            stop_recorded_cluster(home)
