"""The runbook engine: start runs (by hand, from alerts, on schedules), execute, archive and record them.

Each run is a papermill child process in its own session, watched by a thread here. The order of a run's
end is fixed so nothing is lost: the executed notebook is already on disk (papermill saves every cell),
it is rendered to HTML, and only then is the run recorded as ended and its endpoint lock released, in one
transaction with the audit event. A run whose control plane died is found on the next start and recorded
as failed with its partial notebook, so a lock can never outlive its run.
"""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import ConflictError, ValidationError
from workbench.runbooks.catalog import ENDPOINT_PARAMETER, RunbookCatalog, RunbookInfo
from workbench.runbooks.kernel import KERNEL_NAME, ensure_kernelspec, kernel_environment
from workbench.runbooks.results import read_outcome, render_html
from workbench.specs.endpoint import check_endpoint_name
from workbench.specs.runbook import RunRequest, RunStatus, ScheduleSpec, Trigger, TriggerKind
from workbench.store.runbooks import FailedCell, RunbookRepository, RunRecord, ScheduleRecord

if TYPE_CHECKING:
    from workbench.control_plane import ControlPlane

log = logging.getLogger(__name__)

MAX_CONCURRENT_RUNS = 4
STOP_GRACE_S = 10.0
EXECUTED = "executed.ipynb"
CHILD_PID = "child.pid"
RECOVERY_EVERY_S = 30.0
RENDERED = "executed.html"


def run_link(run_id: str) -> str:
    return f"runbook-run:{run_id}"


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


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (with the pid, it names one process)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_owner() -> str:
    """Who watches a run: host, pid and start time of this control plane."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid()) or '?'}"


def _owner_is_gone(owner: str) -> bool:
    """True if the control plane that watched a run has certainly died (same host, that process gone).

    A run owned by another host is never judged: its control plane may well be alive.
    """
    host, _, rest = owner.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return not owner  # a run without an owner predates ownership: recover it
    pid = int(pid_text)
    return not _alive(pid) or _start_time(pid) != started


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _stop_orphan(archive: Path) -> None:
    """Stop the papermill child a dead control plane left running, if it is still this run's."""
    try:
        pid = int((archive / CHILD_PID).read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"workbench.runbooks.child" not in cmdline or str(archive).encode() not in cmdline:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


@dataclass
class _Active:
    record: RunRecord
    process: subprocess.Popen[bytes] | None = None
    stop_reason: RunStatus | None = None
    stop_message: str | None = None
    # Set once the child has exited: a stop asked for after that changes nothing, so a cancel that
    # arrives while a finished run is being rendered cannot turn its real ending into "cancelled".
    exited: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)


