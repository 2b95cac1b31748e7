"""The ray serving backend against a real local Ray cluster, through the same client calls and assertions
as the local backend: the end-to-end tests that apply are the local ones, run here on a Ray world.

The control plane starts the cluster itself (``ray start --head`` under its home: the ``ray`` backend's
embedded default) and stops it when it closes; one cluster and one control plane for the module. The
cluster advertises more logical CPUs than the machine has, so every version's replica (one CPU each, the
default) fits on two cores, as replica processes share them on the local backend.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests._servers import free_port
from tests.serving import test_monitoring, test_rollouts, test_serving
from tests.serving.conftest import World, make_world, oip_columns, wait_until
from workbench.demo.dataset import FEATURES
from workbench.errors import UnavailableError, ValidationError
from workbench.rollouts.phases import Phase

pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Iterator[World]:
    """Named as the local modules' fixture, so their tests run here unchanged."""
    yield from make_world(
        tmp_path_factory.mktemp("ray"),
        mlflow_template,
        serving_backend="ray",
        ray_num_cpus=32,
        ray_reconcile_s=1.0,
    )


@pytest.fixture(scope="module")
def churn(world: World) -> str:
    world.client.deploy("churn-api", "models:/churn/1", max_batch_size=32, max_wait_ms=2, reason="first")
    return "churn-api"


def _applications(world: World, endpoint: str) -> list[dict[str, Any]]:
    return [r for r in world.client.endpoint_status(endpoint)["replicas"] if r["state"] == "ready"]


