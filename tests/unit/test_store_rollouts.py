"""Rollouts in the state store, on SQLite and PostgreSQL: one active per endpoint, checked transitions,
optimistic concurrency, the event history, every tick's analysis, and state that a new process reads
back unchanged."""

from __future__ import annotations

import pytest

from workbench.errors import ConflictError, NotFoundError, ValidationError
from workbench.rollouts.phases import Phase
from workbench.store import Database
from workbench.store.rollouts import RolloutRepository


def _create(db: Database, repo: RolloutRepository, endpoint: str = "churn") -> str:
    with db.write() as connection:
        record = repo.create(
            connection,
            endpoint=endpoint,
            strategy="canary",
            spec={"steps": [5, 25, 50, 100]},
            stable=("churn", 1),
            candidate=("churn", 2),
            actor="alice",
            reason="v2 is better",
            now=1000.0,
        )
    return record.id


def test_create_get_and_one_active_rollout_per_endpoint(db: Database) -> None:
    repo = RolloutRepository()
    rollout_id = _create(db, repo)
    with db.read() as connection:
        record = repo.get(connection, rollout_id)
    assert (record.phase, record.step_index, record.revision) == (Phase.PENDING, 0, 1)
    assert (record.stable_version, record.candidate_version) == (1, 2)
    assert record.spec == {"steps": [5, 25, 50, 100]}
    with pytest.raises(ConflictError, match="already has an active rollout"):
        _create(db, repo)
    _create(db, repo, endpoint="other")  # other endpoints are independent
    with db.read() as connection:
        assert len(repo.find(connection, active_only=True)) == 2
        with pytest.raises(NotFoundError):
            repo.get(connection, "nope")


def test_transitions_are_checked_recorded_and_free_the_endpoint_when_terminal(db: Database) -> None:
    repo = RolloutRepository()
    rollout_id = _create(db, repo)
    with db.write() as connection:
        record = repo.get(connection, rollout_id)
        record = repo.transition(connection, record, Phase.PROGRESSING, message="step 0: 5%", now=1001.0)
        record = repo.transition(
            connection,
            record,
            Phase.PROGRESSING,
            step_index=1,
            message="step 1: 25%",
            evidence={"verdict": "pass"},
            now=1060.0,
        )
        assert record.step_started_at == 1060.0
        with pytest.raises(ConflictError, match="cannot go to 'failed'"):
            repo.transition(connection, record, Phase.FAILED, message="skip")
        record = repo.transition(connection, record, Phase.ROLLED_BACK, message="error rate", now=1070.0)
    with db.read() as connection:
        events = repo.events(connection, rollout_id)
        assert repo.active_for(connection, "churn") is None
    assert [(e.phase, e.step_index) for e in events] == [
        (Phase.PENDING, 0),
        (Phase.PROGRESSING, 0),
        (Phase.PROGRESSING, 1),
        (Phase.ROLLED_BACK, 1),
    ]
    assert events[2].evidence == {"verdict": "pass"}
    _create(db, repo)  # the endpoint is free again


def test_a_stale_reader_cannot_overwrite_a_newer_transition(db: Database) -> None:
    repo = RolloutRepository()
    rollout_id = _create(db, repo)
    with db.read() as connection:
        stale = repo.get(connection, rollout_id)
    with db.write() as connection:
        repo.transition(connection, repo.get(connection, rollout_id), Phase.PROGRESSING, message="controller")
    with pytest.raises(ConflictError, match="changed meanwhile"), db.write() as connection:
        repo.transition(connection, stale, Phase.ROLLED_BACK, message="late abort")
    with db.read() as connection:
        assert repo.get(connection, rollout_id).phase == Phase.PROGRESSING
        assert [e.message for e in repo.events(connection, rollout_id)][-1] == "controller"


def test_state_survives_a_new_connection_as_after_a_restart(state_url: str, db: Database) -> None:
    repo = RolloutRepository()
    rollout_id = _create(db, repo)
    with db.write() as connection:
        repo.transition(
            connection, repo.get(connection, rollout_id), Phase.PROGRESSING, step_index=2, message="50%"
        )
    db.dispose()
    fresh = Database(state_url)
    with fresh.read() as connection:
        record = repo.get(connection, rollout_id)
    assert (record.phase, record.step_index) == (Phase.PROGRESSING, 2)
    fresh.dispose()


def _evidence(step: int, estimate: float, low: float, high: float) -> dict[str, object]:
    check = {"name": "errors", "kind": "error_rate", "verdict": "inconclusive", "estimate": estimate}
    check |= {"low": low, "high": high, "threshold": 0.05, "samples": [120, 40], "reason": "", "gating": True}
    return {"verdict": "inconclusive", "step": step, "weight": 25.0, "elapsed_s": 3.0, "metrics": [check]}


def test_every_ticks_analysis_is_kept_apart_from_the_events_and_read_with_a_cursor(db: Database) -> None:
    repo = RolloutRepository()
    rollout_id = _create(db, repo)
    other = _create(db, repo, endpoint="other")
    ticks = [(0, 0.02, 0.0, 0.4), (0, 0.01, 0.0, 0.2), (1, 0.012, 0.001, float("inf"))]
    with db.write() as connection:
        ids = [
            repo.add_analysis(
                connection,
                rollout_id,
                at=1001.0 + i,
                step_index=step,
                weight=25.0,
                decision="wait",
                reason=f"tick {i}",
                evidence=_evidence(step, estimate, low, high),
            )
            for i, (step, estimate, low, high) in enumerate(ticks)
        ]
        repo.add_analysis(
            connection, other, at=1002.5, step_index=0, weight=None, decision="wait", reason="x", evidence={}
        )
    assert ids == sorted(ids)
    with db.read() as connection:
        every = repo.analyses(connection, rollout_id)
        newer = repo.analyses(connection, rollout_id, after_id=ids[0])
        first = repo.analyses(connection, rollout_id, limit=1)
        latest = repo.latest_analysis(connection, rollout_id)
        events = repo.events(connection, rollout_id)
        with pytest.raises(ValidationError, match="limit"):
            repo.analyses(connection, rollout_id, limit=0)
        assert repo.analyses(connection, rollout_id, after_id=ids[-1]) == []
        assert repo.analyses(connection, "nope") == []
        assert repo.latest_analysis(connection, "nope") is None
    assert [a.id for a in every] == ids  # oldest first, only this rollout's
    assert [a.reason for a in newer] == ["tick 1", "tick 2"]
    assert [a.id for a in first] == ids[:1]
    assert latest == every[-1]
    assert (latest.rollout_id, latest.step_index, latest.weight, latest.decision) == (
        rollout_id,
        1,
        25.0,
        "wait",
    )
    assert latest.at.timestamp() == 1003.0
    check = every[0].evidence["metrics"][0]
    assert (check["estimate"], check["low"], check["high"], check["samples"]) == (0.02, 0.0, 0.4, [120, 40])
    assert latest.evidence["metrics"][0]["high"] is None  # an unbounded side is stored as JSON null
    assert [e.kind for e in events] == ["created"]  # ticks are not events
