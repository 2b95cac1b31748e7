"""The experiments store on SQLite and PostgreSQL: a unit keeps its first variant, an outcome is joined
once, the lifecycle refuses impossible moves, and the per-variant sums equal numpy's (issue 13)."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest

from workbench.errors import ConflictError, NotFoundError, ValidationError
from workbench.experiments.decide import decision_dict
from workbench.experiments.looks import look
from workbench.experiments.statistics import Moments
from workbench.records.experiments import ExperimentState
from workbench.specs.experiment import ExperimentSpec
from workbench.store import Database
from workbench.store.experiments import ExperimentStore, Outcome

SPEC: dict[str, Any] = {
    "name": "checkout",
    "endpoint": "churn",
    "variants": [
        {"name": "control", "model": "churn", "version": 1, "weight": 50},
        {"name": "candidate", "model": "churn", "version": 2, "weight": 50},
    ],
    "primary": {"name": "revenue", "kind": "continuous"},
    "guardrails": [{"name": "latency", "kind": "continuous", "better": "lower"}],
    "covariate": True,
}


def test_the_lifecycle_moves_only_where_it_may(db: Database) -> None:
    store = ExperimentStore()
    with db.write() as connection:
        created = store.create(connection, ExperimentSpec.model_validate(SPEC), actor="alice")
    assert created.state == ExperimentState.DRAFT
    with db.write() as connection, pytest.raises(ConflictError, match="already exists"):
        store.create(connection, ExperimentSpec.model_validate(SPEC), actor="bob")
    with db.write() as connection:
        running = store.move(connection, "checkout", ExperimentState.RUNNING, expected_revision=1)
    assert running.started_at is not None
    with db.write() as connection, pytest.raises(ConflictError, match="changed since it was read"):
        store.move(connection, "checkout", ExperimentState.PAUSED, expected_revision=1)
    with db.write() as connection:
        ended = store.move(connection, "checkout", ExperimentState.CONCLUDED, decision={"verdict": "winner"})
    assert ended.decision == {"verdict": "winner"}
    assert ended.ended_at is not None
    with db.write() as connection, pytest.raises(ConflictError, match="cannot be running"):
        store.move(connection, "checkout", ExperimentState.RUNNING)
    with db.read() as connection, pytest.raises(NotFoundError):
        store.get(connection, "nope")
    with db.read() as connection:
        assert [r.name for r in store.find(connection, endpoint="churn")] == ["checkout"]
        assert store.find(connection, state=ExperimentState.RUNNING) == []


def test_a_unit_keeps_its_first_variant_and_an_outcome_is_joined_once(db: Database) -> None:
    store = ExperimentStore()
    with db.write() as connection:
        record = store.create(connection, ExperimentSpec.model_validate(SPEC), actor="alice")
        first = store.assign(connection, "checkout", [("u1", "control", 1.0), ("u2", "candidate", 1.0)])
        again = store.assign(connection, "checkout", [("u1", "candidate", 2.0), ("u3", "candidate", 2.0)])
    assert first == {"u1": "control", "u2": "candidate"}
    assert again == {"u1": "control", "u3": "candidate"}  # u1 stays where it was first sent
    with db.write() as connection:
        result = store.add_outcomes(
            connection,
            record,
            [
                Outcome("u1", "revenue", 10.0, covariate=8.0),
                Outcome("u1", "revenue", 99.0),  # a retried webhook: the first value stands
                Outcome("u2", "revenue", 12.0, covariate=9.0),
                Outcome("ghost", "revenue", 1.0),
            ],
        )
    assert (result.joined, result.repeated, result.unassigned) == (2, 1, ["ghost"])
    with db.read() as connection:
        assert store.assigned_counts(connection, "checkout") == {"control": 1, "candidate": 2}
        moments = store.moments(connection, "checkout", "revenue")
    assert moments["control"] == Moments(1, 10.0, 100.0, 8.0, 64.0, 80.0)
    assert moments["candidate"].total == 12.0
    with db.write() as connection, pytest.raises(ValidationError, match="no metric 'clicks'"):
        store.add_outcomes(connection, record, [Outcome("u1", "clicks", 1.0)])


def test_the_sums_equal_numpys_moments(db: Database) -> None:
    store = ExperimentStore()
    rng = np.random.default_rng(3)
    y, x = rng.normal(20, 5, 400), rng.normal(15, 4, 400)
    arms = np.where(rng.random(400) < 0.5, "control", "candidate")
    with db.write() as connection:
        record = store.create(connection, ExperimentSpec.model_validate(SPEC), actor="alice")
        store.assign(connection, "checkout", [(f"u{i}", str(arms[i]), 1.0) for i in range(400)])
        store.add_outcomes(
            connection, record, [Outcome(f"u{i}", "revenue", float(y[i]), float(x[i])) for i in range(400)]
        )
    with db.read() as connection:
        stored = store.moments(connection, "checkout", "revenue")
    for arm in ("control", "candidate"):
        expected = Moments.of(y[arms == arm], covariate=x[arms == arm])
        assert stored[arm].n == expected.n
        assert stored[arm].variance == pytest.approx(expected.variance, rel=1e-9)
        assert stored[arm].covariance == pytest.approx(expected.covariance, rel=1e-9)


def test_a_look_judges_what_the_store_holds_and_its_decision_is_kept_as_json(db: Database) -> None:
    store = ExperimentStore()
    spec = ExperimentSpec.model_validate({**SPEC, "covariate": False, "guardrails": []})
    rng = np.random.default_rng(12)
    arms = np.where(rng.random(4000) < 0.5, "control", "candidate")
    revenue = np.where(arms == "candidate", 1.0, 0.0) + rng.normal(20, 5, 4000)
    with db.write() as connection:
        record = store.create(connection, spec, actor="alice")
        store.move(connection, "checkout", ExperimentState.RUNNING)
        store.assign(connection, "checkout", [(f"u{i}", str(arms[i]), 1.0) for i in range(4000)])
        store.add_outcomes(
            connection, record, [Outcome(f"u{i}", "revenue", float(revenue[i])) for i in range(4000)]
        )
    with db.read() as connection:
        decision = look(store, connection, "checkout")
    assert decision.verdict == "winner"
    assert decision.winner == "candidate"
    stored = decision_dict(decision, at=time.time())
    json.dumps(stored, allow_nan=False)  # strict JSON: no NaN reaches the store or a client
    with db.write() as connection:
        ended = store.move(connection, "checkout", ExperimentState.CONCLUDED, decision=stored)
    assert ended.decision is not None
    assert ended.decision["verdict"] == "winner"
    assert ended.decision["primary"][0]["variant"] == "candidate"


def test_the_sample_ratio_counts_settled_units_so_a_lagging_log_raises_no_alarm(db: Database) -> None:
    """One variant's newest requests counted before another's (their logs are read one after the
    other) looked like a mismatch; units of the last SETTLE_S seconds do not count in the check."""
    from workbench.experiments.looks import SETTLE_S

    store = ExperimentStore()
    spec = ExperimentSpec.model_validate({**SPEC, "covariate": False, "guardrails": []})
    now = 10_000.0
    with db.write() as connection:
        store.create(connection, spec, actor="alice")
        settled = [(f"s{i}", "control" if i % 2 else "candidate", now - 60.0) for i in range(2000)]
        store.assign(connection, "checkout", settled)
        # The last second: the control's log has been read, the candidate's not yet.
        store.assign(connection, "checkout", [(f"c{i}", "control", now - 1.0) for i in range(600)])
    with db.read() as connection:
        assert store.assigned_counts(connection, "checkout") == {"control": 1600, "candidate": 1000}
        decision = look(store, connection, "checkout", now=now)
        assert decision.verdict != "srm"
        assert decision.sample_ratio.counts == (1000, 1000)
        later = look(store, connection, "checkout", now=now + SETTLE_S)
        assert later.verdict == "srm"  # still lopsided once settled: then it is a real mismatch
