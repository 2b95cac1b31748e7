"""Runbook schedules: created and deleted (audited), and started when due, once per due time.

A missed interval is skipped, not caught up: the next due time advances arithmetically past now. A run
that cannot start (its endpoint held, too many runs) is audited as skipped and the schedule moves on.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from workbench.runbooks.host import RunbookHost
from workbench.specs.runbook import RunRequest, ScheduleSpec, Trigger, TriggerKind
from workbench.store.runbooks import RunbookRepository, RunRecord, ScheduleRecord

log = logging.getLogger("workbench.runbooks.engine")

StartRun = Callable[..., RunRecord]


class Schedules:
    def __init__(
        self,
        host: RunbookHost,
        repo: RunbookRepository,
        validate: Callable[[str, dict[str, Any]], None],
        start: StartRun,
    ) -> None:
        """``validate(runbook, parameters)`` refuses what a run would refuse; ``start`` starts a run."""
        self.host = host
        self.repo = repo
        self._validate = validate
        self._start = start

    def create(self, spec: ScheduleSpec, *, actor: str) -> ScheduleRecord:
        self._validate(spec.runbook, spec.parameters)
        with self.host.db.write() as connection:
            record = self.repo.create_schedule(connection, spec, actor=actor)
            self.host.audit.record(
                connection,
                actor=actor,
                action="runbook.schedule.create",
                target=f"runbook-schedule:{spec.name}",
                after=spec.model_dump(mode="json"),
            )
        return record

    def all(self) -> list[ScheduleRecord]:
        with self.host.db.read() as connection:
            return self.repo.list_schedules(connection)

    def delete(self, name: str, *, actor: str) -> ScheduleRecord:
        with self.host.db.write() as connection:
            record = self.repo.delete_schedule(connection, name)
            self.host.audit.record(
                connection,
                actor=actor,
                action="runbook.schedule.delete",
                target=f"runbook-schedule:{name}",
                before=record.spec.model_dump(mode="json"),
            )
        return record

    def tick(self, now: float | None = None) -> list[str]:
        """Start every due schedule's run once; a missed interval is skipped, not caught up."""
        now = time.time() if now is None else now
        started: list[str] = []
        with self.host.db.read() as connection:
            due = self.repo.due_schedules(connection, now)
        for schedule in due:
            spec = schedule.spec
            due_at = schedule.next_at.timestamp()
            next_at = due_at + spec.every_s * (math.floor((now - due_at) / spec.every_s) + 1)
            run_id: str | None = None
            try:
                run = self._start(
                    RunRequest(runbook=spec.runbook, parameters=spec.parameters),
                    actor=f"schedule:{spec.name}",
                    trigger=Trigger(kind=TriggerKind.SCHEDULE, schedule=spec.name),
                )
                run_id = run.id
                started.append(run.id)
            except Exception as exc:
                message = getattr(exc, "message", str(exc))
                log.warning("schedule %s: run not started: %s", spec.name, message)
                self.host.audit.append(
                    actor=f"schedule:{spec.name}",
                    action="runbook.schedule.skipped",
                    target=f"runbook-schedule:{spec.name}",
                    reason=message,
                )
            with self.host.db.write() as connection:
                self.repo.advance_schedule(connection, spec.name, next_at=next_at, run_id=run_id)
        return started
