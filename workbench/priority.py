"""Background work in the control plane yields the cores to serving.

On the embedded default, the control plane shares the machine with the router and the replicas. Its
monitoring (reading the prediction log, folding it into windows, drift, history, the feedback index)
is work that can finish a few milliseconds later without anyone noticing; a request that waits behind it
is the serving p99. Linux schedules each thread on its own, so the control plane lowers the priority of
only the threads doing that work (``nice``), never its API threads. Under full load they still get a
share of the CPU (a thread at nice 5 gets about a third of a nice-0 thread's), and all of it when a
core is idle: monitoring is delayed by a busy machine, never stopped.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

__all__ = ["BACKGROUND_NICE", "lower_this_thread"]

log = logging.getLogger(__name__)

#: The niceness the control plane's background threads take (0 leaves them as they are).
BACKGROUND_NICE = 5
_MAX_NICE = 19


def lower_this_thread(nice: int = BACKGROUND_NICE) -> int | None:
    """Lower the calling thread's scheduling priority to at least ``nice``; its niceness afterwards, or
    None where threads cannot be prioritised one by one (not Linux) or the kernel refused."""
    if nice <= 0 or not sys.platform.startswith("linux"):  # elsewhere a thread id is not a process id
        return None
    thread = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread)
        target = min(_MAX_NICE, max(current, nice))
        if target != current:
            os.setpriority(os.PRIO_PROCESS, thread, target)
        return os.getpriority(os.PRIO_PROCESS, thread)
    except OSError as exc:  # a container's seccomp profile, say: run at the usual priority
        log.info("could not lower the priority of thread %s: %s", threading.current_thread().name, exc)
        return None
