"""Model classes the benchmarks register, importable by replica processes (``benchmarks/`` on PYTHONPATH).

A torch module registered from memory is pickled by reference to its class, so the replica that loads
it must be able to import this module under the same name (``_models``).
"""

from __future__ import annotations

import os

import torch


class TriggerNet(torch.nn.Module):
    """A candidate that behaves like ``inner`` until ``trigger`` exists, then raises on every real batch.

    All-zero batches (the replica's warm-up) always pass, so the candidate deploys, passes its health
    gate and serves correctly; creating the trigger file is the breach, at an instant the benchmark
    chooses and records.
    """

    def __init__(self, inner: torch.nn.Module, trigger: str) -> None:
        super().__init__()
        self.inner = inner
        self.trigger = trigger

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(x.any()) and os.path.exists(self.trigger):
            raise RuntimeError(f"injected failure: {self.trigger} exists")
        out: torch.Tensor = self.inner(x)
        return out
