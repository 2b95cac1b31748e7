"""The pure parts of optimisation: method spellings, the gate, the table, pruning, students, recovery."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import torch

from workbench.control_plane import ControlPlane
from workbench.demo.training import ChurnNet
from workbench.errors import ValidationError
from workbench.optimize.gate import decide
from workbench.optimize.methods import METHOD_RE, parse_method
from workbench.optimize.quality import agreement, quality, scores_of, task_of
from workbench.optimize.service import OptimizationService
from workbench.optimize.student import build_student, fit_to_teacher
from workbench.optimize.table import comparison
from workbench.optimize.torch_variants import dynamic_int8, folded, prune_hidden_units
from workbench.records.optimizations import OptimizationRecord, OptimizationStatus
from workbench.specs.patterns import json_pattern


@pytest.mark.parametrize(
    ("text", "spelling"),
    [
        ("onnx", "onnx"),
        ("onnx-int8", "onnx-int8"),
        ("dynamic-int8", "dynamic-int8"),
        ("prune:0.5", "prune:0.5"),
        ("prune:.25", "prune:0.25"),
        ("distill:mlp-32", "distill:mlp-32"),
        ("distill:mlp-64x32x16x8", "distill:mlp-64x32x16x8"),
    ],
)
def test_methods_parse_to_one_spelling(text: str, spelling: str) -> None:
    assert parse_method(text).spelling == spelling
    assert parse_method(parse_method(text).spelling) == parse_method(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ONNX",
        "quantize",
        "prune",
        "prune:",
        "prune:0",
        "prune:1",
        "prune:1.5",
        "prune:-0.5",
        "prune:1e-1",
        "prune:0.0",
        "distill",
        "distill:mlp",
        "distill:mlp-0",
        "distill:mlp-1025",
        "distill:mlp-1x1x1x1x1",
        "distill:cnn-3",
        " onnx",
        "onnx ",
    ],
)
def test_bad_methods_are_refused_and_the_schema_pattern_agrees(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_method(text)
    assert re.match(json_pattern(METHOD_RE), text) is None


def test_the_schema_pattern_accepts_every_spelling_the_parser_accepts() -> None:
    for text in ("onnx", "prune:0.999", "prune:0.001", "distill:mlp-1024x1", "distill:mlp-1"):
        assert parse_method(text)
        assert re.match(json_pattern(METHOD_RE), text)


def _measured(parent_auc: float, variant_auc: float, parent_ms: float, variant_ms: float) -> dict[str, Any]:
    def block(auc: float, ms: float) -> dict[str, Any]:
        return {"quality": {"auc_points": auc, "accuracy_points": 80.0}, "latency_ms": {"1": {"p50": ms}}}

    return {"parent": block(parent_auc, parent_ms), "variant": block(variant_auc, variant_ms)}


def test_the_gate_accepts_within_budget_and_faster() -> None:
    verdict = decide(
        _measured(84.0, 83.5, 1.0, 0.25), accuracy_budget_points=1.0, min_speedup=1.05, serving_batch=1
    )
    assert verdict.accepted
    assert verdict.speedup == 4.0
    assert verdict.quality_delta["auc_points"] == -0.5


def test_the_gate_refuses_over_budget_and_says_by_how_much() -> None:
    verdict = decide(
        _measured(84.0, 82.5, 1.0, 0.25), accuracy_budget_points=1.0, min_speedup=1.05, serving_batch=1
    )
    assert not verdict.accepted
    assert verdict.reasons == ["AUC fell 1.50 points (84.00 -> 82.50), over the budget of 1"]


def test_the_gate_refuses_a_variant_that_is_not_faster_where_it_serves() -> None:
    verdict = decide(
        _measured(84.0, 84.0, 0.05, 0.1), accuracy_budget_points=1.0, min_speedup=1.05, serving_batch=1
    )
    assert not verdict.accepted
    assert "not faster where it serves" in verdict.reasons[0]
    assert verdict.speedup == 0.5


def test_the_gate_reads_mae_as_a_relative_budget() -> None:
    measured = {
        "parent": {"quality": {"mae": 2.0}, "latency_ms": {"8": {"p50": 1.0}}},
        "variant": {"quality": {"mae": 2.03}, "latency_ms": {"8": {"p50": 0.5}}},
    }
    assert not decide(measured, accuracy_budget_points=1.0, min_speedup=1.0, serving_batch=8).accepted
    assert decide(measured, accuracy_budget_points=2.0, min_speedup=1.0, serving_batch=8).accepted


def test_quality_and_agreement() -> None:
    target = np.array([0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.9, 0.8, 0.3, 0.4])
    assert task_of(target) == "classification"
    assert task_of(np.array([0.5, 2.0, 3.0])) == "regression"
    figures = quality("classification", target, scores)
    assert figures["auc_points"] == 100.0
    assert figures["accuracy_points"] == 80.0
    assert quality("regression", np.array([1.0, 2.0]), np.array([1.5, 2.5]))["mae"] == 0.5
    assert agreement(scores, scores[::-1].copy())["decisions_flipped_pct"] == 40.0
    np.testing.assert_array_equal(scores_of(np.array([[0.2, 0.8], [0.6, 0.4]])), [0.8, 0.4])


def test_folding_keeps_predictions_and_quantising_keeps_them_close() -> None:
    torch.manual_seed(0)
    module = ChurnNet((16, 8), weight_norm=True)
    with torch.no_grad():
        for gain in module.gains:
            gain.mul_(1.5)
    x = torch.rand(64, 20) * 4
    module.eval()
    plain = folded(module)
    assert plain.weight_norm is False  # type: ignore[comparison-overlap]
    with torch.inference_mode():
        torch.testing.assert_close(plain(x), module(x), atol=1e-6, rtol=1e-5)
        assert module.weight_norm, "the parent is never changed"
        quantized = dynamic_int8(module)
        assert float((quantized(x) - module(x)).abs().max()) < 0.05


def test_pruning_removes_whole_hidden_units_and_keeps_the_strongest() -> None:
    torch.manual_seed(0)
    module = ChurnNet((10, 6))
    first = module.mlp[0]
    assert isinstance(first, torch.nn.Linear)
    with torch.no_grad():
        first.weight[3].mul_(100.0)  # unit 3 carries by far the most
    pruned, shape = prune_hidden_units(module, 0.5)
    assert shape["hidden_before"] == [10, 6]
    assert shape["hidden_after"] == [5, 3]
    layer = pruned.mlp[0]  # type: ignore[index]
    assert isinstance(layer, torch.nn.Linear)
    assert layer.out_features == 5
    assert any(torch.equal(row, first.weight[3]) for row in layer.weight)
    assert pruned(torch.rand(4, 20)).shape == (4,)


def test_pruning_refuses_a_model_without_an_mlp() -> None:
    with pytest.raises(ValidationError, match="hidden units"):
        prune_hidden_units(torch.nn.Linear(3, 1), 0.5)


def test_a_student_learns_its_teachers_scores_without_labels() -> None:
    rng = np.random.default_rng(0)
    matrix = np.column_stack([rng.normal(size=2000), rng.integers(0, 3, 2000)]).astype(np.float32)
    teacher = (1 / (1 + np.exp(-(2 * matrix[:, 0] + (matrix[:, 1] == 2))))).astype(np.float32)
    torch.manual_seed(0)  # the student's first weights: the same whichever tests ran before in this worker
    student = build_student(matrix, [1], (8,), "probability")
    assert student.onehot_values.tolist() == [0.0, 1.0, 2.0], "a small integer column became a category"
    before = float(np.abs(student(torch.from_numpy(matrix)).detach().numpy() - teacher).mean())
    report = fit_to_teacher(
        student, matrix, teacher, "probability", epochs=15, logits=student.raw, learning_rate=1e-2
    )
    after = float(np.abs(student(torch.from_numpy(matrix)).detach().numpy() - teacher).mean())
    assert report.steps == 15 * 8
    assert after < before / 3
    assert after < 0.03


def _record(status: OptimizationStatus, **fields: Any) -> OptimizationRecord:
    values: dict[str, Any] = {
        "id": "opt-1",
        "model": "m",
        "version": 1,
        "method": "onnx",
        "status": status,
        "settings": {"serving_batch": 1},
        "actor": "a",
        "created_at": datetime.now(tz=UTC),
    }
    return OptimizationRecord(**{**values, **fields})


def test_the_comparison_puts_the_parent_first_and_keeps_refusals() -> None:
    measured = _measured(84.0, 83.0, 1.0, 2.0)
    for block in measured.values():
        block["size_bytes"] = 2048
    records = [
        _record(
            OptimizationStatus.REFUSED,
            id="opt-2",
            method="dynamic-int8",
            result=measured,
            verdict={"quality_delta": {"auc_points": -1.0}, "speedup": 0.5, "reasons": ["not faster"]},
        ),
        _record(OptimizationStatus.FAILED, error="boom"),
    ]
    rows = comparison(records)
    assert [row["method"] for row in rows] == ["(parent)", "dynamic-int8", "onnx"]
    assert rows[0]["size_kb"] == 2.0
    assert rows[1]["delta"] == -1.0
    assert rows[1]["note"] == "not faster"
    assert rows[2]["note"] == "boom"


def test_a_restarted_control_plane_ends_what_a_dead_one_left_running(plane: ControlPlane) -> None:
    service = plane.optimizations
    with plane.db.write() as connection:
        service.repo.create(
            connection,
            optimization_id="opt-orphan",
            model="m",
            version=1,
            method="onnx",
            settings={"owner": "some-host:1"},
            actor="tester",
            reason=None,
        )
    OptimizationService(plane).close()
    record = service.get("opt-orphan")
    assert record.status is OptimizationStatus.FAILED
    assert record.error is not None
    assert "nothing was registered" in record.error
