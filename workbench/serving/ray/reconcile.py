"""Keeping Ray's applications what the control plane declared, between changes too.

Ray Serve restores a declared config by itself after a replica or its controller dies; what it cannot
restore is a config it no longer holds: an application deleted by hand (``serve delete``, the dashboard),
another driver's ``serve deploy`` replacing the config, a head node restarted without its GCS state. The
control plane holds the desired applications, so a periodic look (``WORKBENCH_RAY_RECONCILE_S``) finds
what is missing or foreign and declares the whole config again; unchanged applications are left alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("workbench.ray")


@dataclass(frozen=True)
class Drift:
    """Applications declared but absent from Ray, and applications Ray runs that were not declared."""

    missing: tuple[str, ...]
    foreign: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.missing or self.foreign)


def drift(declared: Iterable[str], running: Mapping[str, Any]) -> Drift:
    """``running`` maps Ray's application names to their status; one being deleted is on its way out
    (a withdrawal draining), neither missing nor foreign."""
    wanted = set(declared)
    live = {name for name, status in running.items() if str(getattr(status, "value", status)) != "DELETING"}
    return Drift(missing=tuple(sorted(wanted - set(running))), foreign=tuple(sorted(live - wanted)))


class Reconciler:
    """Calls ``look`` every ``every_s`` seconds on a daemon thread until stopped. A look that raises (Ray
    unreachable for a while) is logged and tried again at the next period; it never stops the loop."""

    def __init__(self, look: Callable[[], object], every_s: float) -> None:
        self._look = look
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ray-reconcile", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                self._look()
            except Exception as exc:
                log.warning("Ray reconciliation failed, trying again in %.0f s: %s", self._every_s, exc)
