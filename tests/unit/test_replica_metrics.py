"""The router's merged exposition: every replica's families once each, labelled, and who answered."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from workbench.serving.metrics import ReplicaMetrics
from workbench.serving.replica_metrics import merge


def _replica(rows: int) -> bytes:
    metrics = ReplicaMetrics("churn", "2")
    metrics.batch_size.observe(rows)
    metrics.requests(200, False).inc(3)
    return metrics.exposition()


def _router() -> bytes:
    registry = CollectorRegistry()
    Counter("workbench_router_requests", "Requests", ["endpoint"], registry=registry).labels("churn").inc()
    Histogram("workbench_router_latency_seconds", "Latency", registry=registry).observe(0.01)
    return generate_latest(registry)


def test_each_family_appears_once_with_every_replicas_samples_labelled() -> None:
    text = merge(_router(), {"r-a": _replica(4), "r-b": _replica(16)}).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert text.count("# TYPE workbench_replica_batch_size_rows histogram") == 1
    sums = {
        s.labels["replica"]: s.value
        for s in families["workbench_replica_batch_size_rows"].samples
        if s.name.endswith("_sum")
    }
    assert sums == {"r-a": 4.0, "r-b": 16.0}
    requests = families["workbench_replica_requests"]
    assert requests.type == "counter"
    totals = [s for s in requests.samples if s.name == "workbench_replica_requests_total"]
    assert {(s.labels["replica"], s.labels["endpoint"], s.value) for s in totals} == {
        ("r-a", "churn", 3.0),
        ("r-b", "churn", 3.0),
    }
    assert "workbench_router_requests" in families  # the router's own series, unlabelled, first
    assert "replica" not in families["workbench_router_requests"].samples[0].labels


def test_a_replica_that_did_not_answer_is_reported_down_and_the_rest_still_served() -> None:
    text = merge(_router(), {"r-a": _replica(4), "r-gone": None}).decode()
    up = {
        s.labels["replica"]: s.value
        for f in text_string_to_metric_families(text)
        if f.name == "workbench_replica_up"
        for s in f.samples
    }
    assert up == {"r-a": 1.0, "r-gone": 0.0}
    assert 'replica="r-gone"' not in text.replace('workbench_replica_up{replica="r-gone"}', "")


def test_without_replicas_only_the_up_family_is_added() -> None:
    own = _router()
    text = merge(own, {})
    assert text.startswith(own)
    assert [f.name for f in text_string_to_metric_families(text[len(own) :].decode())] == [
        "workbench_replica_up"
    ]
