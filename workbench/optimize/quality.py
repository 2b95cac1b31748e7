"""How good a model's scores are on labelled rows, and how closely a variant follows its parent.

Pure functions of arrays. Binary targets are scored by ROC AUC and accuracy (in points, 0-100, because
the budget a user sets is "at most one point lost"), other targets by mean absolute error.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from workbench.demo.training import roc_auc

Task = Literal["classification", "regression"]
FloatArray = npt.NDArray[np.float64]


def task_of(target: npt.NDArray[Any]) -> Task:
    values = np.unique(np.asarray(target)[~np.isnan(np.asarray(target, dtype=np.float64))])
    return "classification" if len(values) <= 2 and set(values.tolist()) <= {0, 1} else "regression"


def scores_of(output: npt.NDArray[Any]) -> FloatArray:
    """One score per row: a ``[n]`` output as is, ``[n, 1]`` squeezed, ``[n, 2]`` class probabilities -> P(1)."""
    array = np.asarray(output, dtype=np.float64)
    if array.ndim == 2 and array.shape[1] == 2:
        return array[:, 1]
    return array.reshape(array.shape[0], -1)[:, 0] if array.ndim > 1 else array


def quality(task: Task, target: npt.NDArray[Any], scores: FloatArray) -> dict[str, float]:
    labels = np.asarray(target, dtype=np.float64)
    if task == "regression":
        return {"mae": float(np.mean(np.abs(scores - labels)))}
    threshold = 0.5 if np.all((scores >= 0.0) & (scores <= 1.0)) else 0.0
    return {
        "auc_points": 100.0 * roc_auc(labels, scores),
        "accuracy_points": 100.0 * float(np.mean((scores >= threshold) == (labels == 1))),
    }


def agreement(parent: FloatArray, variant: FloatArray) -> dict[str, float]:
    """How far the variant's scores stray from the parent's, row by row (what a canary will see)."""
    difference = np.abs(variant - parent)
    flipped = np.mean((parent >= 0.5) != (variant >= 0.5)) if parent.size else 0.0
    return {
        "max_abs_diff": float(difference.max()) if difference.size else 0.0,
        "mean_abs_diff": float(difference.mean()) if difference.size else 0.0,
        "decisions_flipped_pct": 100.0 * float(flipped),
    }
