"""Recovery of runs nothing watches any more: whose control plane died, or whose end was not recorded.

A run records its owner (host, pid and start time of the control plane watching it), so two control
planes sharing a state store never fail each other's runs: only a run owned on this host by a process
that is certainly gone (or by this one, unwatched) is recorded failed, with its partial notebook.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil

from workbench.runbooks.results import read_outcome, render_html
from workbench.specs.runbook import RunStatus
from workbench.store.runbooks import FailedCell, RunRecord

log = logging.getLogger("workbench.runbooks.engine")

EXECUTED = "executed.ipynb"
RENDERED = "executed.html"
CHILD_PID = "child.pid"
STOP_GRACE_S = 10.0

RecordEnd = Callable[[RunRecord, RunStatus, "dict[str, Any] | None", "str | None", "FailedCell | None"], Any]


def _start_time(pid: int) -> str | None:
    """The process's start time (with the pid, it names one process: pids are reused, start times not)."""
    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except psutil.Error:
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
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _stop_orphan(archive: Path) -> None:
    """Stop the papermill child a dead control plane left running, if it is still this run's."""
    try:
        pid = int((archive / CHILD_PID).read_text())
        cmdline = "\0".join(psutil.Process(pid).cmdline())
    except (OSError, ValueError, psutil.Error):
        return
    if "workbench.runbooks.child" not in cmdline or str(archive) not in cmdline:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def recover(
    running: Iterable[RunRecord], *, owner: str, watched: Callable[[str], bool], record_end: RecordEnd
) -> list[str]:
    """Runs recorded 'running' that nothing watches any more, recorded failed, their locks released.

    That is a run of a control plane on this host that has died (its pid gone, or reused by another
    process), or a run of this one (``owner``) whose watcher could not record its end. A run owned by a
    live control plane, or by one on another host, is left alone; so is one ``watched`` here.
    """
    recovered: list[str] = []
    for record in running:
        if watched(record.id):
            continue
        ours = record.owner == owner
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
            record_end(record, RunStatus.FAILED, outcome.summary, message, outcome.failed_cell)
        except Exception:
            log.exception("run %s: recovery could not record its end", record.id)
            continue
        recovered.append(record.id)
    return recovered
