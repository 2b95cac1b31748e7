"""Per-second traffic of an endpoint, folded from its prediction log as the feed reads it.

A live chart wants a new point every second with at most a second or two of delay. The persisted
monitor history (``monitor-history``) has a point per monitor look (5-10 s) and the on-demand
``series`` re-reads the whole log per call; neither fits a one-second poll. The endpoint's feed already
reads every record once as it is written (for the feedback index); this folds the same records into
one bucket per second and version, so answering "what happened since t" is a slice of memory.

A bucket is *sealed* once its second is more than ``grace_s`` in the past (a replica's writer flushes
every 0.2 s and a batch's line carries up to ``max_wait`` of reordering); only sealed buckets are
served as points, so a chart never shows a second that later changes. Running totals count every
record at once: a counter on a page moves as soon as the log has the request.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ALL = "all"
#: Seconds of per-second points kept in memory; older history is the monitors' persisted series.
DEFAULT_HORIZON_S = 900
DEFAULT_GRACE_S = 1.0
#: Latencies kept per open bucket and key; beyond it, a uniform reservoir keeps percentiles honest.
RESERVOIR = 4096
KEEP_ZEROS_S = 60
FIELDS = ("requests", "errors", "requests_per_s", "error_rate", "p50_ms", "p95_ms", "p99_ms", "batch_size")


@dataclass
class _Open:
    requests: int = 0
    errors: int = 0
    seen_latencies: int = 0
    latencies: list[float] = field(default_factory=list)
    batch_rows: int = 0  # sum over requests of the size of the batch each request was answered in
    batched: int = 0

    def add(self, latency: float | None, error: bool, batch: int | None, rng: np.random.Generator) -> None:
        self.requests += 1
        self.errors += error
        if batch is not None:
            self.batch_rows += batch
            self.batched += 1
        if latency is None:
            return
        self.seen_latencies += 1
        if len(self.latencies) < RESERVOIR:
            self.latencies.append(latency)
        else:
            slot = int(rng.integers(0, self.seen_latencies))
            if slot < RESERVOIR:
                self.latencies[slot] = latency


@dataclass(frozen=True)
class SealedPoint:
    second: int
    key: str
    requests: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    batch_size: float | None = None


def _seal(second: int, key: str, bucket: _Open) -> SealedPoint:
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    if bucket.latencies:
        p50, p95, p99 = (round(float(v), 4) for v in np.quantile(bucket.latencies, (0.5, 0.95, 0.99)))
    batch = round(bucket.batch_rows / bucket.batched, 3) if bucket.batched else None
    return SealedPoint(second, key, bucket.requests, bucket.errors, p50, p95, p99, batch)


class LiveTraffic:
    """Thread-safe: the feed adds from the monitoring loop, the API reads from request threads."""

    def __init__(self, *, horizon_s: int = DEFAULT_HORIZON_S, grace_s: float = DEFAULT_GRACE_S) -> None:
        self.horizon_s = horizon_s
        self.grace_s = grace_s
        self._lock = threading.Lock()
        self._open: dict[tuple[int, str], _Open] = {}
        self._sealed: deque[SealedPoint] = deque()
        self._sealed_through = -1  # every second <= this is sealed; later records for it are late
        self._totals: dict[str, list[int]] = {}  # key -> [requests, errors]
        self._first: int | None = None  # the first second with traffic: no zeros are drawn before it
        self._keys_seen: dict[str, int] = {}  # key -> last second with traffic: zeros are drawn after it
        self.late = 0
        self._rng = np.random.default_rng(0)

    def add(self, records: Iterable[dict[str, Any]], *, now: float) -> None:
        with self._lock:
            oldest = int(now) - self.horizon_s
            for record in records:
                if record.get("shadow"):
                    continue
                ts = record.get("ts")
                if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
                    continue
                status = int(record.get("status", 0) or 0)
                error = status >= 500
                raw = record.get("latency_ms")
                latency = float(raw) if status < 400 and isinstance(raw, int | float) else None
                version = str(record.get("version", "?"))
                size = record.get("batch_size")
                batch = size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None
                for key in (ALL, version):
                    totals = self._totals.setdefault(key, [0, 0])
                    totals[0] += 1
                    totals[1] += error
                second = int(ts)
                if second < oldest:
                    continue
                if second <= self._sealed_through:
                    self.late += 1
                    continue
                self._first = second if self._first is None else min(self._first, second)
                self._keys_seen[version] = max(self._keys_seen.get(version, second), second)
                for key in (ALL, version):
                    bucket = self._open.get((second, key))
                    if bucket is None:
                        bucket = self._open[(second, key)] = _Open()
                    bucket.add(latency, error, batch, self._rng)
            self._seal_until(now)

    def _seal_until(self, now: float) -> None:
        """Seal every second that ended more than ``grace_s`` ago, including empty ones (zero traffic)."""
        through = math.floor(now - self.grace_s) - 1
        if through <= self._sealed_through or self._first is None:
            return
        start = max(self._sealed_through + 1, through - self.horizon_s + 1, self._first)
        # A version quiet for a while still gets zero points for KEEP_ZEROS_S (its traffic fell to 0),
        # then none: a version removed from the endpoint does not draw a flat line for ever.
        keys = {key for _, key in self._open} | {ALL}
        keys |= {key for key, last in self._keys_seen.items() if last >= start - KEEP_ZEROS_S}
        ready = sorted(k for k in self._open if k[0] <= through)
        by_second: dict[int, dict[str, _Open]] = {}
        for second, key in ready:
            by_second.setdefault(second, {})[key] = self._open.pop((second, key))
        for second in range(start, through + 1):
            buckets = by_second.get(second, {})
            for key in sorted(keys | set(buckets)):
                bucket = buckets.get(key)
                if bucket is not None:
                    self._sealed.append(_seal(second, key, bucket))
                elif key == ALL or second - self._keys_seen.get(key, second) <= KEEP_ZEROS_S:
                    self._sealed.append(SealedPoint(second, key, 0, 0, None, None, None))
        self._sealed_through = through
        oldest = through - self.horizon_s
        while self._sealed and self._sealed[0].second <= oldest:
            self._sealed.popleft()

    def typical_batch(self, key: str = ALL, *, now: float) -> float | None:
        """The request-weighted mean batch size over the sealed seconds held (None without traffic).

        Seconds are sealed here too: nothing else seals them when no live chart is open."""
        with self._lock:
            self._seal_until(now)
            weighted = [(p.batch_size, p.requests) for p in self._sealed if p.key == key and p.batch_size]
        requests = sum(count for _size, count in weighted)
        return sum(size * count for size, count in weighted) / requests if requests else None

    def since(self, since: float | None, *, now: float) -> dict[str, Any]:
        """Sealed points with ``second >= since`` per key (columns), the running totals, and the cursor
        to ask from next (``through + 1``)."""
        with self._lock:
            self._seal_until(now)
            first = -math.inf if since is None else since
            columns: dict[str, dict[str, list[Any]]] = {}
            for point in self._sealed:
                if point.second < first:
                    continue
                column = columns.setdefault(point.key, {"ts": [], **{f: [] for f in FIELDS}})
                column["ts"].append(point.second)
                column["requests"].append(point.requests)
                column["errors"].append(point.errors)
                column["requests_per_s"].append(float(point.requests))
                column["error_rate"].append(point.errors / point.requests if point.requests else None)
                column["p50_ms"].append(point.p50_ms)
                column["p95_ms"].append(point.p95_ms)
                column["p99_ms"].append(point.p99_ms)
                column["batch_size"].append(point.batch_size)
            totals = {key: {"requests": r, "errors": e} for key, (r, e) in sorted(self._totals.items())}
            return {
                "through": self._sealed_through,
                "next": self._sealed_through + 1,
                "points": columns,
                "totals": totals,
            }
