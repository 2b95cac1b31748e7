"""Model performance over a window: realised when labels come back, estimated while they have not.

Labels arrive late (a chargeback weeks after the transaction) or never, so the monitor needs a number
before they do. For binary classifiers :func:`estimate_performance` uses Confidence-Based Performance
Estimation (CBPE) as NannyML describes and implements it (NannyML documentation, "Confidence-based
Performance Estimation", https://nannyml.readthedocs.io/en/stable/how_it_works/performance_estimation.html):
if scores are calibrated probabilities, a prediction with score ``p`` and predicted class
``ŷ = [p >= threshold]`` is a true positive with probability ``p`` when ``ŷ = 1`` (false positive with
``1 - p``) and a false negative with probability ``p`` when ``ŷ = 0`` (true negative with ``1 - p``). Summed
over the window this gives an expected confusion matrix, hence expected accuracy, precision, recall and F1;
ROC AUC comes from the expected TPR/FPR curve. The estimate follows covariate shift (scores moving towards
the threshold) but not concept shift (``P(y | x)`` changing), and it is only as good as the calibration,
which is why :func:`calibration_error` exists: the monitor reports it from the labelled reference.

Everything here is pure (no I/O, no clock), so the engine can call it on any window and tests can pin it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from workbench.errors import ValidationError

Kind = Literal["binary", "regression"]
LOG_LOSS_EPS = 1e-15  # keeps a confidently wrong prediction finite (and large) instead of infinite

_BINARY_FIELDS = (
    "accuracy",
    "roc_auc",
    "precision",
    "recall",
    "f1",
    "log_loss",
    "brier",
    "positive_rate",
    "prevalence",
)
_REGRESSION_FIELDS = ("mae", "rmse", "r2", "mean_error")


@dataclass(frozen=True)
class LabelledMetrics:
    """Realised metrics of one window. One type for both kinds so the engine stores and compares them
    uniformly; the fields of the other kind stay ``None`` and :meth:`to_dict` leaves them out.

    ``positive_rate`` is the share predicted positive, ``prevalence`` the share labelled positive: a
    prevalence shift is what CBPE cannot see, so it is worth having next to the estimate.
    ``mean_error`` is prediction minus label, so a positive bias means over-prediction."""

    kind: Kind
    n: int
    accuracy: float | None = None
    roc_auc: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    log_loss: float | None = None
    brier: float | None = None
    positive_rate: float | None = None
    prevalence: float | None = None
    mae: float | None = None
    rmse: float | None = None
    r2: float | None = None
    mean_error: float | None = None

    def to_dict(self) -> dict[str, Any]:
        names = _BINARY_FIELDS if self.kind == "binary" else _REGRESSION_FIELDS
        values = asdict(self)
        return {"kind": self.kind, "n": self.n, **{name: values[name] for name in names}}


@dataclass(frozen=True)
class EstimatedMetrics:
    """CBPE estimates for a window without labels; ``None`` where the expected ratio has no denominator."""

    n: int
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    roc_auc: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _array(values: ArrayLike, name: str) -> NDArray[np.float64]:
    """Every public function funnels its inputs through here so that bad data fails with a message
    naming the argument, rather than as a NumPy error or, worse, as a silently wrong NaN metric."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name} must be numeric: {exc}", argument=name) from exc
    if array.ndim != 1:
        raise ValidationError(f"{name} must be one-dimensional, got shape {array.shape}", argument=name)
    if not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise ValidationError(f"{name} must be finite, found {bad} NaN or infinite value(s)", argument=name)
    return array


def _check_threshold(threshold: float) -> None:
    if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise ValidationError(f"threshold must be in [0, 1], got {threshold}", threshold=threshold)


def _check_probabilities(scores: NDArray[np.float64], name: str = "scores") -> None:
    if scores.size and (scores.min() < 0.0 or scores.max() > 1.0):
        raise ValidationError(
            f"{name} must be probabilities in [0, 1], got range [{scores.min()}, {scores.max()}]",
            argument=name,
        )


def _paired(scores: ArrayLike, labels: ArrayLike, *, binary: bool) -> tuple[NDArray[np.float64], ...]:
    s, y = _array(scores, "scores"), _array(labels, "labels")
    if s.shape != y.shape:
        raise ValidationError(
            f"scores and labels must have the same length, got {s.size} and {y.size}",
            scores=s.size,
            labels=y.size,
        )
    if binary:
        _check_probabilities(s)
        if not np.all((y == 0.0) | (y == 1.0)):
            others = sorted({float(v) for v in y[(y != 0.0) & (y != 1.0)][:5]})
            raise ValidationError(f"binary labels must be 0 or 1, found {others}", argument="labels")
    return s, y


def _ratio(numerator: float, denominator: float) -> float | None:
    """Precision with no positive prediction is undefined, not 0: ``None`` keeps an alert rule from
    reading an empty denominator as a collapse of the metric."""
    return numerator / denominator if denominator > 0 else None


