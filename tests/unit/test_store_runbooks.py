"""Runbook runs, endpoint locks and schedules in the state store, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from workbench.errors import ConflictError, NotFoundError
from workbench.specs.runbook import RunStatus, ScheduleSpec, Trigger, TriggerKind
from workbench.store import Database
from workbench.store.runbooks import FailedCell, RunbookRepository


def _run(db: Database, repo: RunbookRepository, run_id: str, endpoint: str | None = "churn") -> None:
    with db.write() as connection:
        if endpoint is not None:
            repo.acquire_lock(connection, endpoint, run_id)
        repo.create_run(
            connection,
            run_id=run_id,
            runbook="rollback",
            parameters={"endpoint": endpoint, "n": 3},
            trigger=Trigger(kind=TriggerKind.ALERT, rule="errors", alert_event=7),
            actor="alert:errors",
            endpoint=endpoint,
            timeout_s=60.0,
            archive_dir=f"/runs/{run_id}",
        )


def test_a_run_round_trips_and_ends_once(db: Database) -> None:
    repo = RunbookRepository()
    _run(db, repo, "r1")
    with db.read() as connection:
        record = repo.get_run(connection, "r1")
    assert record.status == RunStatus.RUNNING
    assert record.parameters == {"endpoint": "churn", "n": 3}
    assert record.trigger.rule == "errors"
    assert record.trigger.alert_event == 7
    cell = FailedCell(index=1, tags=["validate"], source="require(...)", ename="ParameterError", evalue="bad")
    with db.write() as connection:
        ended, changed = repo.finish_run(
            connection,
            "r1",
            status=RunStatus.FAILED,
            summary=None,
            error="ParameterError: bad",
            failed_cell=cell,
        )
        # A second ending (a cancel racing a failure) never overwrites the first.
        again, changed_again = repo.finish_run(
            connection, "r1", status=RunStatus.CANCELLED, summary={"x": 1}, error="late", failed_cell=None
        )
    assert (changed, changed_again) == (True, False)
    assert ended.status == RunStatus.FAILED
    assert again.status == RunStatus.FAILED
    assert again.error == "ParameterError: bad"
    assert again.failed_cell == cell
    assert again.duration_s is not None
    with db.read() as connection:
        assert [r.id for r in repo.list_runs(connection, status=RunStatus.FAILED)] == ["r1"]
        assert repo.list_runs(connection, status=RunStatus.RUNNING) == []
        with pytest.raises(NotFoundError):
            repo.get_run(connection, "nope")


def test_one_run_holds_an_endpoint_and_a_refused_run_leaves_nothing(db: Database) -> None:
    repo = RunbookRepository()
    _run(db, repo, "r1")
    with pytest.raises(ConflictError, match="being changed by runbook run r1"):
        _run(db, repo, "r2")
    _run(db, repo, "r3", endpoint="other")  # another endpoint is free
    with db.read() as connection:
        assert {r.id for r in repo.list_runs(connection)} == {"r1", "r3"}  # r2 was rolled back whole
        assert repo.lock_holder(connection, "churn") == "r1"
    with db.write() as connection:
        repo.release_lock(connection, "churn", "r2")  # not the holder: no effect
        assert repo.lock_holder(connection, "churn") == "r1"
        repo.release_lock(connection, "churn", "r1")
    _run(db, repo, "r4")


def test_schedules_come_due_and_advance(db: Database) -> None:
    repo = RunbookRepository()
    spec = ScheduleSpec(name="nightly", runbook="incident-triage", every_s=60, start_at=1000.0)
    with db.write() as connection:
        repo.create_schedule(connection, spec, actor="alice")
        with pytest.raises(ConflictError):
            repo.create_schedule(connection, spec, actor="alice")
        repo.create_schedule(
            connection,
            ScheduleSpec(name="off", runbook="x", every_s=60, start_at=1.0, enabled=False),
            actor="a",
        )
    with db.read() as connection:
        assert repo.due_schedules(connection, 999.0) == []
        assert [s.spec.name for s in repo.due_schedules(connection, 1000.0)] == ["nightly"]
    with db.write() as connection:
        repo.advance_schedule(connection, "nightly", next_at=1060.0, run_id="r9")
    with db.read() as connection:
        record = repo.get_schedule(connection, "nightly")
        assert record.next_at.timestamp() == 1060.0
        assert record.last_run_id == "r9"
        assert repo.due_schedules(connection, 1059.0) == []
    with db.write() as connection:
        repo.delete_schedule(connection, "nightly")
        with pytest.raises(NotFoundError):
            repo.delete_schedule(connection, "nightly")
