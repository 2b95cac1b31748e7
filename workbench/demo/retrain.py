"""The demo's training entry point for retrain-and-canary: the improved recipe (v2) on fresh rows.

Real projects point the runbook at their own ``module:function``; this one shows the contract.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from workbench.demo.dataset import FEATURES, TARGET
from workbench.demo.training import predict_proba, train_version
from workbench.runbooks.training import TrainingResult


def train(frame: pd.DataFrame, *, label: str = TARGET, seed: int = 0) -> TrainingResult:
    """Train the v2 recipe on ``frame`` (features plus ``label``)."""
    missing = [name for name in (*FEATURES, label) if name not in frame.columns]
    if missing:
        raise ValueError(f"training data is missing column(s) {', '.join(missing)}")
    data = frame[list(FEATURES)].copy()
    data[TARGET] = frame[label].astype(np.float32).to_numpy()
    trained = train_version(2, data, data.tail(min(len(data), 2000)), seed=seed)
    module = trained.module

    def predict(rows: Any) -> npt.NDArray[np.float64]:
        return predict_proba(module, rows[list(FEATURES)])

    return TrainingResult(
        model=module,
        predict=predict,
        features=tuple(FEATURES),
        params={**trained.params, "retrained": "true"},
        metrics={f"train_{k}": v for k, v in trained.metrics.items()},
        description="retrained by retrain-and-canary on labelled production traffic",
    )
