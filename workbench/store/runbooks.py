"""Runbook runs, the endpoint locks they hold, and runbook schedules.

A lock is a row keyed by endpoint: inserting it is the acquisition, so two runs (even started by two
control planes on one PostgreSQL) can never both hold an endpoint. The row names its run, so a lock whose
run has ended (a control plane killed mid-run) can be recognised and released on start-up.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from workbench.errors import ConflictError, NotFoundError
from workbench.records.runbooks import FailedCell, RunRecord, ScheduleRecord
from workbench.specs.runbook import RunStatus, ScheduleSpec, Trigger
from workbench.store.schema import endpoint_locks, runbook_runs, runbook_schedules

# The records are defined in workbench.records (the client reads them without storage code).
__all__ = ["FailedCell", "RunRecord", "RunbookRepository", "ScheduleRecord"]


def _at(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


def _dump(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _run(row: Any) -> RunRecord:
    return RunRecord(
        id=row["id"],
        runbook=row["runbook"],
        parameters=orjson.loads(row["parameters"]),
        trigger=Trigger.model_validate_json(row["trigger"]),
        actor=row["actor"],
        endpoint=row["endpoint"],
        status=RunStatus(row["status"]),
        created_at=_at(row["created_at"]),
        started_at=_at(row["started_at"]),
        finished_at=_at(row["finished_at"]),
        timeout_s=row["timeout_s"],
        summary=None if row["summary"] is None else orjson.loads(row["summary"]),
        error=row["error"],
        failed_cell=None
        if row["failed_cell"] is None
        else FailedCell.model_validate_json(row["failed_cell"]),
        archive_dir=row["archive_dir"],
        owner=row["owner"],
    )


class RunbookRepository:
    # ----------------------------------------------------------------- runs
    def create_run(
        self,
        connection: Connection,
        *,
        run_id: str,
        runbook: str,
        parameters: dict[str, Any],
        trigger: Trigger,
        actor: str,
        endpoint: str | None,
        timeout_s: float,
        archive_dir: str,
        owner: str = "",
    ) -> RunRecord:
        now = time.time()
        connection.execute(
            insert(runbook_runs).values(
                id=run_id,
                runbook=runbook,
                parameters=_dump(parameters),
                trigger=trigger.model_dump_json(),
                actor=actor[:200],
                endpoint=endpoint,
                status=RunStatus.RUNNING.value,
                created_at=now,
                started_at=now,
                timeout_s=timeout_s,
                archive_dir=archive_dir,
                owner=owner[:200],
            )
        )
        return self.get_run(connection, run_id)

    def get_run(self, connection: Connection, run_id: str) -> RunRecord:
        row = connection.execute(select(runbook_runs).where(runbook_runs.c.id == run_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"runbook run {run_id!r} does not exist", run=run_id)
        return _run(row)

    def list_runs(
        self,
        connection: Connection,
        *,
        runbook: str | None = None,
        status: RunStatus | None = None,
        endpoint: str | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        statement = select(runbook_runs).order_by(runbook_runs.c.created_at.desc()).limit(limit)
        if runbook is not None:
            statement = statement.where(runbook_runs.c.runbook == runbook)
        if status is not None:
            statement = statement.where(runbook_runs.c.status == status.value)
        if endpoint is not None:
            statement = statement.where(runbook_runs.c.endpoint == endpoint)
        return [_run(row) for row in connection.execute(statement).mappings().all()]

    def finish_run(
        self,
        connection: Connection,
        run_id: str,
        *,
        status: RunStatus,
        summary: dict[str, Any] | None,
        error: str | None,
        failed_cell: FailedCell | None,
    ) -> tuple[RunRecord, bool]:
        """Record a run's end, once: a run that already ended keeps its first ending (and ``False``)."""
        result = connection.execute(
            update(runbook_runs)
            .where(runbook_runs.c.id == run_id, runbook_runs.c.status == RunStatus.RUNNING.value)
            .values(
                status=status.value,
                finished_at=time.time(),
                summary=None if summary is None else _dump(summary),
                error=error,
                failed_cell=None if failed_cell is None else failed_cell.model_dump_json(),
            )
        )
        return self.get_run(connection, run_id), result.rowcount == 1

    # ---------------------------------------------------------------- locks
    def acquire_lock(self, connection: Connection, endpoint: str, run_id: str) -> None:
        try:
            with connection.begin_nested():
                connection.execute(
                    insert(endpoint_locks).values(endpoint=endpoint, run_id=run_id, acquired_at=time.time())
                )
        except IntegrityError:
            holder = connection.execute(
                select(endpoint_locks.c.run_id).where(endpoint_locks.c.endpoint == endpoint)
            ).scalar()
            raise ConflictError(
                f"endpoint {endpoint!r} is being changed by runbook run {holder}; "
                "wait for it to finish or cancel it",
                endpoint=endpoint,
                run=holder,
            ) from None

    def release_lock(self, connection: Connection, endpoint: str, run_id: str) -> None:
        connection.execute(
            delete(endpoint_locks).where(
                endpoint_locks.c.endpoint == endpoint, endpoint_locks.c.run_id == run_id
            )
        )

    def lock_holder(self, connection: Connection, endpoint: str) -> str | None:
        value = connection.execute(
            select(endpoint_locks.c.run_id).where(endpoint_locks.c.endpoint == endpoint)
        ).scalar()
        return None if value is None else str(value)

    # ------------------------------------------------------------ schedules
    def create_schedule(self, connection: Connection, spec: ScheduleSpec, *, actor: str) -> ScheduleRecord:
        now = time.time()
        try:
            with connection.begin_nested():
                connection.execute(
                    insert(runbook_schedules).values(
                        name=spec.name,
                        runbook=spec.runbook,
                        spec=spec.model_dump_json(),
                        every_s=spec.every_s,
                        next_at=spec.start_at if spec.start_at is not None else now + spec.every_s,
                        enabled=int(spec.enabled),
                        created_at=now,
                        actor=actor[:200],
                    )
                )
        except IntegrityError:
            raise ConflictError(f"schedule {spec.name!r} already exists", schedule=spec.name) from None
        return self.get_schedule(connection, spec.name)

    def get_schedule(self, connection: Connection, name: str) -> ScheduleRecord:
        row = (
            connection.execute(select(runbook_schedules).where(runbook_schedules.c.name == name))
            .mappings()
            .first()
        )
        if row is None:
            raise NotFoundError(f"schedule {name!r} does not exist", schedule=name)
        return ScheduleRecord(
            spec=ScheduleSpec.model_validate_json(row["spec"]),
            next_at=_at(row["next_at"]),
            last_run_id=row["last_run_id"],
            created_at=_at(row["created_at"]),
            actor=row["actor"],
        )

    def list_schedules(self, connection: Connection) -> list[ScheduleRecord]:
        names = connection.execute(select(runbook_schedules.c.name).order_by(runbook_schedules.c.name)).all()
        return [self.get_schedule(connection, name) for (name,) in names]

    def due_schedules(self, connection: Connection, now: float) -> list[ScheduleRecord]:
        names = connection.execute(
            select(runbook_schedules.c.name).where(
                runbook_schedules.c.enabled == 1, runbook_schedules.c.next_at <= now
            )
        ).all()
        return [self.get_schedule(connection, name) for (name,) in names]

    def advance_schedule(
        self, connection: Connection, name: str, *, next_at: float, run_id: str | None
    ) -> None:
        values: dict[str, Any] = {"next_at": next_at}
        if run_id is not None:
            values["last_run_id"] = run_id
        connection.execute(update(runbook_schedules).where(runbook_schedules.c.name == name).values(**values))

    def delete_schedule(self, connection: Connection, name: str) -> ScheduleRecord:
        record = self.get_schedule(connection, name)
        connection.execute(delete(runbook_schedules).where(runbook_schedules.c.name == name))
        return record
