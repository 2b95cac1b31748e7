"""The supervisor's in-memory state: its processes, the endpoints it routes, and ``run/supervisor.json``.

One lock guards it, and the lock only ever covers changes to these dictionaries and the processes'
fields: no readiness wait, health check, spawn, HTTP call or drain happens under it, so a status read
never waits behind a deploy's warm-up. Whoever waits for a process to change state waits on the
table's condition, which releases the lock while waiting.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

from workbench.errors import UnavailableError
from workbench.serving.processes import Managed
from workbench.specs.endpoint import EndpointSpec

ROUTER_ID = "router"


class ProcessTable:
    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)
        self._processes: dict[str, Managed] = {}
        self._specs: dict[str, EndpointSpec] = {}
        self._revision = int(time.time() * 1000)
        # Orders writes of the state file (a newer snapshot is never overwritten by an older one); taken
        # without the table's lock held, and only by writers of that file.
        self._save_lock = threading.Lock()

    # ---------------------------------------------------------------- reads
    def get(self, process_id: str) -> Managed | None:
        with self._lock:
            return self._processes.get(process_id)

    def snapshot(self) -> list[Managed]:
        with self._lock:
            return list(self._processes.values())

    def describe(self, kind: str | None = None, endpoint: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                m.describe()
                for m in self._processes.values()
                if (kind is None or m.kind == kind) and (endpoint is None or m.endpoint == endpoint)
            ]

    def is_current(self, managed: Managed) -> bool:
        """Still the table's process of that id (not retired or replaced meanwhile)."""
        with self._lock:
            return self._processes.get(managed.process_id) is managed

    # -------------------------------------------------------------- changes
    def update(self, managed: Managed, *, when: Iterable[str] | None = None, **fields: Any) -> bool:
        """Set ``fields`` on ``managed`` if it is still current (and in one of the states ``when``).

        The check and the change are one step; waiters on :attr:`changed` are woken.
        """
        with self._lock:
            if self._processes.get(managed.process_id) is not managed:
                return False
            if when is not None and managed.state not in when:
                return False
            for name, value in fields.items():
                setattr(managed, name, value)
            self.changed.notify_all()
            return True

    def mutate(self, change: Callable[[], Any]) -> Any:
        """Run ``change`` (in-memory only) under the lock and wake the waiters."""
        with self._lock:
            result = change()
            self.changed.notify_all()
            return result

    def put(self, managed: Managed) -> None:
        with self._lock:
            self._processes[managed.process_id] = managed
            self.changed.notify_all()

    def remove(self, managed: Managed) -> bool:
        with self._lock:
            if self._processes.get(managed.process_id) is not managed:
                return False
            del self._processes[managed.process_id]
            self.changed.notify_all()
            return True

    def clear(self) -> list[Managed]:
        with self._lock:
            processes = list(self._processes.values())
            self._processes.clear()
            self.changed.notify_all()
            return processes

    # ---------------------------------------------------------- endpoints
    def claim(self, fresh: Managed, deadline: float) -> Managed | None:
        """Put ``fresh`` in the table to be started, unless its process is ready (None) already.

        A process someone else is starting, restarting or stopping is waited for (on the condition,
        which releases the lock); one that crashed or failed is replaced by ``fresh``.
        """
        with self._lock:
            while True:
                current = self._processes.get(fresh.process_id)
                if current is not None and current.state == "ready":
                    return None
                if current is None or current.state not in ("starting", "restarting", "stopping"):
                    fresh.state = "starting"
                    self._processes[fresh.process_id] = fresh
                    self.changed.notify_all()
                    return fresh
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise UnavailableError(f"{fresh.kind} {fresh.process_id} was not ready in time")
                self.changed.wait(remaining)

    def set_spec(self, name: str, spec: EndpointSpec | None) -> None:
        """Route ``name`` as ``spec`` says from the next route table on (None: not at all)."""
        with self._lock:
            if spec is None:
                self._specs.pop(name, None)
            else:
                self._specs[name] = spec

    def set_specs(self, specs: Iterable[EndpointSpec]) -> None:
        with self._lock:
            self._specs = {spec.name: spec for spec in specs}

    def take_unwanted(self, wanted: Callable[[str], bool], endpoint: str | None = None) -> list[Managed]:
        """Replicas (of ``endpoint``, or of any) that ``wanted`` refuses leave the table and are returned,
        to be stopped by the caller with no lock held."""
        with self._lock:
            retired = [
                m
                for m in self._processes.values()
                if m.kind == "replica"
                and (endpoint is None or m.endpoint == endpoint)
                and not wanted(m.process_id)
            ]
            for managed in retired:
                del self._processes[managed.process_id]
            self.changed.notify_all()
            return retired

    def routing_view(self) -> tuple[int, list[EndpointSpec], dict[str, Managed]]:
        """A new route revision with the specs and ready processes it is computed from, taken at once.

        Revisions grow with every view, so a table built from a later view is always newer: the router
        refuses an older revision, so pushes made outside the lock can arrive in any order.
        """
        with self._lock:
            self._revision = max(self._revision + 1, int(time.time() * 1000))
            ready = {pid: m for pid, m in self._processes.items() if m.state == "ready" and m.info}
            return self._revision, list(self._specs.values()), ready

    # -------------------------------------------------------- state file
    def save(self) -> None:
        """Record the live processes for adoption by the next control plane (``run/supervisor.json``)."""
        with self._save_lock:
            with self._lock:
                records = [
                    m.as_record() for m in self._processes.values() if m.state not in ("stopped", "failed")
                ]
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_bytes(orjson.dumps({"processes": records}, option=orjson.OPT_INDENT_2))
            os.replace(tmp, self.state_file)

    def load_records(self) -> list[dict[str, Any]]:
        if not self.state_file.is_file():
            return []
        try:
            records = orjson.loads(self.state_file.read_bytes()).get("processes", [])
        except orjson.JSONDecodeError:
            return []
        return [r for r in records if isinstance(r, dict)]


def from_record(record: dict[str, Any]) -> Managed:
    return Managed(
        process_id=record["process_id"],
        kind=record["kind"],
        command=list(record["command"]),
        config_path=Path(record["config_path"]),
        ready_file=Path(record["ready_file"]),
        log_path=Path(record["log_path"]),
        endpoint=record.get("endpoint"),
        model=record.get("model"),
        version=record.get("version"),
        pid=record.get("pid"),
    )
