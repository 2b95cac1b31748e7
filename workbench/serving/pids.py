"""Whether a process that is not our child still runs: adopted replicas, and replicas whose fork server
is gone. Neither can be waited for, so a zombie (ended, not yet reaped by its parent) counts as ended."""

from __future__ import annotations

import psutil


def is_running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # it exists, but may not be looked at (another user's): assume it runs
        return True
