"""An index of an endpoint's recent predictions by request id, for feedback.

The feedback API must refuse a label for a request that was never made, and record which version made
it and when. The index follows the endpoint's prediction log (a tail) and keeps request id → (time,
version) for the most recent predictions. Looking an id up first reads what the log gained, so
a label posted right after its prediction is found once the replica's writer has flushed (every 0.2 s).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from workbench.telemetry.tail import PredictionLogTail

#: Recent predictions whose request ids feedback may name (the oldest are forgotten beyond this).
INDEX_LIMIT = 500_000
FLUSH_GRACE_S = 0.5


@dataclass(frozen=True)
class Prediction:
    ts: float
    version: int


class EndpointFeed:
    def __init__(
        self, directory: Path, *, since: float | None = None, index_limit: int = INDEX_LIMIT
    ) -> None:
        self._tail = PredictionLogTail(directory, modified_since=since)
        self._since = since
        self._lock = threading.Lock()
        self._index: OrderedDict[str, Prediction] = OrderedDict()
        self._limit = index_limit

    def poll(self) -> int:
        """Read what the log gained into the index; returns how many records were new."""
        with self._lock:
            records = self._tail.poll()
            for record in records:
                if self._since is not None and float(record.get("ts", 0.0)) < self._since:
                    continue
                request_id = record.get("request_id")
                if request_id and not record.get("shadow"):
                    self._index[str(request_id)] = Prediction(
                        ts=float(record.get("ts", 0.0)),
                        version=int(record.get("version", 0)),
                    )
                    if len(self._index) > self._limit:
                        self._index.popitem(last=False)
            return len(records)

    def lookup(self, request_ids: list[str]) -> dict[str, Prediction]:
        """The predictions these ids name; a miss waits once for the writers' flush and reads again."""
        self.poll()
        found = self._found(request_ids)
        if len(found) < len(set(request_ids)):
            time.sleep(FLUSH_GRACE_S)
            self.poll()
            found = self._found(request_ids)
        return found

    def _found(self, request_ids: list[str]) -> dict[str, Prediction]:
        with self._lock:
            return {rid: self._index[rid] for rid in request_ids if rid in self._index}
