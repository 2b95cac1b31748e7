"""The contract between retrain-and-canary and a user's training code.

A training entry point is ``module:function``. It is called as ``function(frame, label=..., seed=...)``
with the labelled training rows, and returns a :class:`TrainingResult`: the model to register (whatever
``Client.register_model`` accepts) and a way to score rows, so the runbook can judge the candidate
against the champion on the same holdout before anything is registered.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class TrainingResult:
    model: Any
    predict: Callable[[Any], npt.NDArray[np.float64]]
    features: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    description: str | None = None


def load_entry_point(spec: str) -> Callable[..., TrainingResult]:
    """``package.module:function`` → the function; a clear error for anything else."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"a training entry point is 'module:function', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import the training module {module_name!r}: {exc}") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ValueError(f"{module_name!r} has no callable {attribute!r}")
    return function  # type: ignore[no-any-return]
