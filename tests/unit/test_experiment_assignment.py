"""Which unit saw which variant: read from prediction-log records, the router's salted sticky choice,
the routing key carried through a batch's log line, and the store's baselines and looks (issue 13)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

from workbench.experiments.assignment import assignments
from workbench.experiments.decide import decide
from workbench.experiments.statistics import Moments
from workbench.records.experiments import ExperimentState
from workbench.serving.routes import VersionRoute, choose_sticky
from workbench.specs.experiment import ExperimentSpec
from workbench.store import Database
from workbench.store.experiments import ExperimentStore
from workbench.telemetry.batch_record import BatchRecord, expand

HEAD = {
    "endpoint": "shop",
    "model": "churn",
    "version": 2,
    "replica": "r0",
    "inference_ms": 1.0,
    "batch_size": 2,
}


def _spec(**changes: Any) -> ExperimentSpec:
    base: dict[str, Any] = {
        "name": "checkout",
        "endpoint": "shop",
        "variants": [
            {"name": "control", "model": "churn", "version": 1, "weight": 50},
            {"name": "treatment", "model": "churn", "version": 2, "weight": 50},
        ],
        "primary": {"name": "converted", "kind": "binary"},
    }
    base.update(changes)
    return ExperimentSpec.model_validate(base)


def _record(version: int, key: str | None, ts: float = 100.0, **extra: Any) -> dict[str, Any]:
    return {
        "endpoint": "shop",
        "model": "churn",
        "version": version,
        "ts": ts,
        "request_id": f"r-{key}-{ts}",
        "key": key,
        "status": 200,
        "shadow": False,
        **extra,
    }


def test_records_become_assignments_only_for_live_traffic_of_a_variant_since_the_start() -> None:
    records = [
        _record(1, "alice"),
        _record(2, "bob"),
        _record(2, "carol", shadow=True),  # a shadow copy exposed nobody
        _record(2, "dave", ts=10.0),  # before the experiment ran
        _record(3, "erin"),  # a version that is no variant (an explicit x-workbench-version)
        _record(1, None),  # no key: not a unit of a by-key experiment
    ]
    found = assignments(_spec(), records, since=50.0)
    assert found.units == [("alice", "control", 100.0), ("bob", "treatment", 100.0)]
    assert (found.elsewhere, found.without_key) == (1, 1)
    by_request = assignments(_spec(unit="request"), records, since=50.0)
    assert [unit for unit, _, _ in by_request.units] == ["r-alice-100.0", "r-bob-100.0", "r-None-100.0"]


def test_the_experiments_salt_gives_a_fresh_split_that_stays_sticky_and_weighted() -> None:
    versions = (VersionRoute(model="m", version=1, weight=50), VersionRoute(model="m", version=2, weight=50))
    keys = [f"user-{i}" for i in range(6000)]
    unsalted = {k: choose_sticky(versions, k).version for k in keys}  # type: ignore[union-attr]
    first = {k: choose_sticky(versions, k, salt="experiment:a").version for k in keys}  # type: ignore[union-attr]
    second = {k: choose_sticky(versions, k, salt="experiment:b").version for k in keys}  # type: ignore[union-attr]
    assert first == {k: choose_sticky(versions, k, salt="experiment:a").version for k in keys}  # type: ignore[union-attr]
    assert unsalted == {k: choose_sticky(versions, k, salt="").version for k in keys}  # type: ignore[union-attr]
    for split in (first, second):
        assert Counter(split.values())[2] / len(keys) == pytest.approx(0.5, abs=0.03)
    # Independent splits: being treated in one experiment says nothing about the next (about half overlap).
    treated_again = sum(1 for k in keys if first[k] == 2 and second[k] == 2) / sum(
        v == 2 for v in first.values()
    )
    assert treated_again == pytest.approx(0.5, abs=0.04)


def test_a_batch_line_carries_each_requests_routing_key_and_leaves_it_out_when_none_had_one() -> None:
    line = BatchRecord(HEAD, 2, sampled=False)
    assert line.add(1.0, "a", 200, False, 1, 1.0, 0.1, None, None, "alice") is None
    complete = line.add(1.1, "b", 200, False, 1, 1.0, 0.1, None, None, None)
    assert complete is not None
    assert complete["requests"]["key"] == ["alice", None]
    assert [r["key"] for r in expand(complete)] == ["alice", None]
    keyless = BatchRecord(HEAD, 1, sampled=False).add(1.0, "c", 200, False, 1, 1.0, 0.1, None, None)
    assert keyless is not None
    assert "key" not in keyless["requests"]
    assert "key" not in next(expand(keyless))
    broken = {**complete, "requests": {**complete["requests"], "key": ["only-one"]}}
    assert list(expand(broken)) == []  # a line that does not hold together is skipped whole


def test_watching_the_sample_ratio_alarms_on_the_sequential_test_not_on_a_chi_square_read_at_every_look() -> (
    None
):
    rng = np.random.default_rng(3)
    outcomes = {"converted": {v: Moments.of(rng.random(9000) < 0.1) for v in ("control", "treatment")}}
    # 10,250 / 9,750: chi-square p = 0.0004 read at this look, sequential p = 0.2.
    watched = decide(_spec(), {"control": 10_250, "treatment": 9_750}, outcomes)
    assert watched.verdict != "srm"
    assert watched.sample_ratio.p_value < 0.001
    assert not watched.sample_ratio.alarm
    planned = decide(
        _spec(method="fixed", planned_units=9000), {"control": 10_250, "treatment": 9_750}, outcomes
    )
    assert planned.verdict == "srm"  # the planned test's one look may use the chi-square
    assert decide(_spec(), {"control": 10_400, "treatment": 9_600}, outcomes).verdict == "srm"


def test_the_store_keeps_the_baseline_of_the_first_start_and_every_look(db: Database) -> None:
    store = ExperimentStore()
    baseline = [{"model": "churn", "version": 1, "weight": 100.0}]
    with db.write() as connection:
        store.create(connection, _spec(), actor="alice")
        running = store.move(connection, "checkout", ExperimentState.RUNNING, baseline=baseline)
        paused = store.move(connection, "checkout", ExperimentState.PAUSED)
        resumed = store.move(
            connection,
            "checkout",
            ExperimentState.RUNNING,
            baseline=[{"model": "x", "version": 9, "weight": 100}],
        )
    assert running.baseline == baseline
    assert resumed.baseline == baseline
    assert running.running_since is not None
    assert paused.running_since is None
    assert resumed.running_since is not None
    assert resumed.running_since >= running.running_since
    assert resumed.started_at == running.started_at
    with db.write() as connection:
        store.add_look(connection, "checkout", ts=2.0, units=10, decision={"verdict": "continue"})
        store.add_look(connection, "checkout", ts=1.0, units=5, decision={"verdict": "continue"})
        store.add_look(
            connection, "checkout", ts=2.0, units=10, decision={"verdict": "continue"}
        )  # kept once
    with db.read() as connection:
        looks = store.looks(connection, "checkout")
        assert [look["units"] for look in looks] == [5, 10]
        assert [look["units"] for look in store.looks(connection, "checkout", limit=1)] == [10]
