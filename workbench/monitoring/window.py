"""A monitor's sliding window: time slices of one scrape interval each, summed on demand.

Each slice keeps counts (requests, server errors), latencies, the feature histogram and the prediction
histogram of the records whose timestamp falls in it, and the (request id, score) pairs that fed-back
labels are joined to. The window is the last ``window_s / every_s`` slices; older ones are dropped, so
memory is bounded by the window and the update cost by what arrived since the last look.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.monitoring.drift import ReferenceProfile, WindowHistogram
from workbench.telemetry.batch_record import expand

PREDICTION = "prediction"


def record_rows(record: dict[str, Any], columns: Sequence[str]) -> dict[str, Any] | None:
    """The logged inputs of a request as column → values, whether it was sent by column or as a matrix."""
    inputs = record.get("inputs")
    if not isinstance(inputs, dict):
        return None
    if "matrix" in inputs and len(inputs) == 1:
        matrix = np.asarray(inputs["matrix"], dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(columns):
            return None
        return {name: matrix[:, i] for i, name in enumerate(columns)}
    return {name: inputs[name] for name in columns if name in inputs}


def record_scores(record: dict[str, Any]) -> np.ndarray[Any, np.dtype[np.float64]] | None:
    """One score per row: the first output, its last column (the positive class of a classifier)."""
    outputs = record.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return None
    try:
        values = np.asarray(next(iter(outputs.values())), dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if values.ndim == 0 or values.size == 0:
        return None
    rows = int(record.get("rows") or values.shape[0])
    return values.reshape(rows, -1)[:, -1] if values.size % max(rows, 1) == 0 else None


@dataclass
class Traffic:
    """One version's requests in a slice: for the per-version series."""

    requests: int = 0
    errors: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))


@dataclass
class Slice:
    start: float
    features: WindowHistogram
    predictions: WindowHistogram | None
    requests: int = 0
    errors: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))
    scored: list[tuple[str, float]] = field(default_factory=list)
    versions: dict[int, int] = field(default_factory=dict)
    by_version: dict[int, Traffic] = field(default_factory=dict)
    #: An endpoint with a feature lookup: each served row's oldest feature, each request's lookup time.
    feature_ages: array[float] = field(default_factory=lambda: array("d"))
    lookup_ms: array[float] = field(default_factory=lambda: array("d"))


@dataclass(frozen=True)
class SeriesValues:
    requests: int
    requests_per_s: float | None
    error_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None


