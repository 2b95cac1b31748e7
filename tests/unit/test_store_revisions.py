"""Endpoint revisions and rejected versions in the state store, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from workbench.revisions import RevisionCause
from workbench.specs.endpoint import EndpointSpec
from workbench.store import Database, EndpointRepository, migrate
from workbench.store.migrations import MIGRATIONS
from workbench.store.revisions import RejectionRepository, RevisionRepository


def _spec(version: int, name: str = "churn") -> EndpointSpec:
    return EndpointSpec(name=name, routes=[{"model": "churn", "version": version, "weight": 100}])


def test_revisions_append_and_read_back_oldest_first_with_their_links(db: Database) -> None:
    repo = RevisionRepository()
    with db.write() as connection:
        repo.append(
            connection, spec=_spec(1), revision=1, cause=RevisionCause.DEPLOY, actor="alice", reason=None
        )
        repo.append(
            connection,
            spec=_spec(2),
            revision=2,
            cause=RevisionCause.PROMOTE,
            actor="rollout-controller",
            reason="all checks passed",
            rollout_id="r1",
            runbook_run_id="run-7",
            alert="churn-drift",
            restores=None,
            audit_event_id=42,
        )
        repo.append(
            connection, spec=_spec(9, "other"), revision=1, cause=RevisionCause.EDIT, actor="x", reason=None
        )
    with db.read() as connection:
        history = repo.history(connection, "churn")
        newest = repo.history(connection, "churn", limit=1)
        assert repo.latest_number(connection, "churn") == 2
        assert repo.latest_number(connection, "never") == 0
    assert [r.revision for r in history] == [1, 2]
    assert [r.revision for r in newest] == [2]
    promoted = history[1]
    assert promoted.cause is RevisionCause.PROMOTE
    assert (promoted.rollout_id, promoted.runbook_run_id, promoted.alert, promoted.audit_event_id) == (
        "r1",
        "run-7",
        "churn-drift",
        42,
    )
    assert promoted.spec == _spec(2)


def test_revisions_are_immutable_in_the_database(db: Database) -> None:
    repo = RevisionRepository()
    with db.write() as connection:
        repo.append(connection, spec=_spec(1), revision=1, cause=RevisionCause.DEPLOY, actor="a", reason=None)
    for statement in (
        "UPDATE endpoint_revisions SET actor = 'mallory'",
        "DELETE FROM endpoint_revisions",
    ):
        with pytest.raises(DBAPIError, match="append-only"), db.write() as connection:
            connection.execute(text(statement))
    with db.read() as connection:
        assert [r.actor for r in repo.history(connection, "churn")] == ["a"]


def test_one_revision_number_per_endpoint(db: Database) -> None:
    repo = RevisionRepository()
    with db.write() as connection:
        repo.append(connection, spec=_spec(1), revision=1, cause=RevisionCause.DEPLOY, actor="a", reason=None)
    with pytest.raises(DBAPIError), db.write() as connection:
        repo.append(connection, spec=_spec(2), revision=1, cause=RevisionCause.DEPLOY, actor="a", reason=None)


def test_rejections_mark_refresh_list_and_clear(db: Database) -> None:
    repo = RejectionRepository()
    with db.write() as connection:
        repo.mark(
            connection,
            endpoint="churn",
            model="churn",
            version=3,
            rollout_id="r2",
            actor="rollout-controller",
            reason="latency_p95 failed",
            evidence={"latency_p95": {"verdict": "FAIL"}},
        )
        again = repo.mark(
            connection,
            endpoint="churn",
            model="churn",
            version=3,
            rollout_id="r3",
            actor="rollout-controller",
            reason="error_rate failed",
        )
    assert again.rollout_id == "r3"
    with db.read() as connection:
        listed = repo.list(connection, "churn")
        assert repo.get(connection, "churn", "churn", 3) == listed[0]
        assert repo.get(connection, "churn", "churn", 2) is None
        assert repo.list(connection, "other") == []
    assert [(r.version, r.rollout_id, r.reason) for r in listed] == [(3, "r3", "error_rate failed")]
    with db.write() as connection:
        assert repo.clear(connection, endpoint="churn", model="churn", version=3)
        assert not repo.clear(connection, endpoint="churn", model="churn", version=3)


def test_migration_5_gives_existing_endpoints_their_first_revision(state_url: str) -> None:
    database = Database(state_url)
    try:
        migrate(database, tuple(m for m in MIGRATIONS if m.version < 5))
        with database.write() as connection:
            EndpointRepository().create(connection, _spec(4))
        migrate(database)
        with database.read() as connection:
            history = RevisionRepository().history(connection, "churn")
        assert [(r.revision, r.cause, r.actor, r.spec) for r in history] == [
            (1, RevisionCause.EDIT, "migration", _spec(4))
        ]
    finally:
        database.dispose()
