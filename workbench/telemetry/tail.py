"""Follow the prediction log as it grows: each poll returns only the records written since the last.

The rollout controller and the live monitors look at telemetry every few seconds; re-reading every
segment each time would cost O(log size) per tick. A tail remembers, per segment, the offset just past
the last complete line it returned. A line still being written (no newline yet) is left for the next
poll, never returned half-read.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson

from workbench.telemetry.prediction_log import list_segments

log = logging.getLogger("workbench.telemetry")


class PredictionLogTail:
    """``modified_since`` skips segments last written before it (their records are all older)."""

    def __init__(self, directory: Path, *, modified_since: float | None = None) -> None:
        self.directory = directory
        self.modified_since = modified_since
        self._offsets: dict[Path, int] = {}

    def poll(self, *, max_bytes: int = 256 * 1024 * 1024) -> list[dict[str, Any]]:
        """Every complete record appended since the previous poll, segment by segment."""
        records: list[dict[str, Any]] = []
        budget = max_bytes
        for segment in list_segments(self.directory):
            if budget <= 0:
                break
            offset = self._offsets.get(segment, 0)
            try:
                stat = segment.stat()
            except OSError:
                continue
            size = stat.st_size
            if size <= offset:
                continue
            if offset == 0 and self.modified_since is not None and stat.st_mtime < self.modified_since:
                self._offsets[segment] = size  # closed before the window began: nothing in it is wanted
                continue
            with segment.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read(min(size - offset, budget))
            end = chunk.rfind(b"\n")
            if end < 0:
                continue  # only a line still being written
            complete = chunk[: end + 1]
            self._offsets[segment] = offset + len(complete)
            budget -= len(complete)
            for line in complete.splitlines():
                if not line:
                    continue
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    log.warning("skipping a corrupt line in %s", segment)
                    continue
                if isinstance(record, dict):
                    records.append(record)
        return records