class SlidingWindow:
    def __init__(
        self,
        *,
        window_s: float,
        every_s: float,
        features: ReferenceProfile,
        predictions: ReferenceProfile | None,
    ) -> None:
        self.window_s = window_s
        self.every_s = every_s
        self.features = features
        self.predictions = predictions
        self._slices: dict[int, Slice] = {}

    def _slice(self, ts: float) -> Slice:
        key = math.floor(ts / self.every_s)
        found = self._slices.get(key)
        if found is None:
            found = self._slices[key] = Slice(
                start=key * self.every_s,
                features=WindowHistogram(self.features),
                predictions=WindowHistogram(self.predictions) if self.predictions is not None else None,
            )
        return found

    def add(self, records: Iterable[dict[str, Any]], now: float) -> None:
        """Fold a poll's records into their slices.

        Inputs and scores are gathered per slice and counted into its histograms once per poll: counting a
        request at a time cost a dozen numpy calls per column per request, which at a few thousand requests
        a second was most of what watching an endpoint cost the control plane (and so the machine serving it).
        """
        oldest = now - self.window_s
        columns = self.features.names
        gathered: dict[int, _Gathered] = {}
        for record in records:
            ts = float(record.get("ts", 0.0))
            if ts < oldest or record.get("shadow"):
                continue
            status = int(record.get("status", 0))
            part = self._slice(ts)
            part.requests += 1
            version = int(record.get("version", 0))
            part.versions[version] = part.versions.get(version, 0) + 1
            traffic = part.by_version.get(version)
            if traffic is None:
                traffic = part.by_version[version] = Traffic()
            traffic.requests += 1
            if status >= 500:
                part.errors += 1
                traffic.errors += 1
                continue
            if status >= 400:
                continue
            if "latency_ms" in record:
                part.latencies.append(float(record["latency_ms"]))
                traffic.latencies.append(float(record["latency_ms"]))
            if "lookup_ms" in record:
                _add_lookup(part, record)
            rows = record_rows(record, columns)
            scores = record_scores(record)
            if rows or (scores is not None and part.predictions is not None):
                pending = gathered.get(id(part))
                if pending is None:
                    pending = gathered[id(part)] = _Gathered(part)
                if rows:
                    pending.add_rows(rows)
                if scores is not None and part.predictions is not None:
                    pending.scores.append(scores)
            if scores is not None:
                request_id = str(record.get("request_id") or "")
                if request_id and scores.size == 1:
                    part.scored.append((request_id, float(scores[0])))
        for pending in gathered.values():
            pending.flush()
        self.evict(now)

    def add_lines(self, lines: Iterable[dict[str, Any]], now: float) -> None:
        """Fold prediction-log lines as written (``PredictionLogTail(lines=True)``): a batch line of
        requests that all succeeded is taken whole, its columns sliced once per window slice rather than
        once per request; any other line is expanded and goes through ``add``.

        Expanding each request's inputs (a slice of every column per request) was, after the per-request
        histogram counts, the largest part of what a monitor cost the control plane under load.
        """
        oldest = now - self.window_s
        gathered: dict[int, _Gathered] = {}
        others: list[dict[str, Any]] = []
        for line in lines:
            if not self._add_batch_line(line, oldest, gathered):
                others.extend(expand(line))
        for pending in gathered.values():
            pending.flush()
        self.add(others, now)

    def _add_batch_line(self, line: dict[str, Any], oldest: float, gathered: dict[int, _Gathered]) -> bool:
        """Fold a whole batch line; False (nothing folded) for a line the fast path does not cover."""
        requests, inputs, outputs = line.get("requests"), line.get("inputs"), line.get("outputs")
        if not isinstance(requests, dict) or not isinstance(inputs, dict) or not isinstance(outputs, dict):
            return False
        if not outputs or line.get("shadow") or "lookup_ms" in line:
            return False
        fields: list[list[Any]] = []
        for name in ("ts", "request_id", "status", "shadow", "rows", "latency_ms"):
            values = requests.get(name)
            if not isinstance(values, list):
                return False
            fields.append(values)
        stamps, ids, statuses, shadows, counts, latencies = fields
        n = len(stamps)
        if any(len(values) != n for values in fields) or any(shadows):
            return False
        if not all(type(s) is int and s < 400 for s in statuses):
            return False
        if not all(type(c) is int and c >= 0 for c in counts):
            return False
        total = sum(counts)
        rows = record_rows({"inputs": inputs}, self.features.names)
        if rows is None or any(_size(values) != total for values in rows.values()):
            return False
        try:
            values = np.asarray(next(iter(outputs.values())), dtype=np.float64)
        except (TypeError, ValueError):
            return False
        if total == 0 or values.size == 0 or values.size % total:
            return False
        scores = values.reshape(total, -1)[:, -1]
        version = int(line.get("version", 0))
        index, offset = 0, 0
        while index < n:
            stamp = float(stamps[index])
            if stamp < oldest:
                offset += counts[index]
                index += 1
                continue
            part = self._slice(stamp)
            first_row, end = offset, index
            while end < n and float(stamps[end]) >= oldest and self._slice(float(stamps[end])) is part:
                if counts[end] == 1 and ids[end]:
                    part.scored.append((str(ids[end]), float(scores[offset])))
                offset += counts[end]
                end += 1
            taken = end - index
            part.requests += taken
            part.versions[version] = part.versions.get(version, 0) + taken
            traffic = part.by_version.get(version)
            if traffic is None:
                traffic = part.by_version[version] = Traffic()
            traffic.requests += taken
            lat = [float(v) for v in latencies[index:end]]
            part.latencies.extend(lat)
            traffic.latencies.extend(lat)
            pending = gathered.get(id(part))
            if pending is None:
                pending = gathered[id(part)] = _Gathered(part)
            if offset > first_row:
                whole = first_row == 0 and offset == total  # the usual case: the line is in one slice
                pending.add_rows(
                    rows if whole else {name: column[first_row:offset] for name, column in rows.items()},
                    count=offset - first_row,
                )
                if part.predictions is not None:
                    pending.scores.append(scores[first_row:offset])
            index = end
        return True

    def evict(self, now: float) -> None:
        oldest = math.floor((now - self.window_s) / self.every_s)
        for key in [k for k in self._slices if k < oldest]:
            del self._slices[key]

    def parts(self) -> list[Slice]:
        return [self._slices[k] for k in sorted(self._slices)]

    def _span(self, parts: list[Slice], now: float) -> float:
        return min(self.window_s, max(now - parts[0].start, self.every_s)) if parts else self.window_s

    def series(self, now: float) -> SeriesValues:
        parts = self.parts()
        return _series(
            sum(p.requests for p in parts),
            sum(p.errors for p in parts),
            [p.latencies for p in parts],
            self._span(parts, now),
        )

    def series_by_version(self, now: float) -> dict[int, SeriesValues]:
        """The same series for each version that answered in the window."""
        parts = self.parts()
        span = self._span(parts, now)
        versions = sorted({v for p in parts for v in p.by_version})
        out: dict[int, SeriesValues] = {}
        for version in versions:
            mine = [p.by_version[version] for p in parts if version in p.by_version]
            out[version] = _series(
                sum(t.requests for t in mine), sum(t.errors for t in mine), [t.latencies for t in mine], span
            )
        return out

    def feature_histogram(self) -> WindowHistogram:
        return WindowHistogram.combined(self.features, (p.features for p in self.parts()))

    def prediction_histogram(self) -> WindowHistogram | None:
        if self.predictions is None:
            return None
        return WindowHistogram.combined(
            self.predictions, (p.predictions for p in self.parts() if p.predictions is not None)
        )

    def scored(self) -> list[tuple[str, float]]:
        return [pair for p in self.parts() for pair in p.scored]

    def versions(self) -> dict[int, int]:
        total: dict[int, int] = {}
        for part in self.parts():
            for version, count in part.versions.items():
                total[version] = total.get(version, 0) + count
        return total

    def lookup_series(self) -> dict[str, float | None]:
        """Feature freshness and lookup time over the window; None for an endpoint without a lookup."""
        parts = self.parts()
        ages = np.concatenate([np.asarray(p.feature_ages) for p in parts]) if parts else np.empty(0)
        lookups = np.concatenate([np.asarray(p.lookup_ms) for p in parts]) if parts else np.empty(0)
        return {
            "feature_age_max_s": float(ages.max()) if ages.size else None,
            "feature_lookup_p95_ms": float(np.quantile(lookups, 0.95)) if lookups.size else None,
        }

    @property
    def start(self) -> float | None:
        parts = self.parts()
        return parts[0].start if parts else None


