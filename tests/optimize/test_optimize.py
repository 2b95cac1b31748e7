"""``workbench optimize`` end to end: made in a worker, measured beside the parent, gated, registered, served.

Everything is real: the MLflow registry, the API on a port, the worker process, onnxruntime inside a
replica process behind the router. The one refusal tested is by accuracy (a variant over its budget),
which does not depend on how loaded the machine is; speed is asserted only where the gap is tens of times.
"""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.optimize.conftest import World
from workbench.demo.dataset import FEATURES
from workbench.errors import NotFoundError, ValidationError
from workbench.records.optimizations import OptimizationStatus

pytestmark = pytest.mark.timeout(600)


def _rows_body(rows: pd.DataFrame) -> dict[str, object]:
    return {"dataframe_split": {"columns": list(FEATURES), "data": rows[list(FEATURES)].to_numpy().tolist()}}


def test_onnx_variant_is_registered_with_lineage_and_serves_the_parents_predictions(world: World) -> None:
    record = world.client.optimize("models:/churn/1", "onnx", reason="serve it faster")
    assert record.status is OptimizationStatus.REGISTERED, record.error or record.verdict
    assert record.variant_version is not None
    info = world.client.get_version("churn", record.variant_version)
    assert info.lineage.parent_version == 1
    assert info.lineage.trained_by == f"optimization:{record.id}"
    assert "onnx" in info.flavors
    assert info.reference is not None, "the variant keeps its parent's reference data, for its monitors"
    assert info.optimization is not None
    assert info.optimization["method"] == "onnx"
    assert info.optimization["speedup"] >= 1.05
    assert info.metrics["optimize.speedup"] == pytest.approx(info.optimization["speedup"])
    result = record.result
    assert result is not None
    assert result["variant"]["flavor"] == "onnx", "measured through the replica's own onnxruntime runner"
    assert result["agreement"]["max_abs_diff"] < 1e-5
    assert result["variant"]["replica_rss_mb"] < result["parent"]["replica_rss_mb"], (
        "no torch in an ONNX replica"
    )

    world.client.deploy("churn-onnx", f"models:/churn/{record.variant_version}")
    router = world.plane.serving.status()["router_url"]
    rows = world.reference
    response = httpx.post(f"{router}/endpoints/churn-onnx/invocations", json=_rows_body(rows), timeout=60)
    assert response.status_code == 200, response.text
    served = np.asarray(response.json()["predictions"], dtype=np.float64)
    np.testing.assert_allclose(served, world.parent_scores(1, rows), atol=1e-5)

    events = [
        e for e in world.client.audit(target="models:/churn/1") if e.action.startswith("model.optimize")
    ]
    assert {e.action for e in events} >= {"model.optimize", "model.optimize.registered"}


def test_distilled_v3_is_registered_far_smaller_and_faster(world: World) -> None:
    # Judged on 500 rows here (this world is small, to be quick): a point of AUC is within their noise, so
    # the budget is wider than the default; the demo-sized figures are in docs/benchmarks.md.
    record = world.client.optimize("models:/churn/2", "distill:mlp-32", accuracy_budget_points=2.5)
    assert record.status is OptimizationStatus.REGISTERED, record.error or record.verdict
    result, verdict = record.result, record.verdict
    assert result is not None
    assert verdict is not None
    assert verdict["quality_delta"]["auc_points"] >= -2.5
    assert verdict["speedup"] > 5, "a 32-unit student against a 7M-parameter teacher"
    assert result["variant"]["size_bytes"] * 100 < result["parent"]["size_bytes"]
    assert result["build"]["distillation"]["labels_used"] is False
    # It learned from the other half of the reference rows than the one it was judged on.
    assert result["build"]["distillation"]["rows"] >= result["evaluation_rows"]
    table = world.client.variants("models:/churn/2")
    methods = {row["method"]: row for row in table["rows"]}
    assert methods["(parent)"]["status"] == "parent"
    assert methods["distill:mlp-32"]["model"] == f"models:/churn/{record.variant_version}"


