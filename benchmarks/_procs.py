"""Memory of a process and its descendants, read from /proc (what `ps` would say, summed)."""

from __future__ import annotations

from pathlib import Path


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def rss_mb(pid: int, *, tree: bool = True) -> float:
    pids = [pid]
    if tree:
        stack = [pid]
        while stack:
            for child in _children(stack.pop()):
                pids.append(child)
                stack.append(child)
    total_kb = 0
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024