def _rank_auc(scores: NDArray[np.float64], labels: NDArray[np.float64]) -> float | None:
    """ROC AUC (scikit-learn: ties count 1/2); undefined, not an error, when one class is absent."""
    if labels.min() == labels.max():
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def _binary_metrics(s: NDArray[np.float64], y: NDArray[np.float64], threshold: float) -> LabelledMetrics:
    """scikit-learn where it says what we mean; precision, recall and F1 stay ``None`` when undefined
    (scikit-learn answers 0 with a warning), and the log loss clips as documented below."""
    from sklearn.metrics import accuracy_score

    predicted = s >= threshold
    positive = y == 1.0
    tp = float(np.count_nonzero(predicted & positive))
    fp = float(np.count_nonzero(predicted & ~positive))
    fn = float(np.count_nonzero(~predicted & positive))
    # Clip the probability given to the true class, not the score: ``1 - eps`` is not representable
    # exactly next to 1, so clipping the score would make the two kinds of confident miss cost differently.
    likelihood = np.clip(np.where(positive, s, 1.0 - s), LOG_LOSS_EPS, 1.0)
    log_loss = -float(np.mean(np.log(likelihood)))
    return LabelledMetrics(
        kind="binary",
        n=int(s.size),
        accuracy=float(accuracy_score(positive, predicted)),
        roc_auc=_rank_auc(s, y),
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        f1=_ratio(2.0 * tp, 2.0 * tp + fp + fn),
        log_loss=log_loss,
        brier=float(np.mean((s - y) ** 2)),
        positive_rate=float(np.mean(predicted)),
        prevalence=float(np.mean(y)),
    )


def _regression_metrics(s: NDArray[np.float64], y: NDArray[np.float64]) -> LabelledMetrics:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    # R² compares with predicting the mean; with constant labels there is nothing to compare with.
    r2 = float(r2_score(y, s)) if y.min() != y.max() else None
    return LabelledMetrics(
        kind="regression",
        n=int(s.size),
        mae=float(mean_absolute_error(y, s)),
        rmse=math.sqrt(float(mean_squared_error(y, s))),
        r2=r2,
        mean_error=float(np.mean(s - y)),
    )


def labelled_metrics(
    kind: Kind, scores: ArrayLike, labels: ArrayLike, *, threshold: float = 0.5
) -> LabelledMetrics:
    """Realised performance once labels are joined back. For ``binary``, ``scores`` are probabilities of
    the positive class; for ``regression``, predictions. An empty window is normal (no label arrived yet)
    and yields ``n=0`` with every metric ``None`` instead of an exception."""
    if kind not in ("binary", "regression"):
        raise ValidationError(f"kind must be 'binary' or 'regression', got {kind!r}", kind=kind)
    _check_threshold(threshold)
    s, y = _paired(scores, labels, binary=kind == "binary")
    if s.size == 0:
        return LabelledMetrics(kind=kind, n=0)
    return _binary_metrics(s, y, threshold) if kind == "binary" else _regression_metrics(s, y)


def _expected_auc(scores: NDArray[np.float64]) -> float | None:
    """CBPE's ROC AUC: walking the scores from the highest, each row adds ``p`` expected positives and
    ``1 - p`` expected negatives, so the cumulative sums trace the expected ROC curve. A block of tied
    scores adds steps in one fixed direction, a straight segment, so the trapezoid rule already credits
    ties by half, as the rank AUC does, with no deduplication."""
    p = np.sort(scores)[::-1]
    tps = np.concatenate(([0.0], np.cumsum(p)))
    fps = np.concatenate(([0.0], np.cumsum(1.0 - p)))
    if tps[-1] <= 0 or fps[-1] <= 0:
        return None  # every score 0 (or 1): no expected positives (negatives) to rank against
    tpr, fpr = tps / tps[-1], fps / fps[-1]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def estimate_performance(scores: ArrayLike, *, threshold: float = 0.5) -> EstimatedMetrics:
    """CBPE estimate of a binary classifier's performance from its scores alone. The ratios are taken
    of expected counts (not expected ratios), as NannyML does; the difference vanishes at window sizes
    where an estimate is worth reading."""
    _check_threshold(threshold)
    p = _array(scores, "scores")
    _check_probabilities(p)
    if p.size == 0:
        return EstimatedMetrics(n=0)
    predicted = p >= threshold
    tp = float(p[predicted].sum())
    fp = float((1.0 - p[predicted]).sum())
    fn = float(p[~predicted].sum())
    tn = float((1.0 - p[~predicted]).sum())
    return EstimatedMetrics(
        n=int(p.size),
        accuracy=(tp + tn) / p.size,
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        f1=_ratio(2.0 * tp, 2.0 * tp + fp + fn),
        roc_auc=_expected_auc(p),
    )


def calibration_error(scores: ArrayLike, labels: ArrayLike, bins: int = 10) -> float:
    """Expected calibration error over equal-width bins: the row-weighted mean gap between the mean
    score and the positive rate in each bin. It bounds how far CBPE can be trusted, so it is computed
    on the labelled reference; an empty reference raises, because "0, perfectly calibrated" would lie."""
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValidationError(f"bins must be a positive integer, got {bins!r}", bins=bins)
    s, y = _paired(scores, labels, binary=True)
    if s.size == 0:
        raise ValidationError("calibration_error needs at least one labelled row", argument="scores")
    index = np.minimum((s * bins).astype(np.int64), bins - 1)  # a score of exactly 1 joins the last bin
    score_sums = np.bincount(index, weights=s, minlength=bins)
    label_sums = np.bincount(index, weights=y, minlength=bins)
    return float(np.sum(np.abs(score_sums - label_sums)) / s.size)


def compare(current: float | None, reference: float | None) -> float | None:
    """The drop ``reference - current`` an alert rule thresholds; ``None`` when either side is missing
    (or NaN), so "no data" never reads as "no drop". Positive means worse only for metrics where higher
    is better; for MAE, RMSE, log loss and Brier a degradation shows as a negative drop."""
    if current is None or reference is None or not (math.isfinite(current) and math.isfinite(reference)):
        return None
    return reference - current