def test_a_variant_over_its_budget_is_refused_with_its_delta_and_nothing_registered(world: World) -> None:
    versions_before = len(world.client.list_versions("churn"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(WORKBENCH_URL=world.api_url, WORKBENCH_HOME=str(world.settings.home), COLUMNS="220")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench",
            "optimize",
            "models:/churn/1",
            "--method",
            "prune:0.9",
            "--budget",
            "0.25",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 3, completed.stdout + completed.stderr
    assert "refused, nothing registered" in completed.stdout
    assert "over the budget of 0.25" in completed.stdout
    record = world.client.optimizations(model="churn", version=1, limit=1)[0]
    assert record.status is OptimizationStatus.REFUSED
    assert record.verdict is not None
    assert record.verdict["quality_delta"]["auc_points"] < -0.25
    assert record.variant_version is None
    assert len(world.client.list_versions("churn")) == versions_before
    refused = [row for row in world.client.variants("models:/churn/1")["rows"] if row["status"] == "refused"]
    assert refused
    assert refused[0]["delta"] < -0.25


@pytest.mark.parametrize(
    ("model", "method", "error", "message"),
    [
        ("models:/churn/1", "quantize", ValidationError, "unknown optimisation method 'quantize'"),
        ("models:/churn/1", "prune:1.5", ValidationError, "strictly between 0 and 1.*got '1.5'"),
        ("models:/churn/1", "prune:0", ValidationError, "strictly between 0 and 1.*got '0'"),
        ("models:/churn/1", "distill:mlp-0", ValidationError, "student architecture"),
        ("models:/scorer/1", "onnx", ValidationError, "cannot convert"),
        ("models:/unlabelled/1", "onnx", ValidationError, "no reference data"),
        ("models:/churn/99", "onnx", NotFoundError, "no version 99"),
    ],
)
def test_bad_input_is_refused_before_any_work(
    world: World, model: str, method: str, error: type[Exception], message: str
) -> None:
    counts = world.plane.registry.counts()
    before = len(world.client.optimizations(limit=1000))
    with pytest.raises(error, match=message):
        world.client.optimize(model, method)
    assert world.plane.registry.counts() == counts
    assert len(world.client.optimizations(limit=1000)) == before


def test_bad_input_over_http_gets_a_json_error(world: World) -> None:
    headers = {"Authorization": f"Bearer {world.settings.read_token()}"}
    url = f"{world.api_url}/api/v1/models/churn/versions/1/optimizations"
    for body in ({"method": "prune:1.5"}, {"method": "onnx", "accuracy_budget_points": -1}, {}):
        response = httpx.post(url, json=body, headers=headers, timeout=30)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["message"]
    missing = httpx.get(f"{world.api_url}/api/v1/optimizations/opt-nope", headers=headers, timeout=30)
    assert missing.status_code == 404
    assert "opt-nope" in missing.json()["error"]["message"]


def test_the_optimize_model_runbook_registers_refuses_and_shows_the_table(world: World) -> None:
    run = world.client.run_runbook(
        "optimize-model",
        {"model": "models:/churn/1", "methods": "onnx-int8,prune:0.95", "accuracy_budget_points": 0.25},
        wait_s=400,
    )
    assert run.status.value == "succeeded", run.error
    summary = run.summary
    assert summary is not None
    assert summary["variants"]["prune:0.95"] == "refused"
    assert summary["variants"]["onnx-int8"].startswith("models:/churn/")
    assert summary["refused"]["prune:0.95"]
    notebook = world.client.run_notebook(run.id).decode()
    assert "onnx-int8" in notebook
    assert "(parent)" in notebook, "the comparison table is in the archived run"
    events = world.client.audit(action="model.optimize")
    assert any(e.actor.startswith("runbook:optimize-model/") for e in events)


def test_the_runbook_refuses_bad_parameters_before_any_work(world: World) -> None:
    before = len(world.client.optimizations(limit=1000))
    run = world.client.run_runbook(
        "optimize-model", {"model": "models:/churn/1", "methods": "prune:2"}, wait_s=300
    )
    assert run.status.value == "failed"
    assert run.error is not None
    assert "strictly between 0 and 1" in run.error
    assert len(world.client.optimizations(limit=1000)) == before
