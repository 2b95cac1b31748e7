"""CPU time of processes and threads, read from /proc: where a run's cores went, without a profiler.

A thread's CPU time is exact and costs nothing to read, where a sampling profiler attached to the server
would take a share of the two cores it is measuring.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _seconds(stat: str) -> float:
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def process_cpu(pid: int) -> float:
    """User and system seconds of every thread of ``pid`` so far."""
    return _seconds(Path(f"/proc/{pid}/stat").read_text())


def thread_cpu(pid: int) -> dict[int, float]:
    """User and system seconds of each thread of ``pid`` so far, by thread id."""
    found: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found[int(task.name)] = _seconds((task / "stat").read_text())
        except (OSError, ValueError):
            continue  # the thread ended between listing and reading
    return found


def children_cpu() -> float:
    """Seconds used by this process's finished children (a wrk run once it has returned)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
