"""A run's record in the state store: opened (endpoint lock, record, audit event) and ended (record,
unlock, audit event), each in one transaction, so a lock can never outlive its run's record."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.runbooks.host import RunbookHost
from workbench.runbooks.recovery import EXECUTED
from workbench.specs.runbook import RunStatus, Trigger
from workbench.store.runbooks import FailedCell, RunbookRepository, RunRecord


def run_link(run_id: str) -> str:
    return f"runbook-run:{run_id}"


class RunLedger:
    def __init__(self, host: RunbookHost, repo: RunbookRepository) -> None:
        self.host = host
        self.repo = repo

    def open(
        self,
        *,
        run_id: str,
        runbook: str,
        parameters: dict[str, Any],
        trigger: Trigger,
        actor: str,
        endpoint: str | None,
        timeout_s: float,
        archive: Path,
        owner: str,
        reason: str | None,
        prepare: Callable[[], None] | None = None,
    ) -> RunRecord:
        """Lock the endpoint, record the run and audit its start; refused (nothing kept) if held.

        ``prepare()`` (writing the archive) runs inside the transaction, after the lock is taken.
        """
        with self.host.db.write() as connection:
            if endpoint is not None:
                self.repo.acquire_lock(connection, endpoint, run_id)
            if prepare is not None:
                prepare()
            record = self.repo.create_run(
                connection,
                run_id=run_id,
                runbook=runbook,
                parameters=parameters,
                trigger=trigger,
                actor=actor,
                endpoint=endpoint,
                timeout_s=timeout_s,
                archive_dir=str(archive),
                owner=owner,
            )
            self.host.audit.record(
                connection,
                actor=actor,
                action="runbook.run.start",
                target=f"runbook:{runbook}",
                after={
                    "run": run_id,
                    "parameters": parameters,
                    "trigger": trigger.model_dump(mode="json", exclude_none=True),
                    "endpoint": endpoint,
                },
                reason=reason,
                link=run_link(run_id),
            )
        return record

    def close(
        self,
        record: RunRecord,
        status: RunStatus,
        summary: dict[str, Any] | None,
        error: str | None,
        failed_cell: FailedCell | None,
    ) -> RunRecord:
        """Record the run's end, release its endpoint and audit it; a run ends once (one event)."""
        with self.host.db.write() as connection:
            ended, changed = self.repo.finish_run(
                connection, record.id, status=status, summary=summary, error=error, failed_cell=failed_cell
            )
            if not changed:  # it had already ended (recovery raced its watcher): one ending, one event
                return ended
            if record.endpoint is not None:
                self.repo.release_lock(connection, record.endpoint, record.id)
            self.host.audit.record(
                connection,
                actor=record.actor,
                action=f"runbook.run.{status.value}",
                target=f"runbook:{record.runbook}",
                after={
                    "run": record.id,
                    "status": status.value,
                    "summary": summary,
                    "error": error,
                    "failed_cell": None if failed_cell is None else failed_cell.index,
                    "duration_s": ended.duration_s,
                    "notebook": str(Path(record.archive_dir) / EXECUTED),
                },
                reason=error,
                link=run_link(record.id),
            )
        return ended