class RunbookEngine:
    def __init__(self, plane: ControlPlane, directories: tuple[Path, ...]) -> None:
        self.plane = plane
        self.catalog = RunbookCatalog(directories)
        self.repo = RunbookRepository()
        self.archive_root = plane.settings.home / "runbook-runs"
        self.kernel_root = plane.settings.home / "jupyter"
        self._active: dict[str, _Active] = {}
        self.owner = process_owner()
        self._guard = threading.Lock()
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
        with self._guard:
            running = sum(1 for a in self._active.values() if not a.done.is_set())
            if running >= MAX_CONCURRENT_RUNS:
                raise ConflictError(
                    f"{running} runbook runs are in progress, the most this control plane runs at once; "
                    "try again when one ends",
                    running=running,
                )
            with self.plane.db.write() as connection:
                if endpoint is not None:
                    self.repo.acquire_lock(connection, endpoint, run_id)
                archive.mkdir(parents=True, exist_ok=False)
                shutil.copy2(info.path, archive / "input.ipynb")
                (archive / "parameters.json").write_text(json.dumps(request.parameters, indent=1, default=str))
                record = self.repo.create_run(
                    connection,
                    run_id=run_id,
                    runbook=info.name,
                    parameters=request.parameters,
                    trigger=trigger,
                    actor=actor,
                    endpoint=endpoint,
                    timeout_s=timeout_s,
                    archive_dir=str(archive),
                    owner=self.owner,
                )
                self.plane.audit.record(
                    connection,
                    actor=actor,
                    action="runbook.run.start",
                    target=f"runbook:{info.name}",
                    after={
                        "run": run_id,
                        "parameters": request.parameters,
                        "trigger": trigger.model_dump(mode="json", exclude_none=True),
                        "endpoint": endpoint,
                    },
                    reason=request.reason,
                    link=run_link(run_id),
                )
            active = _Active(record)
            self._active[run_id] = active
        thread = threading.Thread(target=self._execute, args=(active, info), name=f"runbook-{run_id}", daemon=True)
        thread.start()
        return record

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
        with self.plane.db.read() as connection:
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
        with self.plane.db.read() as connection:
            return self.repo.list_runs(connection, runbook=runbook, status=status, endpoint=endpoint, limit=limit)

    def cancel(self, run_id: str, *, actor: str) -> RunRecord:
        record = self.get(run_id)
        if record.status.is_final:
            raise ConflictError(f"runbook run {run_id} has ended ({record.status.value})", run=run_id)
        active = self._active.get(run_id)
        if active is None:
            raise ConflictError(f"runbook run {run_id} is not running in this control plane", run=run_id)
        self._request_stop(active, RunStatus.CANCELLED, f"cancelled by {actor}")
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
            from workbench.errors import NotFoundError

            raise NotFoundError(f"run {run_id} has no {kind} archived (yet)", run=run_id, kind=kind)
        return path

    # ------------------------------------------------------------ execution
    def _request_stop(self, active: _Active, status: RunStatus, message: str) -> None:
        with active.lock:
            if active.exited:
                return
            if active.stop_reason is None:
                active.stop_reason, active.stop_message = status, message
            process = active.process
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)

    def _environment(self, record: RunRecord) -> dict[str, str]:
        settings = self.plane.settings
        env = kernel_environment(self.kernel_root)
        for name in list(env):
            if name.startswith("WORKBENCH_"):
                del env[name]
        env.update(
            {
                "WORKBENCH_URL": settings.api_url,
                "WORKBENCH_HOME": str(settings.home),
                "WORKBENCH_TOKEN_FILE": str(settings.token_file),
                "WORKBENCH_ACTOR": f"runbook:{record.runbook}/{record.id}",
                "WORKBENCH_RUN_ID": record.id,
                "PYTHONUNBUFFERED": "1",
            }
        )
        if settings.token:
            env["WORKBENCH_TOKEN"] = settings.token
        return env

    def _execute(self, active: _Active, info: RunbookInfo) -> None:
        record = active.record
        archive = Path(record.archive_dir)
        executed = archive / EXECUTED
        returncode: int | None = None
        problem: str | None = None
        try:
            ensure_kernelspec(self.kernel_root)
            spec_path = archive / "papermill.json"
            spec_path.write_text(
                json.dumps(
                    {
                        "input": str(archive / "input.ipynb"),
                        "output": str(executed),
                        "parameters": record.parameters,
                        "kernel": KERNEL_NAME,
                        "cwd": str(archive),
                    },
                    default=str,
                )
            )
            with (archive / "papermill.log").open("ab") as output:
                process = subprocess.Popen(
                    [sys.executable, "-m", "workbench.runbooks.child", str(spec_path)],
                    env=self._environment(record),
                    cwd=archive,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                with active.lock:
                    active.process = process
                    stopped_early = active.stop_reason is not None
                (archive / CHILD_PID).write_text(str(process.pid))
                if stopped_early:  # cancelled before the process existed
                    self._request_stop(active, active.stop_reason or RunStatus.CANCELLED, active.stop_message or "")
                returncode = self._watch(active, process, record.timeout_s)
        except Exception as exc:
            log.exception("runbook run %s could not be executed", record.id)
            problem = f"the run could not be executed: {type(exc).__name__}: {exc}"
        finally:
            with active.lock:
                active.exited = True
                stopped = (active.stop_reason, active.stop_message)
            self._finish(active, returncode, problem, stopped)

    def _watch(self, active: _Active, process: subprocess.Popen[bytes], timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        stopping_since: float | None = None
        while True:
            try:
                return process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if active.stop_reason is None and now >= deadline:
                self._request_stop(active, RunStatus.TIMED_OUT, f"timed out after {timeout_s:g}s")
            if active.stop_reason is not None:
                stopping_since = stopping_since or now
                if now - stopping_since > STOP_GRACE_S:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)

    def _finish(
        self,
        active: _Active,
        returncode: int | None,
        problem: str | None,
        stopped: tuple[RunStatus | None, str | None],
    ) -> None:
        """Render, then record the end; whatever fails here, the run is never left running in memory."""
        record = active.record
        try:
            self._record_outcome(record, returncode, problem, stopped)
        except Exception:
            # The database refused the ending (locked, connection lost): the periodic recovery retries
            # it, because the run is no longer in ``_active``.
            log.exception("run %s: its end could not be recorded; recovery will retry", record.id)
        finally:
            active.done.set()
            with self._guard:
                self._active.pop(record.id, None)

    def _record_outcome(
        self,
        record: RunRecord,
        returncode: int | None,
        problem: str | None,
        stopped: tuple[RunStatus | None, str | None],
    ) -> None:
        archive = Path(record.archive_dir)
        executed = archive / EXECUTED
        outcome = read_outcome(executed)
        if executed.exists():
            render_problem = render_html(executed, archive / RENDERED)
            if render_problem:
                log.warning("run %s: HTML rendering failed: %s", record.id, render_problem)
        failed_cell = outcome.failed_cell
        stop_reason, stop_message = stopped
        if stop_reason is not None:
            status, error = stop_reason, stop_message
            if outcome.running_cell is not None and failed_cell is None:
                failed_cell = FailedCell(
                    index=outcome.running_cell, tags=[], source="", ename=status.value, evalue=error or ""
                )
        elif problem is not None:
            status, error = RunStatus.FAILED, problem
        elif returncode == 0:
            status, error = RunStatus.SUCCEEDED, None
        elif failed_cell is not None:
            status, error = RunStatus.FAILED, f"{failed_cell.ename}: {failed_cell.evalue}"
        else:
            status, error = RunStatus.FAILED, f"papermill exited with code {returncode}: {self._log_tail(archive)}"
        self._record_end(record, status, outcome.summary, error, failed_cell)

    def _record_end(
        self,
        record: RunRecord,
        status: RunStatus,
        summary: dict[str, Any] | None,
        error: str | None,
        failed_cell: FailedCell | None,
    ) -> RunRecord:
        with self.plane.db.write() as connection:
            ended, changed = self.repo.finish_run(
                connection, record.id, status=status, summary=summary, error=error, failed_cell=failed_cell
            )
            if not changed:  # it had already ended (recovery raced its watcher): one ending, one event
                return ended
            if record.endpoint is not None:
                self.repo.release_lock(connection, record.endpoint, record.id)
            self.plane.audit.record(
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

    @staticmethod
    def _log_tail(archive: Path, lines: int = 5) -> str:
        try:
            text = (archive / "papermill.log").read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.replace("\x00", "").strip().splitlines()[-lines:])

    # -------------------------------------------------------------- recovery
    def recover(self) -> list[str]:
        """Runs recorded 'running' that nothing watches any more, recorded failed, their locks released.

        That is a run of a control plane on this host that has died (its pid gone, or reused by another
        process), or a run of this one whose watcher thread could not record its end. A run owned by a
        live control plane, or by one on another host, is left alone.
        """
        recovered: list[str] = []
        for record in self.runs(status=RunStatus.RUNNING, limit=1000):
            with self._guard:
                if record.id in self._active:
                    continue
            ours = record.owner == self.owner
            if not ours and not _owner_is_gone(record.owner):
                continue
            archive = Path(record.archive_dir)
            if not ours:
                _stop_orphan(archive)
            executed = archive / EXECUTED
            if executed.exists():
                render_html(executed, archive / RENDERED)
            outcome = read_outcome(executed)
            message = (
                "the run's end could not be recorded when it ended; recorded by recovery"
                if ours
                else "the control plane stopped while the run was in progress"
            )
            try:
                self._record_end(record, RunStatus.FAILED, outcome.summary, message, outcome.failed_cell)
            except Exception:
                log.exception("run %s: recovery could not record its end", record.id)
                continue
            recovered.append(record.id)
        return recovered

    # ------------------------------------------------------------- schedules
    def create_schedule(self, spec: ScheduleSpec, *, actor: str) -> ScheduleRecord:
        info = self.catalog.get(spec.runbook)
        info.check_parameters(spec.parameters)
        self._endpoint_for(info, spec.parameters)
        with self.plane.db.write() as connection:
            record = self.repo.create_schedule(connection, spec, actor=actor)
            self.plane.audit.record(
                connection,
                actor=actor,
                action="runbook.schedule.create",
                target=f"runbook-schedule:{spec.name}",
                after=spec.model_dump(mode="json"),
            )
        return record

    def schedules(self) -> list[ScheduleRecord]:
        with self.plane.db.read() as connection:
            return self.repo.list_schedules(connection)

    def delete_schedule(self, name: str, *, actor: str) -> ScheduleRecord:
        with self.plane.db.write() as connection:
            record = self.repo.delete_schedule(connection, name)
            self.plane.audit.record(
                connection,
                actor=actor,
                action="runbook.schedule.delete",
                target=f"runbook-schedule:{name}",
                before=record.spec.model_dump(mode="json"),
            )
        return record

    def tick_schedules(self, now: float | None = None) -> list[str]:
        """Start every due schedule's run once; a missed interval is skipped, not caught up."""
        now = time.time() if now is None else now
        started: list[str] = []
        with self.plane.db.read() as connection:
            due = self.repo.due_schedules(connection, now)
        for schedule in due:
            spec = schedule.spec
            due_at = schedule.next_at.timestamp()
            next_at = due_at + spec.every_s * (math.floor((now - due_at) / spec.every_s) + 1)
            run_id: str | None = None
            try:
                run = self.start(
                    RunRequest(runbook=spec.runbook, parameters=spec.parameters),
                    actor=f"schedule:{spec.name}",
                    trigger=Trigger(kind=TriggerKind.SCHEDULE, schedule=spec.name),
                )
                run_id = run.id
                started.append(run.id)
            except Exception as exc:
                message = getattr(exc, "message", str(exc))
                log.warning("schedule %s: run not started: %s", spec.name, message)
                self.plane.audit.append(
                    actor=f"schedule:{spec.name}",
                    action="runbook.schedule.skipped",
                    target=f"runbook-schedule:{spec.name}",
                    reason=message,
                )
            with self.plane.db.write() as connection:
                self.repo.advance_schedule(connection, spec.name, next_at=next_at, run_id=run_id)
        return started

    def start_loop(self, every: float = 1.0) -> None:
        self.recover()
        self._thread = threading.Thread(target=self._loop, args=(every,), name="runbooks", daemon=True)
        self._thread.start()

    def stop_loop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for active in list(self._active.values()):
            self._request_stop(active, RunStatus.CANCELLED, "the control plane is shutting down")
        for active in list(self._active.values()):
            active.done.wait(STOP_GRACE_S + 5)

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
