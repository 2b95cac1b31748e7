"""How fast the machine was when a test run ended: a fixed workload timed, so that suite times from
different runs can be compared. This machine's speed varies a lot between hours (a batch-1 forward of
the demo's MLP: 0.027 ms in the serving benchmark of 2026-12-06, 0.041 ms in its re-run, 0.048 ms
timed alone on 2026-12-07), and the suite's time with it; a budget judged on one run says little
without this figure beside it."""

from __future__ import annotations

import statistics
import time
from typing import Any


def _python_loop_ms() -> float:
    """Pure-interpreter work: what pytest, the control planes and the CLI mostly do."""
    started = time.perf_counter()
    total = 0
    for i in range(1_000_000):
        total += i % 7
    assert total > 0
    return (time.perf_counter() - started) * 1000


def _torch_forward_us() -> float:
    """A batch-1 forward of a fixed 20-32-16-1 MLP on one thread: what a replica does per request."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        module = torch.nn.Sequential(
            torch.nn.Linear(20, 32),
            torch.nn.ReLU(),
            torch.nn.Linear(32, 16),
            torch.nn.ReLU(),
            torch.nn.Linear(16, 1),
        ).eval()
        x = torch.zeros(1, 20)
        samples = []
        with torch.inference_mode():
            for _ in range(200):
                module(x)
            for _ in range(2000):
                started = time.perf_counter()
                module(x)
                samples.append(time.perf_counter() - started)
        return statistics.median(samples) * 1e6
    finally:
        torch.set_num_threads(previous)


def measure() -> dict[str, Any]:
    """Medians of repeats, so one descheduling does not make the figure."""
    return {
        "python_loop_ms": round(statistics.median(_python_loop_ms() for _ in range(5)), 1),
        "torch_forward_us": round(_torch_forward_us(), 1),
        "at": time.time(),
    }
