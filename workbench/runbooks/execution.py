"""A run's execution: the papermill child in its own session, watched until it exits, stopped on cancel
or timeout, and its end recorded in a fixed order so nothing is lost.

The executed notebook is already on disk (papermill saves every cell); it is rendered to HTML, and only
then is the run recorded as ended and its endpoint lock released, in one transaction with the audit event.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from workbench.runbooks.catalog import RunbookInfo
from workbench.runbooks.host import RunbookHost
from workbench.runbooks.kernel import KERNEL_NAME, ensure_kernelspec, kernel_environment
from workbench.runbooks.ledger import RunLedger
from workbench.runbooks.recovery import CHILD_PID, EXECUTED, RENDERED, STOP_GRACE_S
from workbench.runbooks.results import read_outcome, render_html
from workbench.specs.runbook import RunStatus
from workbench.store.runbooks import FailedCell, RunRecord

log = logging.getLogger("workbench.runbooks.engine")


@dataclass
class ActiveRun:
    record: RunRecord
    process: subprocess.Popen[bytes] | None = None
    stop_reason: RunStatus | None = None
    stop_message: str | None = None
    # Set once the child has exited: a stop asked for after that changes nothing, so a cancel that
    # arrives while a finished run is being rendered cannot turn its real ending into "cancelled".
    exited: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)


def request_stop(active: ActiveRun, status: RunStatus, message: str) -> None:
    """Ask the run's child to stop (SIGTERM to its session); the first reason given is the one kept."""
    with active.lock:
        if active.exited:
            return
        if active.stop_reason is None:
            active.stop_reason, active.stop_message = status, message
        process = active.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)


class RunExecutor:
    """Executes runs in watcher threads; ``on_done(run_id)`` is called once each run's end is handled."""

    def __init__(
        self, host: RunbookHost, ledger: RunLedger, kernel_root: Path, on_done: Callable[[str], None]
    ) -> None:
        self.host = host
        self.ledger = ledger
        self.kernel_root = kernel_root
        self._on_done = on_done

    def launch(self, active: ActiveRun, info: RunbookInfo) -> None:
        run_id = active.record.id
        thread = threading.Thread(
            target=self._execute, args=(active, info), name=f"runbook-{run_id}", daemon=True
        )
        thread.start()

    def _environment(self, record: RunRecord) -> dict[str, str]:
        settings = self.host.settings
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

    def _execute(self, active: ActiveRun, info: RunbookInfo) -> None:
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
                    request_stop(active, active.stop_reason or RunStatus.CANCELLED, active.stop_message or "")
                returncode = self._watch(active, process, record.timeout_s)
        except Exception as exc:
            log.exception("runbook run %s could not be executed", record.id)
            problem = f"the run could not be executed: {type(exc).__name__}: {exc}"
        finally:
            with active.lock:
                active.exited = True
                stopped = (active.stop_reason, active.stop_message)
            self._finish(active, returncode, problem, stopped)

    def _watch(self, active: ActiveRun, process: subprocess.Popen[bytes], timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        stopping_since: float | None = None
        while True:
            try:
                return process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if active.stop_reason is None and now >= deadline:
                request_stop(active, RunStatus.TIMED_OUT, f"timed out after {timeout_s:g}s")
            if active.stop_reason is not None:
                stopping_since = stopping_since or now
                if now - stopping_since > STOP_GRACE_S:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)

    def _finish(
        self,
        active: ActiveRun,
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
            # it, because the run is no longer active.
            log.exception("run %s: its end could not be recorded; recovery will retry", record.id)
        finally:
            active.done.set()
            self._on_done(record.id)

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
            status, error = RunStatus.FAILED, f"papermill exited with code {returncode}: {_log_tail(archive)}"
        self.ledger.close(record, status, outcome.summary, error, failed_cell)


def _log_tail(archive: Path, lines: int = 5) -> str:
    try:
        text = (archive / "papermill.log").read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(text.replace("\x00", "").strip().splitlines()[-lines:])
