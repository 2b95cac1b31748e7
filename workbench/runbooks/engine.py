"""The runbook engine: start runs (by hand, from alerts, on schedules), execute, archive and record them.

The pieces, by responsibility: :mod:`~workbench.runbooks.ledger` (a run's record, endpoint lock and
audit events, each change in one transaction), :mod:`~workbench.runbooks.execution` (the papermill
child and its watcher), :mod:`~workbench.runbooks.recovery` (runs whose control plane died, found and
recorded failed, so a lock can never outlive its run) and :mod:`~workbench.runbooks.schedules`.

The engine needs only the control plane's settings, state store and audit log (:class:`RunbookHost`).
Its one in-memory lock guards the set of active runs and is never held while a run's archive is
written or its record committed, so a start never waits behind another start's I/O.
"""

from __future__ import annotations

import ast
import json
import logging
import secrets
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench.errors import ConflictError, NotFoundError, ValidationError
from workbench.runbooks.catalog import ENDPOINT_PARAMETER, RunbookCatalog, RunbookInfo
from workbench.runbooks.execution import ActiveRun, RunExecutor, request_stop
from workbench.runbooks.host import RunbookHost
from workbench.runbooks.ledger import RunLedger, run_link
from workbench.runbooks.recovery import EXECUTED, RENDERED, STOP_GRACE_S, process_owner, recover
from workbench.runbooks.schedules import Schedules
from workbench.specs.endpoint import check_endpoint_name
from workbench.specs.runbook import RunRequest, RunStatus, ScheduleSpec, Trigger
from workbench.store.runbooks import RunbookRepository, RunRecord, ScheduleRecord

__all__ = ["MAX_CONCURRENT_RUNS", "RunbookEngine", "process_owner", "run_link"]

log = logging.getLogger(__name__)

MAX_CONCURRENT_RUNS = 4
RECOVERY_EVERY_S = 30.0


def _new_run_id(now: float) -> str:
    return f"run-{datetime.fromtimestamp(now, tz=UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def _default_value(info: RunbookInfo, name: str) -> Any:
    parameter = info.parameter(name)
    if parameter is None:
        return None
    try:
        return ast.literal_eval(parameter.default)
    except (ValueError, SyntaxError):
        return None


