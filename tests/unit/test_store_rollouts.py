"""Rollouts in the state store, on SQLite and PostgreSQL: one active per endpoint, checked transitions,
optimistic concurrency, the event history, and state that a new process reads back unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from workbench.errors import ConflictError, NotFoundError
from workbench.rollouts.phases import Phase
from workbench.store import Database, migrate
from workbench.store.rollouts import RolloutRepository


@pytest.fixture
def db(state_url: str) -> Iterator[Database]:
    database = Database(state_url)
    migrate(database)
    yield database
    database.dispose()


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
