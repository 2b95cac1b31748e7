"""The student network of a distillation, and the fitting that makes a network mimic its teacher.

A student must be a whole serving artefact like its teacher: it takes the same raw signature columns,
so it carries its own preprocessing (standardised numerics, one-hot codes for small integer columns),
learned from the rows it is distilled on. Nothing about the teacher's internals is assumed: any model
with numeric inputs and one score per row can be distilled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional

ScoreKind = Literal["probability", "value"]
"""What a model's one output means: a probability in [0, 1] (fitted in logit space) or a plain value."""

#: An integer column with at most this many distinct values in the transfer rows is one-hot encoded.
MAX_CATEGORIES: Final[int] = 32
_EPS: Final[float] = 1e-6


class StudentNet(nn.Module):
    """An MLP over raw signature columns: standardisation and one-hot codes live in buffers."""

    numeric_index: torch.Tensor
    numeric_mean: torch.Tensor
    numeric_std: torch.Tensor
    onehot_columns: torch.Tensor
    onehot_values: torch.Tensor

    def __init__(
        self,
        n_features: int,
        numeric: Sequence[int],
        categories: Mapping[int, Sequence[float]],
        hidden_sizes: Sequence[int],
        kind: ScoreKind,
    ) -> None:
        super().__init__()
        self.n_features = n_features
        self.kind = kind
        self.hidden_sizes = tuple(int(size) for size in hidden_sizes)
        columns = [column for column, codes in categories.items() for _ in codes]
        values = [float(code) for codes in categories.values() for code in codes]
        self.register_buffer("numeric_index", torch.tensor(list(numeric), dtype=torch.long))
        self.register_buffer("numeric_mean", torch.zeros(len(numeric)))
        self.register_buffer("numeric_std", torch.ones(len(numeric)))
        self.register_buffer("onehot_columns", torch.tensor(columns, dtype=torch.long))
        self.register_buffer("onehot_values", torch.tensor(values, dtype=torch.float32))
        layers: list[nn.Module] = []
        width = len(numeric) + len(values)
        for size in self.hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def fit_normalization(self, matrix: npt.NDArray[np.float32]) -> None:
        numeric = torch.from_numpy(matrix).to(torch.float64)[:, self.numeric_index]
        with torch.no_grad():
            self.numeric_mean.copy_(numeric.mean(dim=0).to(torch.float32))
            self.numeric_std.copy_(numeric.std(dim=0, correction=0).clamp_min(_EPS).to(torch.float32))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32)
        numeric = (x[:, self.numeric_index] - self.numeric_mean) / self.numeric_std
        onehot = (torch.round(x[:, self.onehot_columns]) == self.onehot_values).to(torch.float32)
        return torch.cat((numeric, onehot), dim=1)

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """The output before the final squashing: a logit for probabilities, the value itself otherwise."""
        out: torch.Tensor = self.mlp(self.encode(x)).squeeze(-1)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.raw(x)
        return torch.sigmoid(out) if self.kind == "probability" else out


@dataclass(frozen=True)
class FitReport:
    steps: int
    epochs: int
    rows: int
    final_loss: float


def build_student(
    matrix: npt.NDArray[np.float32],
    integer_columns: Sequence[int],
    hidden_sizes: Sequence[int],
    kind: ScoreKind,
) -> StudentNet:
    """A student shaped by the transfer rows: which integer columns are categories, and their codes."""
    categories: dict[int, list[float]] = {}
    for column in integer_columns:
        codes = np.unique(np.round(matrix[:, column]))
        if len(codes) <= MAX_CATEGORIES:
            categories[column] = [float(code) for code in codes]
    numeric = [column for column in range(matrix.shape[1]) if column not in categories]
    student = StudentNet(matrix.shape[1], numeric, categories, hidden_sizes, kind)
    student.fit_normalization(matrix)
    return student


def fit_to_teacher(
    module: nn.Module,
    matrix: npt.NDArray[np.float32],
    teacher_scores: npt.NDArray[np.float32],
    kind: ScoreKind,
    *,
    epochs: int,
    logits: Callable[[torch.Tensor], torch.Tensor] | None = None,
    learning_rate: float = 3e-3,
    batch_size: int = 256,
    seed: int = 0,
) -> FitReport:
    """Fit ``module`` to reproduce the teacher's scores on ``matrix``.

    Probabilities are matched with cross-entropy against the teacher's soft scores (Hinton et al.'s
    distillation at temperature 1): every row says how confident the teacher is, not only which side of
    0.5 it falls on, which is what lets a student learn from a few thousand unlabelled rows. ``logits``
    (the module's pre-sigmoid output, when it has one) keeps that numerically stable; without it the
    module's probabilities are used. Values are matched by mean squared error.
    """
    inputs = torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32))
    targets = torch.from_numpy(np.asarray(teacher_scores, dtype=np.float32).reshape(-1))
    threads = torch.get_num_threads()
    # One thread: the same weights on any machine for a seed (threaded reductions round differently),
    # and small layers train no slower on one.
    torch.set_num_threads(1)
    try:
        return _fit(module, inputs, targets, kind, logits, epochs, learning_rate, batch_size, seed)
    finally:
        torch.set_num_threads(threads)


def _fit(
    module: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    kind: ScoreKind,
    logits: Callable[[torch.Tensor], torch.Tensor] | None,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
) -> FitReport:
    n_rows = inputs.shape[0]
    steps = 0
    loss = torch.tensor(float("nan"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        order_rng = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(module.parameters(), lr=learning_rate)
        total = max(1, epochs * ((n_rows + batch_size - 1) // batch_size))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        module.train()
        for _epoch in range(epochs):
            order = torch.randperm(n_rows, generator=order_rng)
            for start in range(0, n_rows, batch_size):
                batch = order[start : start + batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = _loss(module, logits, inputs[batch], targets[batch], kind)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                scheduler.step()
                steps += 1
        module.eval()
    return FitReport(steps=steps, epochs=epochs, rows=n_rows, final_loss=float(loss.detach()))


def _loss(
    module: nn.Module,
    logits: Callable[[torch.Tensor], torch.Tensor] | None,
    x: torch.Tensor,
    target: torch.Tensor,
    kind: ScoreKind,
) -> torch.Tensor:
    if kind == "value":
        return functional.mse_loss(module(x).reshape(-1), target)
    if logits is not None:
        return functional.binary_cross_entropy_with_logits(logits(x).reshape(-1), target)
    scores = module(x).reshape(-1).clamp(_EPS, 1 - _EPS)
    return functional.binary_cross_entropy(scores, target)
