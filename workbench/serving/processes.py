"""One supervised process: what is known of it, and the operating-system calls that start and stop it.

Nothing here takes the supervisor's lock. A :class:`Managed` has its own small lock, held only by the
calls that spawn or signal its process, so a stop can never race a spawn of the same process (a
retired process is never started again, and a spawn never outlives the stop that followed it).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from workbench.errors import UnavailableError, ValidationError
from workbench.serving.config import ReadyInfo
from workbench.serving.forkserver_client import ForkServer
from workbench.serving.pids import is_running

log = logging.getLogger("workbench.supervisor")

START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0


class Child(Protocol):
    """A started process as ``subprocess.Popen`` describes it (a forked replica answers the same)."""

    pid: int

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


@dataclass(eq=False)
class Managed:
    """One supervised process (the router or a replica) and what the supervisor knows of it.

    ``state``: ``new`` → ``starting`` (launched by a deploy) or ``restarting`` (by the watchdog) →
    ``ready``; ``backoff`` after a crash, waiting for its restart; ``failed`` when it could not start;
    ``stopping`` → ``stopped``.
    """

    process_id: str
    kind: str
    command: list[str]
    config_path: Path
    ready_file: Path
    log_path: Path
    endpoint: str | None = None
    model: str | None = None
    version: int | None = None
    config_json: str | None = None  # written just before launching, never under the supervisor's lock
    #: Forks the process instead of starting a fresh interpreter (replicas; None: ``Popen``).
    forkserver: ForkServer | None = field(default=None, repr=False)
    child: Child | None = None
    pid: int | None = None
    info: ReadyInfo | None = None
    state: str = "new"
    restarts: int = 0
    next_start_at: float = 0.0
    start_deadline: float = 0.0
    health_failures: int = 0
    last_health_at: float = 0.0
    last_error: str | None = None
    started_at: float = field(default_factory=time.time)
    retired: bool = False
    os_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def alive(self) -> bool:
        if self.child is not None:
            return self.child.poll() is None
        if self.pid is None:
            return False
        return is_running(self.pid)  # an adopted process (another control plane's child)

    def exit_code(self) -> int | None:
        return self.child.poll() if self.child is not None else None

    def base_url(self) -> str | None:
        return f"http://127.0.0.1:{self.info.port}" if self.info is not None else None

    @property
    def target(self) -> str:
        """The audit target of this process's events."""
        return f"endpoint:{self.endpoint}" if self.endpoint else "router"

    def as_record(self) -> dict[str, Any]:
        return {
            "process_id": self.process_id,
            "kind": self.kind,
            "command": self.command,
            "config_path": str(self.config_path),
            "ready_file": str(self.ready_file),
            "log_path": str(self.log_path),
            "endpoint": self.endpoint,
            "model": self.model,
            "version": self.version,
            "pid": self.pid,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.process_id,
            "kind": self.kind,
            "endpoint": self.endpoint,
            "model": self.model,
            "version": self.version,
            "state": self.state,
            "pid": self.pid,
            "port": self.info.port if self.info else None,
            "grpc_port": self.info.grpc_port if self.info else None,
            "device": self.info.device if self.info else None,
            "restarts": self.restarts,
            "last_error": self.last_error,
        }


def spawn(managed: Managed) -> bool:
    """Start ``managed``'s process in its own session; False if it was retired meanwhile (not started).

    Forked by its fork server when it has one, else (or if that fails) a fresh interpreter: a fork server
    that broke costs the next start its speed, never the start itself.
    """
    with managed.os_lock:
        if managed.retired:
            return False
        if managed.config_json is not None:
            managed.config_path.write_text(managed.config_json)
        managed.ready_file.unlink(missing_ok=True)
        child: Child | None = None
        if managed.forkserver is not None:
            try:
                child = managed.forkserver.spawn(managed.command, managed.log_path)
            except UnavailableError as exc:
                log.warning("%s %s starts without the fork server: %s", managed.kind, managed.process_id, exc)
        if child is None:
            with managed.log_path.open("ab") as handle:
                child = subprocess.Popen(
                    managed.command,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        managed.child, managed.pid, managed.info = child, child.pid, None
        managed.health_failures = 0
        managed.started_at = time.time()
        return True


def poll_ready(managed: Managed) -> ReadyInfo | None:
    """The process's ready file once it is written; None while it starts; raises if it exited.

    A process that exits with code 2 was refused its configuration (bad device, broken model): that is
    the caller's error (422), anything else is unavailability (503).
    """
    if managed.ready_file.is_file():
        return ReadyInfo.model_validate_json(managed.ready_file.read_bytes())
    if managed.alive():
        return None
    code = managed.exit_code()
    message = failure_message(managed.log_path) or f"exited with code {code}"
    managed.last_error = message
    if code == 2:
        raise ValidationError(f"{managed.kind} {managed.process_id} could not start: {message}")
    raise UnavailableError(f"{managed.kind} {managed.process_id} could not start: {message}")


def wait_ready(managed: Managed, deadline: float) -> ReadyInfo:
    """Poll the ready file until ``deadline`` (monotonic); the process is stopped if it never gets there."""
    while time.monotonic() < deadline:
        info = poll_ready(managed)
        if info is not None:
            return info
        time.sleep(0.05)
    terminate(managed)
    raise UnavailableError(f"{managed.kind} {managed.process_id} was not ready in time")


def terminate(managed: Managed, *, retire: bool = False) -> None:
    """SIGTERM (the process drains in-flight requests), SIGKILL if it does not exit in time.

    ``retire``: for good; no spawn of this process happens afterwards.
    """
    with managed.os_lock:
        if retire:
            managed.retired = True
        if managed.alive() and managed.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(managed.pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while managed.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if managed.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(managed.pid, signal.SIGKILL)
        if managed.child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                managed.child.wait(timeout=5)
        managed.ready_file.unlink(missing_ok=True)


def retire(managed: Managed, run_dir: Path) -> None:
    """Stop a process for good: its config and socket go too (a restart keeps them)."""
    terminate(managed, retire=True)
    managed.state = "stopped"
    for path in (managed.config_path, socket_path(run_dir, managed.process_id)):
        path.unlink(missing_ok=True)


#: Unix socket paths must fit in ``sun_path`` (108 bytes on Linux, with its terminating NUL).
_SOCKET_PATH_MAX = 100


def socket_path(run_dir: Path, process_id: str) -> Path:
    """A deep home (or a deep TMPDIR) would give a socket path longer than the kernel accepts: the socket
    then goes to a short private directory, in the temporary directory or, if that is deep too, /tmp."""
    path = run_dir / f"{process_id}.sock"
    if len(str(path)) < _SOCKET_PATH_MAX:
        return path
    name = f"wb-{hashlib.sha256(str(run_dir).encode()).hexdigest()[:10]}"
    leaf = f"{hashlib.sha256(process_id.encode()).hexdigest()[:16]}.sock"
    for base in (Path(tempfile.gettempdir()), Path("/tmp")):
        short = base / name / leaf
        if len(str(short)) < _SOCKET_PATH_MAX:
            short.parent.mkdir(mode=0o700, exist_ok=True)
            return short
    raise OSError(f"no directory short enough for the Unix socket of {process_id} (tried {run_dir} and /tmp)")


def failure_message(log_path: Path) -> str | None:
    """The process's own one-line explanation, if it printed one before exiting."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()[-50:]
    except OSError:
        return None
    for line in reversed(lines):
        for marker in ("workbench-replica-error: ", "workbench-router-error: "):
            if marker in line:
                return line.split(marker, 1)[1].strip()
    return None
