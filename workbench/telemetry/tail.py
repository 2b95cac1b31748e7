"""Follow the prediction log as it grows: each poll returns only the records written since the last.

The rollout controller and the live monitors look at telemetry every few seconds; re-reading every
segment each time would cost O(log size) per tick. A tail remembers, per segment, the offset just past
the last complete line it returned. A line still being written (no newline yet) is left for the next
poll, never returned half-read.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from workbench.telemetry.batch_record import expand
from workbench.telemetry.prediction_log import list_segments

log = logging.getLogger("workbench.telemetry")


#: A writer stamps records as requests finish and writes them in that order, so times within a segment
#: only go back by the little a batch reorders; the seek starts this much earlier to be sure.
SEEK_MARGIN_S = 5.0


def _line_ts(line: bytes) -> float | None:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    ts = record.get("ts") if isinstance(record, dict) else None
    return float(ts) if isinstance(ts, int | float) and not isinstance(ts, bool) else None


def seek_time(handle: BinaryIO, size: int, since: float) -> int:
    """The offset of a line at or before the first record with ``ts >= since`` (binary search).

    A rollout or monitor starting on a busy endpoint must not parse the whole 64 MiB active segment to
    find the last minutes; this reads about log2(size / line) lines instead.
    """
    low, high = 0, size  # invariant: the answer's line starts in [low, high]
    while high - low > 4096:
        middle = (low + high) // 2
        handle.seek(middle)
        handle.readline()  # skip to the next line start
        start = handle.tell()
        line = handle.readline()
        if not line.endswith(b"\n"):
            high = middle
            continue
        ts = _line_ts(line)
        if ts is not None and ts < since:
            low = start
        else:
            high = middle
    handle.seek(low)
    if low:
        handle.readline()  # low may be mid-line; start at the next line
    return handle.tell()


class PredictionLogTail:
    """``modified_since`` skips segments last written before it (their records are all older), and a
    segment read for the first time starts near its first record at ``modified_since``."""

    def __init__(
        self,
        directory: Path,
        *,
        modified_since: float | None = None,
        inputs: bool = True,
        lines: bool = False,
    ) -> None:
        self.directory = directory
        self.modified_since = modified_since
        #: True: ``poll`` returns lines as written (batch lines whole), for readers that fold them whole.
        self.lines = lines
        #: False: batch lines expand without each request's inputs (see ``expand``).
        self.inputs = inputs
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
                if segment not in self._offsets and self.modified_since is not None:
                    offset = seek_time(handle, size, self.modified_since - SEEK_MARGIN_S)
                    if offset >= size:
                        self._offsets[segment] = size
                        continue
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
                    if "requests" in record and not self.lines:  # one line for a whole inference batch
                        records.extend(expand(record, inputs=self.inputs))
                    else:
                        records.append(record)
        return records
