"""Three churn models of deliberately different quality, trained from scratch in seconds.

The demo promotes, compares and rolls back model versions, so it needs versions whose ranking is known
in advance: v1 is a sound baseline, v2 is genuinely better, and v3 is the regression a careless release
would ship, both less accurate and much slower to serve: oversized, and trained with weight normalisation
that was never folded back into its weights, so every call recomputes every weight matrix (several ms a
call, against ~0.05 ms for v2, while a batch of thousands of rows still costs little more than one).
All three share one self-contained module type that takes raw feature rows, so serving and monitoring
need no preprocessing code of their own.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from torch import nn
from torch.nn import functional

from workbench.demo.dataset import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES, TARGET, features_matrix

__all__ = ["ChurnNet", "TrainedModel", "evaluate", "predict_proba", "roc_auc", "train_version"]

_EVAL_CHUNK: Final[int] = 4096
# Training runs on one intra-op thread. Measured on a 2-core box: v1/v2 steps are tiny matmuls where
# threads only add synchronisation, and while other processes were busy two threads made every version
# several times slower (v1 ~20x, v3 ~3x); the best case two threads buy is ~0.6 s on v3. It also makes
# the trained weights less dependent on how many cores the machine happens to have.
_TRAIN_THREADS: Final[int] = 1
_PROBABILITY_EPS: Final[float] = 1e-7


class ChurnNet(nn.Module):
    """MLP over raw churn features that carries its own preprocessing.

    Standardisation statistics live in buffers and categorical codes are one-hot encoded inside
    ``forward``, so a pickled module is the whole serving artefact: whoever loads it feeds
    ``features_matrix`` rows and gets probabilities back, with no sidecar scaler to lose or mismatch.
    """

    numeric_mean: torch.Tensor
    numeric_std: torch.Tensor
    onehot_columns: torch.Tensor
    onehot_values: torch.Tensor

    def __init__(self, hidden_sizes: Sequence[int] = (32,), *, weight_norm: bool = False) -> None:
        super().__init__()
        sizes = tuple(int(size) for size in hidden_sizes)
        if not sizes or any(size < 1 for size in sizes):
            raise ValueError(
                f"hidden_sizes must be a non-empty sequence of positive ints, got {hidden_sizes!r}"
            )
        self.hidden_sizes = sizes
        self.n_numeric = len(NUMERIC_FEATURES)
        self.n_features = len(FEATURES)

        columns: list[int] = []
        values: list[float] = []
        for offset, cardinality in enumerate(CATEGORICAL_FEATURES.values()):
            columns.extend([self.n_numeric + offset] * cardinality)
            values.extend(float(code) for code in range(cardinality))
        self.register_buffer("numeric_mean", torch.zeros(self.n_numeric))
        self.register_buffer("numeric_std", torch.ones(self.n_numeric))
        # One (source column, code) pair per one-hot slot turns encoding into a single gather + compare,
        # which works for any batch size and under inference_mode without Python loops per row.
        self.register_buffer("onehot_columns", torch.tensor(columns, dtype=torch.long))
        self.register_buffer("onehot_values", torch.tensor(values, dtype=torch.float32))

        layers: list[nn.Module] = []
        width = self.n_numeric + len(values)
        for size in sizes:
            layers.append(nn.Linear(width, size))
            layers.append(nn.ReLU())
            width = size
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        # Weight normalisation (Salimans and Kingma 2016): each Linear's weight is used as
        # g * v / ||v|| per output row, with the gains g learned beside the directions v. Folding it back
        # into plain weights after training is the step v3's careless release skipped.
        self.weight_norm = weight_norm
        self.gains = nn.ParameterList(
            [
                nn.Parameter(layer.weight.detach().norm(dim=1, keepdim=True))
                for layer in layers
                if isinstance(layer, nn.Linear)
            ]
            if weight_norm
            else []
        )

    def fit_normalization(self, features: npt.NDArray[np.float32] | torch.Tensor) -> None:
        """Freeze the numeric standardisation to the training distribution.

        Deliberately fitted once on training data and never updated: under covariate drift the model
        should see shifted inputs exactly as a production model would.
        """
        data = torch.as_tensor(features, dtype=torch.float64)
        if data.ndim != 2 or data.shape[1] != self.n_features or data.shape[0] < 1:
            raise ValueError(
                f"expected a non-empty [n, {self.n_features}] feature matrix, got {tuple(data.shape)}"
            )
        numeric = data[:, : self.n_numeric]
        mean = numeric.mean(dim=0)
        std = numeric.std(dim=0, correction=0).clamp_min(1e-6)
        with torch.no_grad():
            self.numeric_mean.copy_(mean.to(torch.float32))
            self.numeric_std.copy_(std.to(torch.float32))

    def parameter_count(self) -> int:
        return sum(parameter.numel() for parameter in self.parameters())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Raw feature rows -> the network's input (standardised numerics followed by one-hots)."""
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected input of shape [batch, {self.n_features}], got {tuple(x.shape)}")
        x = x.to(torch.float32)
        numeric = (x[:, : self.n_numeric] - self.numeric_mean) / self.numeric_std
        # Unknown codes map to an all-zero one-hot rather than crashing the endpoint.
        onehot = (torch.round(x[:, self.onehot_columns]) == self.onehot_values).to(torch.float32)
        return torch.cat((numeric, onehot), dim=1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        # Modules pickled before weight_norm existed have no such attribute.
        if not getattr(self, "weight_norm", False):
            out: torch.Tensor = self.mlp(self.encode(x)).squeeze(-1)
            return out
        hidden = self.encode(x)
        gains = iter(self.gains)
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                direction = layer.weight
                weight = direction * (next(gains) / direction.norm(dim=1, keepdim=True))
                hidden = functional.linear(hidden, weight, layer.bias)
            else:
                hidden = layer(hidden)
        return hidden.squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))

    def folded(self) -> ChurnNet:
        """An equivalent copy with weight normalisation folded into plain weights (the step v3 skipped).

        Optimisers (quantisation, pruning, export) call this first: they work on ``nn.Linear`` layers, and
        an unfolded module computes its real weights outside them on every call.
        """
        twin = copy.deepcopy(self)
        if not getattr(self, "weight_norm", False):
            return twin
        with torch.no_grad():
            linears = [layer for layer in twin.mlp if isinstance(layer, nn.Linear)]
            for layer, gain in zip(linears, twin.gains, strict=True):
                layer.weight.mul_(gain / layer.weight.norm(dim=1, keepdim=True))
        twin.weight_norm = False
        twin.gains = nn.ParameterList()
        return twin