def test_deploy_serves_both_protocols_with_the_local_answers(world: World, churn: str) -> None:
    status = world.client.endpoint_status(churn)
    assert status["backend"] == "ray"
    (application,) = _applications(world, churn)
    assert application["ray"]["status"] == "RUNNING"
    assert application["ray"]["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 0.0}
    rows = world.frame.head(5)
    expected = world.expected(1, rows)
    response = httpx.post(
        f"{world.router}/v2/models/{churn}/infer", json=oip_columns(rows, "abc"), timeout=30
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"], body["id"]) == (churn, "1", "abc")
    assert np.allclose(np.asarray(body["outputs"][0]["data"]).reshape(expected.shape), expected, atol=1e-5)
    assert response.headers["x-workbench-model-version"] == "1"
    assert response.headers["x-request-id"]
    split = {"columns": list(FEATURES), "data": rows[list(FEATURES)].values.tolist()}
    mlflow = httpx.post(
        f"{world.router}/endpoints/{churn}/invocations", json={"dataframe_split": split}, timeout=30
    )
    assert mlflow.status_code == 200, mlflow.text
    assert np.allclose(np.asarray(mlflow.json()["predictions"]).reshape(expected.shape), expected, atol=1e-5)
    metadata = httpx.get(f"{world.router}/v2/models/{churn}", timeout=30).json()
    assert metadata["versions"] == ["1"]
    assert metadata["parameters"]["max_batch_size"] == 32


def test_a_request_larger_than_a_batch_is_answered_alone(world: World, churn: str) -> None:
    rows = world.frame.head(40)  # the endpoint batches at most 32 rows; Ray's batcher would refuse 40
    response = httpx.post(f"{world.router}/v2/models/{churn}/infer", json=oip_columns(rows), timeout=30)
    assert response.status_code == 200, response.text
    expected = world.expected(1, rows)
    assert np.allclose(
        np.asarray(response.json()["outputs"][0]["data"]).reshape(expected.shape), expected, atol=1e-5
    )


def test_bad_requests_get_the_local_backends_errors(world: World, churn: str) -> None:
    unknown = httpx.post(f"{world.router}/v2/models/nope/infer", json=oip_columns(world.frame.head(1)))
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "unknown endpoint 'nope'"}
    wrong = httpx.post(f"{world.router}/v2/models/{churn}/infer", json={"inputs": [{"name": "x"}]})
    assert wrong.status_code == 400
    assert "error" in wrong.json()


def test_weighted_split_over_2k_requests(world: World) -> None:
    """2,000 requests: the share is still judged within 4 sigma (3.6 points), in a fifth of the time."""
    test_serving.weighted_split(world, 2_000)


def test_concurrent_requests_are_logged_a_line_per_batch_and_read_back_a_record_per_request(
    world: World,
) -> None:
    test_serving.test_concurrent_requests_are_logged_a_line_per_batch_and_read_back_a_record_per_request(
        world
    )


def test_sticky_keys_keep_their_version(world: World) -> None:
    test_serving.test_sticky_keys_keep_their_version(world)


def test_shadow_never_changes_or_delays_the_primary(world: World, churn: str) -> None:
    test_serving.test_shadow_never_changes_or_delays_the_primary(world, churn)


def test_blue_green_under_load_without_a_failed_request(world: World) -> None:
    """Two swaps, there and back (a withdrawn version's application declared again), rather than the local
    test's three: each costs a Ray application's start and drain, 30 s on a busy machine."""
    test_serving.routes_change_under_load(world, swaps_to=("models:/churn/2", "models:/churn/1"))


@pytest.mark.parametrize(
    ("endpoint", "candidate", "expected"),
    [
        ("canary-good", "models:/churn/2", Phase.SUCCEEDED),
        ("canary-errors", "models:/churn/4", Phase.ROLLED_BACK),
    ],
)
def test_canary_promotes_a_good_candidate_and_rolls_back_a_bad_one(
    world: World, endpoint: str, candidate: str, expected: Phase
) -> None:
    test_rollouts.test_canary_promotes_a_good_candidate_and_rolls_back_bad_ones(
        world, endpoint, candidate, expected
    )


def test_covariate_drift_is_flagged_from_ray_replicas_telemetry(world: World) -> None:
    watched = "watched"
    world.client.deploy(watched, "models:/churn/1")
    world.plane.monitoring.create_monitor(test_monitoring._monitor(watched, watched), actor="tester")
    # 400 rows a request, and 80 % of the looks judged rather than 90 %: CI runs with the browser tests on
    # the other core starved the Ray replica (two clients at 50 rows judged 64 of 79 looks; at 200 rows
    # the run on 8428a0a failed too). What is checked stays: telemetry from Ray replicas reaches the
    # monitor, clean windows never alert, and drift is flagged within two windows.
    test_monitoring.covariate_drift_is_flagged(world, watched, rows_per_request=400, judged_share=0.8)


def test_undeploy_withdraws_the_application_and_the_route(world: World) -> None:
    world.client.deploy("gone", "models:/churn/2")
    (application,) = _applications(world, "gone")
    world.client.undeploy("gone", reason="test")
    response = httpx.post(f"{world.router}/v2/models/gone/infer", json=oip_columns(world.frame.head(1)))
    assert response.status_code == 404
    assert response.json() == {"error": "unknown endpoint 'gone'"}
    from ray import serve

    assert wait_until(lambda: application["id"] not in serve.status().applications, timeout=60)
    (stopped,) = world.client.audit(target="endpoint:gone", action="replica.stop")
    assert stopped.before == {"application": application["id"]}


def test_a_killed_replica_is_restarted_by_ray_and_the_endpoint_answers_again(world: World) -> None:
    """Supervision is Ray's: the control plane only reports the new process."""
    world.client.deploy("crashy", "models:/churn/1")
    (application,) = _applications(world, "crashy")
    pid = application["pid"]
    assert pid
    assert application["ray"]["processes"][0]["pid"] == pid
    os.kill(pid, signal.SIGKILL)

    def restarted() -> dict[str, Any] | None:
        current = _applications(world, "crashy")
        return current[0] if current and current[0]["pid"] not in (None, pid) else None

    new = wait_until(restarted, timeout=120)
    assert new["id"] == application["id"]  # the same application: Ray replaced its replica
    response = httpx.post(
        f"{world.router}/v2/models/crashy/infer", json=oip_columns(world.frame.head(2)), timeout=30
    )
    assert response.status_code == 200, response.text


def test_an_application_removed_behind_the_control_planes_back_is_declared_again(world: World) -> None:
    """``serve delete`` by hand (or a head node that lost its state): the reconciliation declares the
    config again within a period (1 s here), and the endpoint answers with the same version."""
    from ray import serve

    world.client.deploy("lost", "models:/churn/2")
    (application,) = _applications(world, "lost")
    # Not Ray's blocking delete: it polls for the application to be gone, and the reconciliation can
    # declare it again between two of its polls, so the delete would wait forever for a state that passed.
    serve.delete(application["id"], _blocking=False)

    def declared_again() -> bool:
        events = world.client.audit(target="serving/ray", action="ray.reconcile")
        return any(application["id"] in event.after["missing"] for event in events)

    assert wait_until(declared_again, timeout=120)
    back = wait_until(lambda: _applications(world, "lost"), timeout=120)
    assert back[0]["id"] == application["id"]
    response = httpx.post(
        f"{world.router}/v2/models/lost/infer", json=oip_columns(world.frame.head(2)), timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-workbench-model-version"] == "2"


def test_resources_no_node_has_are_refused_with_nothing_routed(world: World, churn: str) -> None:
    before = world.client.get_endpoint(churn)
    applications = _applications(world, churn)
    with pytest.raises(ValidationError, match="no node of the Ray cluster has 1 GPU"):
        world.client.deploy(churn, "models:/churn/2", device="cuda")
    with pytest.raises(ValidationError, match="no node of the Ray cluster has 64 CPU"):
        world.client.deploy(churn, "models:/churn/2", ray={"num_cpus": 64})
    assert world.client.get_endpoint(churn) == before
    assert _applications(world, churn) == applications
    response = httpx.post(f"{world.router}/v2/models/{churn}/infer", json=oip_columns(world.frame.head(1)))
    assert response.headers["x-workbench-model-version"] == "1"


def test_replicas_ray_cannot_place_now_fail_the_deploy_with_rays_reason(world: World, churn: str) -> None:
    """The cluster could hold 31 CPUs, but not beside what it already holds: Ray says so, and the deploy
    fails with its words, the application withdrawn and the routes as they were."""
    before = world.client.get_endpoint(churn)
    with pytest.raises(UnavailableError, match="cannot place") as refused:
        world.client.deploy(churn, "models:/churn/2", ray={"num_cpus": 31})
    assert "Resources required for each replica" in str(refused.value)
    assert world.client.get_endpoint(churn) == before
    from ray import serve

    def declared() -> list[str]:
        return [name for name in serve.status().applications if name.startswith(f"wb.{churn}.churn.v2.")]

    assert wait_until(lambda: not declared(), timeout=60)
    response = httpx.post(f"{world.router}/v2/models/{churn}/infer", json=oip_columns(world.frame.head(1)))
    assert response.headers["x-workbench-model-version"] == "1"


def test_a_ray_address_that_does_not_answer_stops_the_start_with_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(
        WORKBENCH_HOME=str(tmp_path / "home"),
        WORKBENCH_SERVING_BACKEND="ray",
        WORKBENCH_RAY_ADDRESS=f"127.0.0.1:{free_port()}",
        WORKBENCH_API_PORT=str(free_port()),
        WORKBENCH_DASHBOARD="0",
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "workbench", "up"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "does not answer" in result.stderr, result.stderr
    assert "WORKBENCH_RAY_ADDRESS" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 60, "refused only after Ray's own minute of retries"
    run = tmp_path / "home" / "run"
    assert not (run / "supervisor.json").exists()
    assert not (run / "ray.json").exists()
