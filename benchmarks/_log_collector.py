"""Where a Ray replica's prediction log should be written: by the replica itself, or by a collector actor.

Run by `ray_serving.py` on the cluster it already drives. Both write the same batch lines (16 requests
with their inputs and outputs, the shape the replicas log under load) through `PredictionLogWriter`; what
differs is the hop. CPU per line is counted in every process involved: the replica's side (here, the
calling process) and, for the collector, the actor's process too.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from workbench.telemetry import PredictionLogWriter

REQUESTS_PER_LINE = 16


def batch_line(index: int) -> dict[str, Any]:
    columns = ("tenure_months", "monthly_charges", "support_calls", "contract_type", "sessions_30d")
    return {
        "endpoint": "bench",
        "model": "churn",
        "version": 1,
        "replica": "r0",
        "inference_ms": 0.4,
        "batch_size": REQUESTS_PER_LINE,
        "ts": [time.time()] * REQUESTS_PER_LINE,
        "request_id": [f"{index}-{i}" for i in range(REQUESTS_PER_LINE)],
        "status": [200] * REQUESTS_PER_LINE,
        "rows": [1] * REQUESTS_PER_LINE,
        "latency_ms": [1.5] * REQUESTS_PER_LINE,
        "inputs": {c: [float(i) for i in range(REQUESTS_PER_LINE)] for c in columns},
        "outputs": {"score": [0.25] * REQUESTS_PER_LINE},
    }


def in_the_replica(lines: int) -> float:
    """CPU µs per line, writer thread included, when the replica writes its own segments."""
    directory = Path(tempfile.mkdtemp(prefix="wb-log-"))
    records = [batch_line(i) for i in range(lines)]
    started = time.process_time()
    writer = PredictionLogWriter(directory, writer_id="replica")
    writer.start()
    for record in records:
        writer.log(record)
    writer.close()
    return (time.process_time() - started) / lines * 1e6


def through_a_collector(lines: int) -> tuple[float, float]:
    """CPU µs per line on the replica's side and in the collector actor, fire-and-forget calls."""
    import ray

    @ray.remote(num_cpus=0)
    class Collector:
        def __init__(self, directory: str) -> None:
            self.writer = PredictionLogWriter(Path(directory), writer_id="collector")
            self.writer.start()

        def pid(self) -> int:
            return os.getpid()

        def append(self, record: dict[str, Any]) -> None:
            self.writer.log(record)

        def close(self) -> None:
            self.writer.close()

    collector = Collector.remote(tempfile.mkdtemp(prefix="wb-log-"))  # type: ignore[attr-defined]
    pid = ray.get(collector.pid.remote())
    actor = psutil.Process(pid)
    records = [batch_line(i) for i in range(lines)]
    before = actor.cpu_times()
    started = time.process_time()
    for record in records:
        collector.append.remote(record)
    caller = time.process_time() - started
    ray.get(collector.close.remote())
    after = actor.cpu_times()
    ray.kill(collector)
    actor_cpu = (after.user - before.user) + (after.system - before.system)
    return caller / lines * 1e6, actor_cpu / lines * 1e6