class _Gathered:
    """One slice's inputs and scores from one poll, counted into its histograms in one call each."""

    __slots__ = ("columns", "part", "rows", "scores")

    def __init__(self, part: Slice) -> None:
        self.part = part
        self.columns: dict[str, list[Any]] = {}
        self.rows = 0
        self.scores: list[np.ndarray[Any, np.dtype[np.float64]]] = []

    def add_rows(self, rows: dict[str, Any], *, count: int | None = None) -> None:
        """One request's columns (``count`` None: its longest column is its row count), or a known number
        of rows whose columns all have that length."""
        most = 0
        for name, values in rows.items():
            size = _size(values) if count is None else count
            most = max(most, size)
            if size:
                self.columns.setdefault(name, []).append(values)
        self.rows += most

    def flush(self) -> None:
        if self.columns:
            joined = {name: _joined(parts) for name, parts in self.columns.items()}
            self.part.features.add(joined, rows=self.rows)
        if self.scores and self.part.predictions is not None:
            self.part.predictions.add({PREDICTION: np.concatenate(self.scores)})


def _size(values: Any) -> int:
    if isinstance(values, np.ndarray):
        return int(values.size)
    if isinstance(values, list | tuple):
        return len(values)
    return 1


def _joined(parts: list[Any]) -> Any:
    """Lists (the JSON the log holds) are extended in Python, arrays concatenated; one array either way."""
    if all(isinstance(part, list) for part in parts):
        flat: list[Any] = []
        for part in parts:
            flat.extend(part)
        return flat
    return np.concatenate([np.asarray(part, dtype=np.float64).reshape(-1) for part in parts])


def _add_lookup(part: Slice, record: dict[str, Any]) -> None:
    part.lookup_ms.append(float(record["lookup_ms"]))
    lookup = record.get("lookup")
    ages = lookup.get("feature_age_s") if isinstance(lookup, dict) else None
    if isinstance(ages, list):
        part.feature_ages.extend(
            float(age) for age in ages if isinstance(age, int | float) and math.isfinite(age)
        )


def _series(requests: int, errors: int, latencies: list[array[float]], span: float) -> SeriesValues:
    joined = np.concatenate([np.asarray(part) for part in latencies]) if latencies else np.empty(0)

    def quantile(q: float) -> float | None:
        return float(np.quantile(joined, q)) if joined.size else None

    return SeriesValues(
        requests=requests,
        requests_per_s=requests / span if span > 0 else None,
        error_rate=errors / requests if requests else None,
        latency_p50_ms=quantile(0.5),
        latency_p95_ms=quantile(0.95),
        latency_p99_ms=quantile(0.99),
    )
