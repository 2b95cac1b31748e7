"""A synthetic customer-churn world and three torch models of known relative quality, for the product demo.

Everything here is generated and trained locally in seconds, deterministically for a seed, so the demo can
show a real improvement (v1 -> v2), a real regression (v3) and real drift without network access or data
files.
"""

from workbench.demo.dataset import (
    CATEGORICAL_FEATURES,
    FEATURES,
    NUMERIC_FEATURES,
    TARGET,
    churn_probability,
    features_matrix,
    generate_churn,
    split_frame,
)
from workbench.demo.training import ChurnNet, TrainedModel, evaluate, predict_proba, roc_auc, train_version

__all__ = [
    "CATEGORICAL_FEATURES",
    "FEATURES",
    "NUMERIC_FEATURES",
    "TARGET",
    "ChurnNet",
    "TrainedModel",
    "churn_probability",
    "evaluate",
    "features_matrix",
    "generate_churn",
    "predict_proba",
    "roc_auc",
    "split_frame",
    "train_version",
]
