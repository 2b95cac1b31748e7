"""An index of an endpoint's predictions by request id, for feedback.

The feedback API must refuse a label for a request that was never made, and record which version made
it and when. The feed follows the endpoint's prediction log (a tail) and writes request id → (time,
version, score) into the state store (``request_index``), one ``executemany`` per poll; the most recent
ids are also kept in memory, so a label posted while its request is fresh costs no query. A label fed
back days later, long after the memory forgot its request, is found in the store: what bounds it is
the retention (``WORKBENCH_FEEDBACK_RETENTION_S``), not the number of requests since.

The monitoring loop polls every endpoint's feed about once a second, so the index keeps up with the
log whether or not anyone sends labels; a lookup polls first, so a label posted right after its
prediction is found once the replica's writer has flushed (every 0.2 s). After a restart the feed
resumes at the newest indexed prediction, not at the start of the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from workbench.monitoring.live import LiveTraffic
from workbench.monitoring.window import record_scores
from workbench.store.engine import Database
from workbench.store.monitoring import IndexedRequest, IndexRow, MonitoringRepository
from workbench.telemetry.batch_record import expand
from workbench.telemetry.tail import SEEK_MARGIN_S, PredictionLogTail

log = logging.getLogger("workbench.monitoring")

#: Recent predictions kept in memory (older ones are looked up in the store).
INDEX_LIMIT = 500_000
FLUSH_GRACE_S = 0.5
#: At most this much of the log is read by one poll, so a backlog is indexed over several polls.
POLL_BYTES = 32 * 1024 * 1024

Prediction = IndexedRequest
#: Told each poll's new records (an experiment assigns its units from them), after they are indexed.
RecordObserver = Callable[[str, Sequence[dict[str, Any]]], None]


class EndpointFeed:
    def __init__(
        self,
        directory: Path,
        *,
        endpoint: str,
        db: Database | None = None,
        since: float | None = None,
        index_limit: int = INDEX_LIMIT,
        observers: Sequence[RecordObserver] = (),
    ) -> None:
        self.endpoint = endpoint
        self._observers = observers
        self._db = db
        self._repo = MonitoringRepository()
        self._since = since
        start = since
        if db is not None:
            with db.read() as connection:
                cursor = self._repo.index_cursor(connection, endpoint)
            if cursor is not None:
                start = cursor - SEEK_MARGIN_S if start is None else max(start, cursor - SEEK_MARGIN_S)
        # Lines as written: the index, the live charts and the experiments read ids, times, versions and
        # scores, which a batch line holds as lists; nothing of a request's inputs or outputs is sliced.
        self._tail = PredictionLogTail(directory, modified_since=start, lines=True)
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, IndexRow] = OrderedDict()
        self._limit = index_limit
        #: The same records folded per second, for live charts (``GET /traffic``).
        self.live = LiveTraffic()

    def poll(self, *, max_bytes: int = POLL_BYTES) -> int:
        """Index what the log gained (store and memory); returns how many records were read."""
        with self._lock:  # one reader of this feed's tail at a time: each record is indexed once
            records: list[dict[str, Any]] = []
            fresh: list[IndexRow] = []
            for line in self._tail.poll(max_bytes=max_bytes):
                if "requests" not in line:
                    scores = record_scores(line)
                    self._index(
                        line, float(scores[0]) if scores is not None and scores.size == 1 else None, fresh
                    )
                    records.append(line)
                    continue
                # A batch line: its requests without inputs or outputs, and each one-row request's score
                # read from the line's output column by offset.
                requests = list(expand(line, inputs=False, outputs=False))
                total = sum(r["rows"] for r in requests if isinstance(r.get("rows"), int))
                line_scores = (
                    record_scores({"outputs": line.get("outputs"), "rows": total}) if total else None
                )
                offset = 0
                for record in requests:
                    rows = record.get("rows")
                    score = None
                    if rows == 1 and line_scores is not None and offset < line_scores.size:
                        score = float(line_scores[offset])
                    offset += rows if isinstance(rows, int) else 0
                    self._index(record, score, fresh)
                records.extend(requests)
            self.live.add(records, now=time.time())
            if fresh and self._db is not None:
                with self._db.write() as connection:
                    self._repo.index_requests(connection, self.endpoint, fresh)
            recent = self._recent
            for item in fresh:
                recent[item[0]] = item
                recent.move_to_end(item[0])
            while len(self._recent) > self._limit:
                self._recent.popitem(last=False)
            for observer in self._observers:
                try:
                    observer(self.endpoint, records)
                except Exception:  # an observer's failure must not stop the index
                    log.exception("feed of %s: an observer failed", self.endpoint)
            return len(records)

    def _index(self, record: dict[str, Any], score: float | None, fresh: list[IndexRow]) -> None:
        ts = float(record.get("ts", 0.0))
        if self._since is not None and ts < self._since:
            return
        request_id = record.get("request_id")
        if not request_id or record.get("shadow"):
            return
        fresh.append((str(request_id), ts, int(record.get("version", 0)), score, record.get("key")))

    def cached(self, request_id: str) -> IndexedRequest | None:
        """The prediction if the in-memory part of the index still holds it."""
        with self._lock:
            row = self._recent.get(request_id)
        return _indexed(row) if row is not None else None

    def lookup(self, request_ids: list[str]) -> dict[str, IndexedRequest]:
        """The predictions these ids name; a miss waits once for the writers' flush and reads again."""
        self.poll()
        found = self._found(request_ids)
        if len(found) < len(set(request_ids)):
            time.sleep(FLUSH_GRACE_S)
            self.poll()
            found = self._found(request_ids)
        return found

    def _found(self, request_ids: list[str]) -> dict[str, IndexedRequest]:
        with self._lock:
            found = {rid: _indexed(self._recent[rid]) for rid in request_ids if rid in self._recent}
        missing = [rid for rid in dict.fromkeys(request_ids) if rid not in found]
        if missing and self._db is not None:
            with self._db.read() as connection:
                found.update(self._repo.indexed(connection, self.endpoint, missing))
        return found

    def prune(self, before: float) -> int:
        """Forget indexed predictions older than ``before`` (the retention), in the store."""
        if self._db is None:
            return 0
        with self._db.write() as connection:
            return self._repo.prune_index(connection, self.endpoint, before)


def _indexed(row: IndexRow) -> IndexedRequest:
    request_id, ts, version, score, key = row
    return IndexedRequest(request_id=request_id, ts=ts, version=version, score=score, routing_key=key)
