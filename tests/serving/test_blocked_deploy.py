"""Nothing waits behind a slow thing: while one endpoint's replica is held in its model loading, every
call about another endpoint completes (ordering, not timing).

Endpoint A deploys a model whose ``load_context`` blocks until the test creates a file; endpoint B is
served by an ordinary model. Each call on B is made while A's deploy is provably still blocked (its
thread alive, its replica still starting, before and after the call), so none of them can have waited
for A's warm-up. Then A is released and its deploy completes.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from tests.serving.conftest import World, wait_until
from workbench.client import Client
from workbench.demo.dataset import FEATURES
from workbench.rollouts.controller import RolloutMovedError
from workbench.rollouts.decide import Action, Decision
from workbench.rollouts.phases import Phase
from workbench.specs.analysis import AnalysisSpec, MetricCheck
from workbench.specs.rollout import CanaryStep, RolloutSpec

HOLD_AT_MOST_S = 300.0  # a gate that is never opened still ends: the test can fail, never hang


class GatedPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """Loads only once ``gate`` exists (or after ``limit_s``): a warm-up the test holds and releases."""

    def __init__(self, gate: str, limit_s: float) -> None:
        self.gate = gate
        self.limit_s = limit_s

    def load_context(self, context: Any) -> None:
        deadline = time.monotonic() + self.limit_s
        while not Path(self.gate).exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray[Any, Any]:
        result: np.ndarray[Any, Any] = model_input["tenure_months"].to_numpy(dtype=np.float64) * 0.01
        return result


def _replicas(world: World, endpoint: str) -> list[dict[str, Any]]:
    return [r for r in world.client.status()["serving"]["replicas"] if r["endpoint"] == endpoint]


def test_calls_on_another_endpoint_complete_while_a_deploy_is_held_in_warm_up(
    world: World, tmp_path: Path
) -> None:
    client = world.client
    gate = tmp_path / "release-the-gated-model"
    example = world.frame[list(FEATURES)].head(2)
    gated = client.register_model("gated", GatedPyfunc(str(gate), HOLD_AT_MOST_S), input_example=example)
    client.deploy("steady", "models:/churn/1")
    client.create_monitor({"name": "steady-watch", "endpoint": "steady", "window_s": 20, "every_s": 2})

    result: dict[str, Any] = {}

    def deploy_gated() -> None:
        with Client(world.api_url, settings=world.settings, actor="tester") as own:
            try:
                result["record"] = own.deploy("held", f"models:/gated/{gated.version}")
            except Exception as exc:  # reported by the assertions below
                result["error"] = exc

    deploying = threading.Thread(target=deploy_gated, daemon=True)
    deploying.start()
    wait_until(lambda: [r for r in _replicas(world, "held") if r["state"] == "starting"], timeout=120)

    def still_held() -> None:
        assert deploying.is_alive(), f"the held deploy ended early: {result}"
        assert not gate.exists()
        assert [r["state"] for r in _replicas(world, "held")] == ["starting"]

    calls: list[str] = []

    def on_steady(name: str, call: Any) -> Any:
        still_held()
        value = call()
        still_held()  # the call returned while A was still blocked: it did not wait for A
        calls.append(name)
        return value

    status = on_steady("status", client.status)
    assert "held" not in [e["name"] for e in status["endpoints"]]  # not committed before it is ready
    detail = on_steady("endpoint_status", lambda: client.endpoint_status("steady"))
    assert {r["state"] for r in detail["replicas"]} == {"ready"}
    deployed = on_steady(
        "deploy", lambda: client.deploy("steady", "models:/churn/2", reason="during a held deploy")
    )
    assert [(r.version, r.weight) for r in deployed.spec.routes] == [(2, 100.0)]
    rolled = on_steady("rollback", lambda: client.rollback("steady", reason="back, during a held deploy"))
    assert [(r.version, r.weight) for r in rolled.endpoint.spec.routes] == [(1, 100.0)]
    spec = RolloutSpec(
        endpoint="steady",
        candidate="models:/churn/2",
        steps=(CanaryStep(weight=20, min_duration_s=60),),
        analysis=AnalysisSpec(checks=(MetricCheck(name="errors", kind="error_rate", threshold=0.05),)),
        tick_s=0.5,
    )
    rollout = on_steady("rollout start", lambda: client.start_rollout(spec, reason="during a held deploy"))
    assert rollout.phase == Phase.PROGRESSING
    aborted = on_steady("rollout abort", lambda: client.rollout_action(rollout.id, "abort", reason="test"))
    assert aborted.phase == Phase.ROLLED_BACK
    monitors = on_steady("monitors", lambda: client.monitors(endpoint="steady"))
    assert [m.spec.name for m in monitors] == ["steady-watch"]
    watch = on_steady("monitor", lambda: client.monitor("steady-watch"))
    assert watch["monitor"]["spec"]["name"] == "steady-watch"
    assert calls == [
        "status",
        "endpoint_status",
        "deploy",
        "rollback",
        "rollout start",
        "rollout abort",
        "monitors",
        "monitor",
    ]
    assert [(r.version, r.weight) for r in client.get_endpoint("steady").spec.routes] == [(1, 100.0)]

    gate.touch()
    deploying.join(timeout=HOLD_AT_MOST_S)
    assert not deploying.is_alive()
    assert "error" not in result, result.get("error")
    assert [(r.version, r.weight) for r in result["record"].spec.routes] == [(gated.version, 100.0)]
    assert [r["state"] for r in _replicas(world, "held")] == ["ready"]
    rows = world.frame[list(FEATURES)].head(3)
    answer = client.predict("held", rows)
    assert np.allclose(answer, rows["tenure_months"].to_numpy(dtype=np.float64) * 0.01)


def test_a_tick_that_read_the_rollout_before_a_command_changes_no_traffic(world: World) -> None:
    """The guarantee the controller's lock used to give, now from the rollout's revision in the store: a
    tick's route change commits only if nobody moved the rollout since the tick read it."""
    client, controller = world.client, world.plane.rollouts
    client.deploy("stale-tick", "models:/churn/1")
    spec = RolloutSpec(
        endpoint="stale-tick",
        candidate="models:/churn/2",
        steps=(CanaryStep(weight=20, min_duration_s=1), CanaryStep(weight=60, min_duration_s=1)),
        tick_s=0.5,
    )
    rollout = controller.start(spec, actor="tester")
    step = Decision(Action.ADVANCE, candidate_weight=60.0, step_index=1, reason="the stale tick's step")

    def routes() -> list[tuple[int, float]]:
        return [(r.version, r.weight) for r in client.get_endpoint("stale-tick").spec.routes]

    as_read = controller.get(rollout.id)  # what a tick read, before the operator acted
    paused = controller.pause(rollout.id, actor="tester")
    with pytest.raises(RolloutMovedError, match="changed meanwhile"):
        controller._apply(as_read, step)
    assert routes() == [(1, 80.0), (2, 20.0)]
    assert controller.get(rollout.id).phase == Phase.PAUSED

    resumed = controller.resume(paused.id, actor="tester")
    aborted = controller.abort(rollout.id, actor="tester", reason="test")
    assert aborted.phase == Phase.ROLLED_BACK
    with pytest.raises(RolloutMovedError):
        controller._apply(resumed, step)  # read while progressing, applied after the abort committed
    assert routes() == [(1, 100.0)]
    assert controller.get(rollout.id).phase == Phase.ROLLED_BACK

    fresh = controller.start(spec, actor="tester")  # the same step from a current read does route
    assert controller._apply(controller.get(fresh.id), step).step_index == 1
    assert routes() == [(1, 40.0), (2, 60.0)]
    controller.abort(fresh.id, actor="tester", reason="test")