class RunbookEngine:
    def __init__(self, host: RunbookHost, directories: tuple[Path, ...]) -> None:
        self.host = host
        self.catalog = RunbookCatalog(directories)
        self.repo = RunbookRepository()
        self.archive_root = host.settings.home / "runbook-runs"
        self.kernel_root = host.settings.home / "jupyter"
        self.owner = process_owner()
        self.ledger = RunLedger(host, self.repo)
        self.executor = RunExecutor(host, self.ledger, self.kernel_root, self._ended)
        self.schedule_book = Schedules(host, self.repo, self._validate, self.start)
        self._active: dict[str, ActiveRun] = {}
        self._starting = 0  # runs admitted but not yet recorded (counted against the limit)
        self._guard = threading.Lock()  # guards the two above; never held across I/O
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ catalogue
    def runbooks(self) -> list[RunbookInfo]:
        return self.catalog.list()

    def runbook(self, name: str) -> RunbookInfo:
        return self.catalog.get(name)

    # ------------------------------------------------------------------ runs
    def start(self, request: RunRequest, *, actor: str, trigger: Trigger | None = None) -> RunRecord:
        """Record and start a run; refused (nothing recorded) if its endpoint is held by another run."""
        trigger = trigger or Trigger()
        info = self.catalog.get(request.runbook)
        info.check_parameters(request.parameters)
        endpoint = self._endpoint_for(info, request.parameters)
        try:
            json.dumps(request.parameters)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"parameters must be JSON values: {exc}", runbook=info.name) from None
        now = time.time()
        run_id = _new_run_id(now)
        archive = self.archive_root / run_id
        timeout_s = request.timeout_s or info.timeout_s
        self._admit()
        try:

            def write_archive() -> None:
                archive.mkdir(parents=True, exist_ok=False)
                shutil.copy2(info.path, archive / "input.ipynb")
                (archive / "parameters.json").write_text(
                    json.dumps(request.parameters, indent=1, default=str)
                )

            record = self.ledger.open(
                run_id=run_id,
                runbook=info.name,
                parameters=request.parameters,
                trigger=trigger,
                actor=actor,
                endpoint=endpoint,
                timeout_s=timeout_s,
                archive=archive,
                owner=self.owner,
                reason=request.reason,
                prepare=write_archive,
            )
            active = ActiveRun(record)
            with self._guard:
                self._active[run_id] = active
        finally:
            with self._guard:
                self._starting -= 1
        self.executor.launch(active, info)
        return record

    def _admit(self) -> None:
        """Count a run against the limit before its (slow) start, so the check and the count are one step."""
        with self._guard:
            running = self._starting + sum(1 for a in self._active.values() if not a.done.is_set())
            if running >= MAX_CONCURRENT_RUNS:
                raise ConflictError(
                    f"{running} runbook runs are in progress, the most this control plane runs at once; "
                    "try again when one ends",
                    running=running,
                )
            self._starting += 1

    def _ended(self, run_id: str) -> None:
        with self._guard:
            self._active.pop(run_id, None)

    def _validate(self, runbook: str, parameters: dict[str, Any]) -> None:
        info = self.catalog.get(runbook)
        info.check_parameters(parameters)
        self._endpoint_for(info, parameters)

    @staticmethod
    def _endpoint_for(info: RunbookInfo, parameters: dict[str, Any]) -> str | None:
        """The endpoint a run changes (and locks), or None for a runbook that changes none."""
        if not info.locks_endpoint:
            return None
        value = parameters.get(ENDPOINT_PARAMETER, _default_value(info, ENDPOINT_PARAMETER))
        if not isinstance(value, str) or not value:
            raise ValidationError(
                f"runbook {info.name!r} changes an endpoint: give the {ENDPOINT_PARAMETER!r} parameter",
                runbook=info.name,
            )
        try:
            return check_endpoint_name(value)
        except ValueError as exc:
            raise ValidationError(str(exc), runbook=info.name, field=ENDPOINT_PARAMETER) from None

    def get(self, run_id: str) -> RunRecord:
        with self.host.db.read() as connection:
            return self.repo.get_run(connection, run_id)

    def runs(
        self,
        *,
        runbook: str | None = None,
        status: RunStatus | None = None,
        endpoint: str | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        if not 1 <= limit <= 1000:
            raise ValidationError("limit must be between 1 and 1000", field="limit")
        with self.host.db.read() as connection:
            return self.repo.list_runs(
                connection, runbook=runbook, status=status, endpoint=endpoint, limit=limit
            )

    def cancel(self, run_id: str, *, actor: str) -> RunRecord:
        record = self.get(run_id)
        if record.status.is_final:
            raise ConflictError(f"runbook run {run_id} has ended ({record.status.value})", run=run_id)
        active = self._active.get(run_id)
        if active is None:
            raise ConflictError(f"runbook run {run_id} is not running in this control plane", run=run_id)
        request_stop(active, RunStatus.CANCELLED, f"cancelled by {actor}")
        active.done.wait(STOP_GRACE_S + 10)
        return self.get(run_id)

    def wait(self, run_id: str, timeout_s: float) -> RunRecord:
        active = self._active.get(run_id)
        if active is not None:
            active.done.wait(timeout_s)
        return self.get(run_id)

    def artifact(self, run_id: str, kind: str) -> Path:
        """The archived executed notebook (``ipynb``) or its rendering (``html``) of a run."""
        names = {"ipynb": EXECUTED, "html": RENDERED, "input": "input.ipynb"}
        if kind not in names:
            raise ValidationError(f"artifact must be one of {', '.join(names)}, got {kind!r}", field="kind")
        path = Path(self.get(run_id).archive_dir) / names[kind]
        if not path.is_file():
            raise NotFoundError(f"run {run_id} has no {kind} archived (yet)", run=run_id, kind=kind)
        return path

    # -------------------------------------------------------------- recovery
    def recover(self) -> list[str]:
        """Runs recorded 'running' that nothing watches any more, recorded failed, their locks released."""

        def watched(run_id: str) -> bool:
            with self._guard:
                return run_id in self._active

        running = self.runs(status=RunStatus.RUNNING, limit=1000)
        return recover(running, owner=self.owner, watched=watched, record_end=self.ledger.close)

    # ------------------------------------------------------------- schedules
    def create_schedule(self, spec: ScheduleSpec, *, actor: str) -> ScheduleRecord:
        return self.schedule_book.create(spec, actor=actor)

    def schedules(self) -> list[ScheduleRecord]:
        return self.schedule_book.all()

    def delete_schedule(self, name: str, *, actor: str) -> ScheduleRecord:
        return self.schedule_book.delete(name, actor=actor)

    def tick_schedules(self, now: float | None = None) -> list[str]:
        """Start every due schedule's run once; a missed interval is skipped, not caught up."""
        return self.schedule_book.tick(now)

    # ------------------------------------------------------------------ loop
    def start_loop(self, every: float = 1.0) -> None:
        self.recover()
        self._thread = threading.Thread(target=self._loop, args=(every,), name="runbooks", daemon=True)
        self._thread.start()

    def stop_loop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._guard:
            active = list(self._active.values())
        for run in active:
            request_stop(run, RunStatus.CANCELLED, "the control plane is shutting down")
        for run in active:
            run.done.wait(STOP_GRACE_S + 5)

    def _loop(self, every: float) -> None:
        last_recovery = time.monotonic()
        while not self._stop.wait(every):
            try:
                self.tick_schedules()
            except Exception:
                log.exception("runbooks: schedule tick failed")
            if time.monotonic() - last_recovery >= RECOVERY_EVERY_S:
                last_recovery = time.monotonic()
                try:
                    self.recover()
                except Exception:
                    log.exception("runbooks: recovery failed")
