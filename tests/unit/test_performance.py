"""Window performance metrics: hand-computed examples, agreement with scikit-learn on random data, CBPE
against realised metrics on simulated calibrated labels, validation messages and empty windows."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from numpy.typing import NDArray

from workbench.errors import ValidationError
from workbench.monitoring.performance import (
    EstimatedMetrics,
    LabelledMetrics,
    calibration_error,
    compare,
    estimate_performance,
    labelled_metrics,
)


def _calibrated(rng: np.random.Generator, scores: NDArray[np.float64]) -> NDArray[np.float64]:
    return (rng.random(scores.size) < scores).astype(np.float64)


# --- labelled, by hand ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "labels", "auc"),
    [
        ([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1], 1.0),
        ([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1], 0.0),
        ([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1], 0.5),
        ([0.1, 0.4, 0.4, 0.9], [0, 0, 1, 1], 0.875),  # one tied pair out of four counts 1/2
    ],
)
def test_rank_auc_known_examples(scores: list[float], labels: list[int], auc: float) -> None:
    assert labelled_metrics("binary", scores, labels).roc_auc == pytest.approx(auc)


def test_binary_metrics_by_hand() -> None:
    # predictions at 0.5: [1, 1, 0, 0, 1]; labels [1, 0, 0, 1, 1] -> TP 2, FP 1, FN 1, TN 1
    m = labelled_metrics("binary", [0.9, 0.6, 0.3, 0.2, 0.5], [1, 0, 0, 1, 1])
    assert m.n == 5
    assert m.accuracy == pytest.approx(3 / 5)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == pytest.approx(2 / 3)
    assert m.f1 == pytest.approx(2 / 3)
    assert m.positive_rate == pytest.approx(3 / 5)
    assert m.prevalence == pytest.approx(3 / 5)
    assert m.brier == pytest.approx((0.01 + 0.36 + 0.09 + 0.64 + 0.25) / 5)
    assert m.mae is None
    assert m.r2 is None


def test_threshold_moves_predictions() -> None:
    m = labelled_metrics("binary", [0.3, 0.6, 0.7], [0, 1, 1], threshold=0.65)
    assert m.accuracy == pytest.approx(2 / 3)
    assert m.positive_rate == pytest.approx(1 / 3)


def test_single_class_auc_is_none_and_undefined_ratios_are_none() -> None:
    m = labelled_metrics("binary", [0.1, 0.2], [0, 0])
    assert m.roc_auc is None
    assert m.precision is None  # nothing predicted positive
    assert m.recall is None  # nothing labelled positive
    assert m.f1 is None
    assert m.accuracy == 1.0


def test_log_loss_is_clipped_not_infinite() -> None:
    m = labelled_metrics("binary", [0.0, 1.0], [1, 0])
    assert m.log_loss is not None
    assert math.isfinite(m.log_loss)
    assert m.log_loss == pytest.approx(-math.log(1e-15), rel=1e-6)


def test_regression_by_hand() -> None:
    m = labelled_metrics("regression", [2.0, 4.0, 5.0], [1.0, 4.0, 7.0])
    assert m.n == 3
    assert m.mae == pytest.approx(1.0)
    assert m.rmse == pytest.approx(math.sqrt(5 / 3))
    assert m.mean_error == pytest.approx(-1 / 3)  # prediction minus label
    assert m.r2 == pytest.approx(1 - 5 / 18)
    assert m.accuracy is None


def test_regression_constant_labels_r2_is_none() -> None:
    m = labelled_metrics("regression", [1.0, 2.0], [3.0, 3.0])
    assert m.r2 is None
    assert m.mae == pytest.approx(1.5)


# --- labelled, against scikit-learn ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_agrees_with_sklearn(seed: int) -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    scores = rng.random(2_000)
    scores[:200] = np.round(scores[:200], 1)  # some ties
    labels = _calibrated(rng, scores**0.7)
    m = labelled_metrics("binary", scores, labels, threshold=0.4)
    predicted = (scores >= 0.4).astype(int)
    assert m.roc_auc == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores), abs=1e-12)
    assert m.accuracy == pytest.approx(sklearn_metrics.accuracy_score(labels, predicted), abs=1e-12)
    assert m.precision == pytest.approx(sklearn_metrics.precision_score(labels, predicted), abs=1e-12)
    assert m.recall == pytest.approx(sklearn_metrics.recall_score(labels, predicted), abs=1e-12)
    assert m.f1 == pytest.approx(sklearn_metrics.f1_score(labels, predicted), abs=1e-12)
    assert m.log_loss == pytest.approx(sklearn_metrics.log_loss(labels, scores), rel=1e-9)
    assert m.brier == pytest.approx(sklearn_metrics.brier_score_loss(labels, scores), abs=1e-12)


def test_regression_agrees_with_sklearn() -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    labels = rng.normal(10.0, 3.0, 1_000)
    predictions = labels + rng.normal(0.5, 1.0, 1_000)
    m = labelled_metrics("regression", predictions, labels)
    assert m.mae == pytest.approx(sklearn_metrics.mean_absolute_error(labels, predictions))
    assert m.rmse == pytest.approx(math.sqrt(sklearn_metrics.mean_squared_error(labels, predictions)))
    assert m.r2 == pytest.approx(sklearn_metrics.r2_score(labels, predictions))
    assert m.mean_error == pytest.approx(float(np.mean(predictions - labels)))


# --- CBPE -------------------------------------------------------------------------------------------------


def test_estimate_by_hand() -> None:
    # 0.8 -> TP .8 FP .2; 0.2 -> FN .2 TN .8
    e = estimate_performance([0.8, 0.2])
    assert e.n == 2
    assert e.accuracy == pytest.approx(0.8)
    assert e.precision == pytest.approx(0.8)
    assert e.recall == pytest.approx(0.8)
    assert e.f1 == pytest.approx(0.8)
    # expected ROC through (0, 0), (.2, .8), (1, 1)
    assert e.roc_auc == pytest.approx(0.2 * 0.4 + 0.8 * 0.9)


def test_estimated_auc_of_uninformative_scores_is_half_and_degenerate_is_none() -> None:
    assert estimate_performance([0.5] * 10).roc_auc == pytest.approx(0.5)
    assert estimate_performance([0.3] * 7).roc_auc == pytest.approx(0.5)
    assert estimate_performance([0.0, 0.0]).roc_auc is None
    assert estimate_performance([1.0, 1.0]).roc_auc is None
    assert estimate_performance([0.1, 0.2]).precision is None  # nothing predicted positive


def _realised_and_estimated(
    scores: NDArray[np.float64], seed: int
) -> tuple[LabelledMetrics, EstimatedMetrics]:
    labels = _calibrated(np.random.default_rng(seed), scores)
    return labelled_metrics("binary", scores, labels), estimate_performance(scores)


def test_cbpe_matches_realised_on_calibrated_scores() -> None:
    scores = np.random.default_rng(10).beta(0.6, 0.6, 50_000)
    realised, estimated = _realised_and_estimated(scores, seed=11)
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert getattr(estimated, name) == pytest.approx(getattr(realised, name), abs=0.01), name


def test_cbpe_follows_covariate_shift() -> None:
    rng = np.random.default_rng(20)
    reference_real, reference_est = _realised_and_estimated(rng.beta(0.6, 0.6, 50_000), seed=21)
    shifted_real, shifted_est = _realised_and_estimated(rng.beta(20.0, 20.0, 50_000), seed=22)
    assert shifted_real.accuracy is not None
    assert reference_real.accuracy is not None
    assert shifted_real.accuracy < reference_real.accuracy - 0.2  # the shift really hurts
    assert shifted_est.accuracy == pytest.approx(shifted_real.accuracy, abs=0.01)
    assert shifted_est.roc_auc == pytest.approx(shifted_real.roc_auc, abs=0.01)
    drop = compare(shifted_est.accuracy, reference_est.accuracy)
    assert drop is not None
    assert drop == pytest.approx(reference_real.accuracy - shifted_real.accuracy, abs=0.015)


def test_calibration_error() -> None:
    # bin [0, .5): mean score .25 vs rate .5; bin [.5, 1]: .75 vs 1 -> each gap .25, each half the rows
    assert calibration_error([0.25, 0.25, 0.75, 0.75], [0, 1, 1, 1], bins=2) == pytest.approx(0.25)
    assert calibration_error([1.0, 1.0], [1, 1]) == pytest.approx(0.0)  # 1.0 lands in the last bin
    rng = np.random.default_rng(30)
    scores = rng.random(50_000)
    labels = _calibrated(rng, scores)
    assert calibration_error(scores, labels) < 0.01
    assert calibration_error(scores**3, labels) > 0.1


# --- compare, to_dict, empty, validation --------------------------------------------------------------------


def test_compare() -> None:
    assert compare(0.8, 0.9) == pytest.approx(0.1)
    assert compare(0.95, 0.9) == pytest.approx(-0.05)
    assert compare(None, 0.9) is None
    assert compare(0.8, None) is None
    assert compare(float("nan"), 0.9) is None


def test_empty_windows() -> None:
    binary = labelled_metrics("binary", [], [])
    assert binary == LabelledMetrics(kind="binary", n=0)
    assert all(v is None for k, v in binary.to_dict().items() if k not in ("kind", "n"))
    assert labelled_metrics("regression", np.array([]), np.array([])).to_dict() == {
        "kind": "regression",
        "n": 0,
        "mae": None,
        "rmse": None,
        "r2": None,
        "mean_error": None,
    }
    assert estimate_performance([]) == EstimatedMetrics(n=0)


def test_to_dict_is_json_friendly() -> None:
    m = labelled_metrics("binary", [0.2, 0.7], [0, 1]).to_dict()
    assert set(m) == {
        "kind", "n", "accuracy", "roc_auc", "precision", "recall", "f1",
        "log_loss", "brier", "positive_rate", "prevalence",
    }  # fmt: skip
    assert json.loads(json.dumps(m)) == m
    e = estimate_performance([0.1, 0.2]).to_dict()
    assert e["precision"] is None
    assert json.loads(json.dumps(e)) == e
    assert list(e) == ["n", "accuracy", "precision", "recall", "f1", "roc_auc"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: labelled_metrics("binary", [0.1, 0.2], [0]), "same length, got 2 and 1"),
        (lambda: labelled_metrics("binary", [0.1, float("nan")], [0, 1]), "scores must be finite"),
        (lambda: labelled_metrics("regression", [1.0], [float("inf")]), "labels must be finite"),
        (lambda: labelled_metrics("binary", [0.1, 0.2], [0, 2]), "binary labels must be 0 or 1, found [2.0]"),
        (lambda: labelled_metrics("binary", [0.1, 1.2], [0, 1]), "probabilities in [0, 1]"),
        (lambda: labelled_metrics("binary", [[0.1]], [[0]]), "one-dimensional"),
        (lambda: labelled_metrics("binary", ["a"], [0]), "scores must be numeric"),
        (lambda: labelled_metrics("multiclass", [0.1], [0]), "kind must be 'binary' or 'regression'"),  # type: ignore[arg-type]
        (lambda: labelled_metrics("binary", [0.1], [0], threshold=1.5), "threshold must be in [0, 1]"),
        (lambda: estimate_performance([-0.1]), "probabilities in [0, 1]"),
        (lambda: estimate_performance([0.5], threshold=float("nan")), "threshold must be in [0, 1]"),
        (lambda: calibration_error([], []), "at least one labelled row"),
        (lambda: calibration_error([0.5], [1], bins=0), "bins must be a positive integer"),
    ],
)
def test_validation_errors(call: object, message: str) -> None:
    assert callable(call)
    with pytest.raises(ValidationError) as info:
        call()
    assert message in info.value.message


def test_regression_accepts_any_finite_values() -> None:
    m = labelled_metrics("regression", [-5.0, 100.0], [-4.0, 90.0])
    assert m.mae == pytest.approx(5.5)
