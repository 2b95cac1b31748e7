"""A canary judged on fed-back labels: a candidate as fast and error-free as the stable version but
wrong most of the time is rolled back on accuracy, computed by the controller from labels joined to
each variant's answers by request id."""

from __future__ import annotations

import time

import pytest

from tests.runbooks.conftest import InvertedNet, Plane
from workbench.demo.dataset import FEATURES, TARGET, generate_churn, split_frame
from workbench.demo.traffic import DemoTraffic
from workbench.demo.training import train_version
from workbench.rollouts.phases import Phase

pytestmark = pytest.mark.slow


def test_a_canary_with_a_label_accuracy_check_rolls_back_a_wrong_candidate(served: Plane) -> None:
    client = served.client
    train, holdout = split_frame(generate_churn(4000, seed=11), holdout_fraction=0.25, seed=11)
    inverted = InvertedNet(train_version(1, train, holdout, seed=11).module)
    version = client.register_model("churn", inverted, input_example=holdout[list(FEATURES)].head(2))
    spec = {
        "endpoint": "churn",
        "candidate": f"models:/churn/{version.version}",
        "steps": [{"weight": 50, "min_duration_s": 3}],
        "tick_s": 0.5,
        "step_timeout_s": 240,
        "analysis": {
            "min_samples": 100,
            "checks": [
                {"name": "error_rate", "kind": "error_rate", "threshold": 0.01},
                {"name": "accuracy", "kind": "custom", "threshold": 0.05, "source": "label_correct"},
            ],
        },
    }
    rows = generate_churn(10_000, seed=41)
    assert TARGET in rows.columns
    with DemoTraffic(served.router, "churn", rows, rate=250, workers=2, labels=client) as traffic:
        rollout = client.start_rollout(spec, reason="label check test")
        deadline = time.monotonic() + 180
        detail = client.rollout(rollout.id)
        while time.monotonic() < deadline and not Phase(detail["rollout"]["phase"]).is_settled:
            time.sleep(0.5)
            detail = client.rollout(rollout.id)
    assert traffic.failed == 0
    assert detail["rollout"]["phase"] == "rolled_back", detail["rollout"]
    metrics = {m["name"]: m for m in detail["analysis"]["metrics"]}
    assert metrics["accuracy"]["verdict"] == "fail", metrics
    assert metrics["error_rate"]["verdict"] != "fail"
    assert metrics["accuracy"]["estimate"] > 0.3  # the accuracy lost: about 0.77 → 0.23
    assert [(r.version, r.weight) for r in client.get_endpoint("churn").spec.routes] == [(1, 100.0)]
