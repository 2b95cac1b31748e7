"""Health checking and the restart policy: crash → out of the routes → back-off → restart → back in.

The watchdog thread looks at every process four times a second. It health-checks ready ones over HTTP
(every two seconds each), stops one that failed three checks in a row, and restarts crashed ones with
exponential back-off. A restart is not waited for: the process is spawned and the following looks poll
its ready file, so one slow restart holds up neither the other processes' checks nor anybody's deploy.
No lock is held across a check, a spawn or a stop; every state change is one step on the process table.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from workbench.serving.process_table import ProcessTable
from workbench.serving.processes import (
    START_TIMEOUT_S,
    Managed,
    failure_message,
    poll_ready,
    spawn,
    terminate,
)

log = logging.getLogger("workbench.supervisor")

AuditFn = Callable[..., Any]
HEALTH_EVERY_S = 2.0
HEALTH_FAILURES_BEFORE_RESTART = 3
MAX_BACKOFF_S = 30.0
LOOK_EVERY_S = 0.25


def backoff_delay(restarts: int) -> float:
    """Seconds before restart number ``restarts + 1``: 0.5 s doubling, at most 30 s."""
    return float(min(MAX_BACKOFF_S, 0.5 * (2**restarts)))


def healthy(http: httpx.Client, managed: Managed) -> bool:
    """The process answers its health check, as the process the supervisor expects there."""
    url = managed.base_url()
    if url is None:
        return False
    path = "/-/health" if managed.kind == "router" else "/v2/health/ready"
    try:
        response = http.get(url + path, timeout=2.0)
    except httpx.HTTPError:
        return False
    if response.status_code != 200:
        return False
    if managed.kind == "replica":
        return bool(response.json().get("replica_id") == managed.process_id)
    return True


class Watchdog:
    def __init__(
        self,
        table: ProcessTable,
        http: httpx.Client,
        audit: AuditFn,
        on_change: Callable[[], None],
    ) -> None:
        """``on_change`` is called (no lock held) after a process left or re-joined the routes."""
        self.table = table
        self._http = http
        self._audit = audit
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(LOOK_EVERY_S):
            try:
                self.look()
            except Exception:  # the watchdog must outlive any single failure
                log.exception("supervisor check failed")

    def look(self) -> None:
        """One look at every process; the routes are pushed again if any left or re-joined them."""
        changed = False
        for managed in self.table.snapshot():
            if self._stop.is_set():
                return
            state = managed.state
            if state == "ready":
                changed |= self._check(managed)
            elif state == "backoff" and time.monotonic() >= managed.next_start_at:
                self._restart(managed)
            elif state == "restarting":
                changed |= self._poll_restart(managed)
        if changed:
            self._on_change()

    # ------------------------------------------------------------- checks
    def _check(self, managed: Managed) -> bool:
        if not managed.alive():
            return self._crashed(managed, f"exited with code {managed.exit_code()}", was=("ready",))
        now = time.monotonic()
        if now - managed.last_health_at < HEALTH_EVERY_S:
            return False
        managed.last_health_at = now
        ok = healthy(self._http, managed)  # HTTP, no lock held
        failures = 0 if ok else managed.health_failures + 1
        if not self.table.update(managed, when=("ready",), health_failures=failures):
            return False  # retired or replaced meanwhile
        if failures < HEALTH_FAILURES_BEFORE_RESTART:
            return False
        if not self.table.update(managed, when=("ready",), state="stopping"):
            return False
        self._on_change()  # out of the routes before it is stopped
        terminate(managed)
        return self._crashed(managed, "failed its health checks", was=("stopping",))

    def _crashed(self, managed: Managed, why: str, *, was: tuple[str, ...]) -> bool:
        delay = backoff_delay(managed.restarts)
        updated = self.table.update(
            managed,
            when=was,
            state="backoff",
            last_error=failure_message(managed.log_path) or why,
            next_start_at=time.monotonic() + delay,
            restarts=managed.restarts + 1,
        )
        if not updated:
            return False
        log.warning("%s %s %s; restarting in %.1fs", managed.kind, managed.process_id, why, delay)
        self._audit(
            actor="supervisor",
            action=f"{managed.kind}.crash",
            target=managed.target,
            before={"process": managed.process_id, "pid": managed.pid, "version": managed.version},
            reason=f"{why}; restart #{managed.restarts} in {delay:.1f}s",
        )
        return True

    # ----------------------------------------------------------- restarts
    def _restart(self, managed: Managed) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        if not self.table.update(managed, when=("backoff",), state="restarting", start_deadline=deadline):
            return  # a deploy took it over, or it was retired
        try:
            spawned = spawn(managed)
        except OSError as exc:
            self._crashed(managed, f"restart failed: {exc}", was=("restarting",))
            return
        if not spawned:
            return
        self._audit(
            actor="supervisor",
            action=f"{managed.kind}.start",
            target=managed.target,
            after={"process": managed.process_id, "pid": managed.pid, "version": managed.version},
        )

    def _poll_restart(self, managed: Managed) -> bool:
        try:
            info = poll_ready(managed)
        except Exception as exc:
            return self._crashed(managed, f"restart failed: {exc}", was=("restarting",))
        if info is None:
            if time.monotonic() < managed.start_deadline:
                return False
            terminate(managed)
            return self._crashed(managed, "restart failed: not ready in time", was=("restarting",))
        if not self.table.update(managed, when=("restarting",), info=info, state="ready", health_failures=0):
            return False
        self._audit(
            actor="supervisor",
            action=f"{managed.kind}.restart",
            target=managed.target,
            after={"process": managed.process_id, "pid": managed.pid, "restarts": managed.restarts},
        )
        self.table.save()
        return True