@dataclass(frozen=True)
class TrainedModel:
    """A trained module with what a registry needs to log about it."""

    module: ChurnNet
    params: dict[str, str | int | float]
    metrics: dict[str, float]


@dataclass(frozen=True)
class _Recipe:
    hidden_sizes: tuple[int, ...]
    epochs: int
    learning_rate: float
    batch_size: int
    weight_decay: float
    # Caps optimiser steps regardless of epochs; this is how v3 ends up trained "far too briefly".
    max_steps: int | None
    description: str
    # Cosine decay to zero lets the longer recipe settle instead of bouncing around on noisy labels.
    cosine_decay: bool = False
    weight_norm: bool = False


_RECIPES: Final[dict[int, _Recipe]] = {
    1: _Recipe(
        hidden_sizes=(16,),
        epochs=3,
        learning_rate=3e-3,
        batch_size=256,
        weight_decay=0.0,
        max_steps=None,
        description="baseline: small one-hidden-layer MLP, short constant-rate schedule",
    ),
    # Measured on this data: a wider net trained longer at a constant rate overfits the noisy labels and
    # ends up no better than v1; weight decay plus cosine decay is what makes the extra capacity pay off.
    2: _Recipe(
        hidden_sizes=(64, 64),
        epochs=12,
        learning_rate=2e-3,
        batch_size=128,
        weight_decay=5e-2,
        max_steps=None,
        description="improved: two hidden layers, longer schedule with weight and cosine decay",
        cosine_decay=True,
    ),
    3: _Recipe(
        hidden_sizes=(2048, 2048, 1536),
        epochs=1,
        learning_rate=1e-2,
        batch_size=256,
        weight_decay=0.0,
        max_steps=12,
        description=(
            "regression: oversized (~7M parameters), weight normalisation left unfolded (every call "
            "recomputes the weights), learning rate too high, stopped after 12 steps"
        ),
        weight_norm=True,
    ),
}


