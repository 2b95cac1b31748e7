"""Latency of two runners at one batch size, measured in alternation so both see the same machine.

The control plane's machine also runs replicas and a router, whose load comes and goes: measuring the
parent for ten seconds and then the variant would credit the variant with a quiet moment. Rounds
alternate parent and variant (ABAB...), each round a fixed time, and the medians over all calls are
compared. Runners are called exactly as a replica calls them (``Runner.run`` on decoded items), so the
figures include what serving pays for the model and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench.serving.codec import Decoded
from workbench.serving.model import Runner


def batch_of(matrix: np.ndarray[Any, Any], rows: int, columns: dict[str, Any] | None) -> Decoded:
    """``rows`` rows of ``matrix`` (repeated when it has fewer) as one decoded request."""
    index = np.arange(rows) % matrix.shape[0]
    return Decoded(
        matrix=np.ascontiguousarray(matrix[index]),
        rows=rows,
        columns={name: values[index] for name, values in columns.items()} if columns is not None else None,
        request_id=None,
        outputs=None,
        parameters={},
    )


def paired_latency(
    runners: Sequence[Runner], item: Decoded, *, rounds: int = 4, round_seconds: float = 0.15
) -> list[dict[str, float]]:
    """p50/p90/p99 (ms) and rows/s of each runner on ``item``, from alternating rounds."""
    samples: list[list[float]] = [[] for _ in runners]
    for runner in runners:  # warm: lazy allocations and first-call paths are not what serving pays
        for _ in range(3):
            runner.run([item])
    for _round in range(rounds):
        for index, runner in enumerate(runners):
            deadline = time.perf_counter() + round_seconds
            calls = 0
            while calls < 3 or time.perf_counter() < deadline:
                started = time.perf_counter()
                runner.run([item])
                samples[index].append(time.perf_counter() - started)
                calls += 1
    return [_summary(times, item.rows) for times in samples]


def _summary(times: list[float], rows: int) -> dict[str, float]:
    array = np.asarray(times) * 1000.0
    mean_s = float(np.mean(times))
    return {
        "p50": round(float(np.percentile(array, 50)), 4),
        "p90": round(float(np.percentile(array, 90)), 4),
        "p99": round(float(np.percentile(array, 99)), 4),
        "calls": float(len(times)),
        "rows_per_s": round(rows / mean_s, 1) if mean_s > 0 else 0.0,
    }
