"""Prometheus metrics of the data plane, one registry per process.

Label children are created once per (endpoint, version) and cached, so recording a request costs a
few microseconds and no dictionary lookups inside prometheus_client.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (
    0.0002,
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ReplicaMetrics:
    def __init__(self, endpoint: str, version: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"endpoint": endpoint, "version": version}
        self._labels = labels
        self._requests = Counter(
            "workbench_replica_requests",
            "Inference requests answered by the replica, by outcome",
            ["endpoint", "version", "status", "shadow"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "workbench_replica_latency_seconds",
            "Time from request received to response ready, in the replica",
            ["endpoint", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        ).labels(**labels)
        self.queue = Histogram(
            "workbench_replica_queue_seconds",
            "Time a request waited for its batch to start",
            ["endpoint", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        ).labels(**labels)
        self.inference = Histogram(
            "workbench_replica_inference_seconds",
            "Forward-pass time of a batch",
            ["endpoint", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        ).labels(**labels)
        self.batch_size = Histogram(
            "workbench_replica_batch_size_rows",
            "Rows per forward pass",
            ["endpoint", "version"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        ).labels(**labels)
        self.rows = Counter(
            "workbench_replica_rows", "Rows predicted", ["endpoint", "version"], registry=self.registry
        ).labels(**labels)
        self._gauges: list[Gauge] = []

    @lru_cache(maxsize=64)  # noqa: B019 - one cache per long-lived process-wide object
    def requests(self, status: int, shadow: bool) -> Counter:
        child: Counter = self._requests.labels(status=str(status), shadow=str(shadow).lower(), **self._labels)
        return child

    def gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge read when scraped (queue depth, prediction-log drops, GPU memory)."""
        gauge = Gauge(name, documentation, ["endpoint", "version"], registry=self.registry)
        gauge.labels(**self._labels).set_function(read)
        self._gauges.append(gauge)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