def train_version(
    version: Literal[1, 2, 3],
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    *,
    seed: int = 0,
) -> TrainedModel:
    """Train one of the three demo model versions and score it on ``holdout``.

    The global torch RNG is forked, not reseeded in place, so training is reproducible for a seed
    without disturbing the caller's random state.
    """
    recipe = _RECIPES.get(version) if isinstance(version, int) and not isinstance(version, bool) else None
    if recipe is None:
        raise ValueError(f"version must be 1, 2 or 3, got {version!r}")
    if TARGET not in train.columns:
        raise ValueError(f"training frame is missing the target column {TARGET!r}")
    if len(train) < 2:
        raise ValueError(f"need at least 2 training rows, got {len(train)}")

    x_train = torch.from_numpy(features_matrix(train))
    y_train = torch.from_numpy(train[TARGET].to_numpy(dtype=np.float32))
    n_rows = x_train.shape[0]

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        shuffle = torch.Generator().manual_seed(seed)
        module = ChurnNet(recipe.hidden_sizes, weight_norm=recipe.weight_norm)
        module.fit_normalization(x_train)
        optimizer = torch.optim.AdamW(
            module.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay
        )
        steps_per_epoch = math.ceil(n_rows / recipe.batch_size)
        total_steps = recipe.epochs * steps_per_epoch
        if recipe.max_steps is not None:
            total_steps = min(total_steps, recipe.max_steps)
        scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
            if recipe.cosine_decay
            else None
        )
        loss_fn = nn.BCEWithLogitsLoss()

        started = time.perf_counter()
        module.train()
        steps = 0
        with _intra_op_threads(_TRAIN_THREADS):
            for _epoch in range(recipe.epochs):
                order = torch.randperm(n_rows, generator=shuffle)
                for start in range(0, n_rows, recipe.batch_size):
                    if recipe.max_steps is not None and steps >= recipe.max_steps:
                        break
                    batch = order[start : start + recipe.batch_size]
                    optimizer.zero_grad(set_to_none=True)
                    loss = loss_fn(module.logits(x_train[batch]), y_train[batch])
                    loss.backward()
                    optimizer.step()
                    if scheduler is not None:
                        scheduler.step()
                    steps += 1
        train_seconds = time.perf_counter() - started
    module.eval()

    metrics = evaluate(module, holdout)
    metrics["train_seconds"] = train_seconds
    params: dict[str, str | int | float] = {
        "version": int(version),
        "description": recipe.description,
        "architecture": "mlp-"
        + "x".join(str(size) for size in recipe.hidden_sizes)
        + ("-weightnorm" if recipe.weight_norm else ""),
        "hidden_sizes": ",".join(str(size) for size in recipe.hidden_sizes),
        "epochs": recipe.epochs,
        "optimizer_steps": steps,
        "learning_rate": recipe.learning_rate,
        "weight_decay": recipe.weight_decay,
        "batch_size": recipe.batch_size,
        "seed": seed,
        "train_rows": n_rows,
        "parameter_count": module.parameter_count(),
    }
    return TrainedModel(module=module, params=params, metrics=metrics)


@contextmanager
def _intra_op_threads(count: int) -> Iterator[None]:
    """Temporarily cap torch's intra-op threads (process-global, so always restored)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(min(count, previous))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def predict_proba(module: nn.Module, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
    """Score a frame in chunks so a very wide model does not materialise huge activations at once."""
    features = torch.from_numpy(features_matrix(frame))
    module.eval()
    chunks: list[torch.Tensor] = []
    with torch.inference_mode():
        for start in range(0, features.shape[0], _EVAL_CHUNK):
            chunks.append(module(features[start : start + _EVAL_CHUNK]))
    if not chunks:
        return np.empty(0, dtype=np.float64)
    probabilities: npt.NDArray[np.float64] = torch.cat(chunks).to(torch.float64).numpy()
    return probabilities


def evaluate(module: nn.Module, frame: pd.DataFrame) -> dict[str, float]:
    """Holdout accuracy (threshold 0.5), ROC AUC and log loss of ``module`` on a labelled frame."""
    if TARGET not in frame.columns:
        raise ValueError(f"frame is missing the target column {TARGET!r}")
    if len(frame) == 0:
        raise ValueError("cannot evaluate on an empty frame")
    labels = frame[TARGET].to_numpy(dtype=np.int64)
    scores = predict_proba(module, frame)
    clipped = np.clip(scores, _PROBABILITY_EPS, 1.0 - _PROBABILITY_EPS)
    log_loss = -float(np.mean(labels * np.log(clipped) + (1 - labels) * np.log1p(-clipped)))
    return {
        "accuracy": float(np.mean((scores >= 0.5) == (labels == 1))),
        "auc": roc_auc(labels, scores),
        "log_loss": log_loss,
    }


def roc_auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """ROC AUC via the Mann-Whitney rank statistic, with tied scores given their average rank.

    Returns NaN when only one class is present, because AUC is undefined there and a monitoring
    window with no churners should not crash the caller.
    """
    y = np.asarray(labels).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape[0]} vs {s.shape[0]}")
    n_pos = int(y.sum())
    n_neg = y.shape[0] - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    sorted_scores = s[order]
    # Average 1-based ranks over runs of equal scores.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [s.shape[0]]))
    average_rank = (starts + ends + 1) / 2.0
    ranks = np.empty_like(s)
    ranks[order] = np.repeat(average_rank, ends - starts)
    rank_sum = float(ranks[y].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
