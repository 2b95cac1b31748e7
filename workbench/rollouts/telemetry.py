"""One rollout's telemetry, read incrementally from the prediction log and kept compact.

The controller looks every tick; re-reading the whole log since the rollout began would cost O(log size)
per tick. :class:`RolloutTelemetry` follows the log with a tail and keeps, per version and role (live or
shadow), only what the analysis uses: time, outcome, latency and one prediction scalar per request. For a
shadow rollout it also pairs each mirrored request with its primary by request id and keeps the largest
absolute difference of their outputs.

Nothing here is authoritative: a restarted control plane rebuilds it from the log, which is why the
controller can keep it in memory.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.rollouts.analysis import VariantSample
from workbench.telemetry.tail import PredictionLogTail

#: Unmatched outputs kept while waiting for their pair; the oldest go first beyond this.
MAX_UNPAIRED = 100_000
#: Answers per version kept waiting for their label; the oldest go first beyond this.
MAX_SCORED = 200_000


def _floats() -> array[float]:
    return array("d")


@dataclass
class _Series:
    """Typed arrays, not lists: 8 bytes a value instead of ~32, for canaries of millions of requests."""

    ts: array[float] = field(default_factory=_floats)
    error: array[int] = field(default_factory=lambda: array("b"))
    latency_ts: array[float] = field(default_factory=_floats)
    latency_ms: array[float] = field(default_factory=_floats)
    prediction_ts: array[float] = field(default_factory=_floats)
    prediction: array[float] = field(default_factory=_floats)


@dataclass(frozen=True)
class Agreement:
    """Paired shadow and primary outputs: how many pairs, and how many differ beyond the tolerance."""

    pairs: int
    disagreements: int
    mean_abs_diff: float | None
    max_abs_diff: float | None


def first_output(record: dict[str, Any]) -> np.ndarray[Any, np.dtype[np.float64]] | None:
    """The first output tensor of a logged request, flattened (the score a classifier returns)."""
    outputs = record.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return None
    try:
        values = np.asarray(next(iter(outputs.values())), dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    return values if values.size else None


class RolloutTelemetry:
    def __init__(
        self,
        directory: Path,
        *,
        since: float,
        versions: Iterable[int],
        pair_shadows: bool = False,
        track_scores: bool = False,
    ) -> None:
        self.since = since
        self.versions = frozenset(versions)
        self.pair_shadows = pair_shadows
        # A segment last written before ``since`` holds nothing newer (a record is written after its
        # timestamp is taken, on this machine's clock); the tail's seek keeps a few seconds of margin.
        self._tail = PredictionLogTail(directory, modified_since=since)
        self._series: dict[tuple[int, bool], _Series] = {}
        self._unpaired: dict[bool, OrderedDict[str, np.ndarray[Any, np.dtype[np.float64]]]] = {
            False: OrderedDict(),
            True: OrderedDict(),
        }
        self._pair_ts = _floats()
        self._pair_diff = _floats()
        # For checks on fed-back labels: each version's recent one-row answers by request id, and the
        # (time, score, label) triples joined so far.
        self.track_scores = track_scores
        self._scores: dict[int, OrderedDict[str, float]] = {}
        self._labelled: dict[int, tuple[array[float], array[float], array[float]]] = {}

    def refresh(self) -> int:
        """Read what the log gained since the last refresh; returns how many records were new."""
        records = self._tail.poll()
        for record in records:
            self._add(record)
        return len(records)

    def _add(self, record: dict[str, Any]) -> None:
        ts = record.get("ts")
        version = record.get("version")
        if not isinstance(ts, int | float) or ts < self.since or version not in self.versions:
            return
        status = int(record.get("status", 0))
        if 400 <= status < 500:  # the caller's mistake, not the version's
            return
        shadow = bool(record.get("shadow"))
        series = self._series.setdefault((int(version), shadow), _Series())
        series.ts.append(float(ts))
        series.error.append(status >= 500)
        if "latency_ms" in record and status < 500:
            series.latency_ts.append(float(ts))
            series.latency_ms.append(float(record["latency_ms"]))
        values = first_output(record)
        if values is not None:
            series.prediction_ts.append(float(ts))
            series.prediction.append(float(values.mean()))
        if self.pair_shadows and status < 500 and values is not None:
            self._pair(str(record.get("request_id") or ""), shadow, float(ts), values)
        if self.track_scores and not shadow and status < 500 and values is not None and values.size:
            request_id = record.get("request_id")
            if request_id and int(record.get("rows") or 1) == 1:
                scores = self._scores.setdefault(int(version), OrderedDict())
                scores[str(request_id)] = float(values.reshape(-1)[-1])
                if len(scores) > MAX_SCORED:
                    scores.popitem(last=False)

    def add_labels(self, labels: Iterable[tuple[str, int, float, float]]) -> int:
        """Join fed-back ``(request_id, version, label, predicted_at)`` to the answers; returns how many."""
        joined = 0
        for request_id, version, label, predicted_at in labels:
            waiting = self._scores.get(version)
            score = waiting.pop(request_id, None) if waiting is not None else None
            if score is None or predicted_at < self.since:
                continue
            ts, scores, values = self._labelled.setdefault(version, (_floats(), _floats(), _floats()))
            ts.append(predicted_at)
            scores.append(score)
            values.append(label)
            joined += 1
        return joined

    def labelled(
        self, version: int, source: str, *, bounds: tuple[float, float], start: float | None = None
    ) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Per-answer values of a label metric for ``version`` (answers predicted from ``start``)."""
        found = self._labelled.get(version)
        if found is None:
            return np.empty(0, dtype=np.float64)
        ts, scores, labels = (np.asarray(a, dtype=np.float64) for a in found)
        if start is not None:
            keep = ts >= start
            scores, labels = scores[keep], labels[keep]
        if source == "label_correct":
            correct: np.ndarray[Any, np.dtype[np.float64]] = ((scores >= 0.5) == (labels >= 0.5)).astype(
                np.float64
            )
            return correct
        error = np.abs(scores - labels) if source == "label_abs_error" else (scores - labels) ** 2
        clipped: np.ndarray[Any, np.dtype[np.float64]] = np.clip(error, bounds[0], bounds[1])
        return clipped

    def _pair(
        self, request_id: str, shadow: bool, ts: float, values: np.ndarray[Any, np.dtype[np.float64]]
    ) -> None:
        if not request_id:
            return
        other = self._unpaired[not shadow].pop(request_id, None)
        if other is None:
            waiting = self._unpaired[shadow]
            waiting[request_id] = values
            if len(waiting) > MAX_UNPAIRED:
                waiting.popitem(last=False)
            return
        diff = float(np.max(np.abs(values - other))) if values.shape == other.shape else float("inf")
        self._pair_ts.append(ts)
        self._pair_diff.append(diff)

    # ------------------------------------------------------------------ reads
    def sample(
        self, version: int, *, shadow: bool = False, start: float | None = None, end: float | None = None
    ) -> VariantSample:
        """Cumulative observations of ``version`` in ``[start, end)`` (the whole rollout by default)."""
        series = self._series.get((version, shadow))
        if series is None:
            return VariantSample()

        def window(ts: array[float], values: array[Any]) -> np.ndarray[Any, Any]:
            every = np.asarray(values)
            if start is None and end is None:
                return every
            times = np.asarray(ts, dtype=np.float64)
            mask = np.ones(times.size, dtype=bool)
            if start is not None:
                mask &= times >= start
            if end is not None:
                mask &= times < end
            return every[mask]

        errors = window(series.ts, series.error)
        return VariantSample(
            requests=int(errors.size),
            errors=int(np.count_nonzero(errors)),
            latencies_ms=window(series.latency_ts, series.latency_ms).astype(np.float64),
            predictions=window(series.prediction_ts, series.prediction).astype(np.float64),
        )

    def agreement(self, tolerance: float, *, start: float | None = None) -> Agreement:
        diffs = np.asarray(self._pair_diff, dtype=np.float64)
        if start is not None:
            diffs = diffs[np.asarray(self._pair_ts, dtype=np.float64) >= start]
        if diffs.size == 0:
            return Agreement(0, 0, None, None)
        finite = diffs[np.isfinite(diffs)]
        return Agreement(
            pairs=int(diffs.size),
            disagreements=int(np.count_nonzero(diffs > tolerance)),
            mean_abs_diff=float(finite.mean()) if finite.size else None,
            max_abs_diff=float(diffs.max()),
        )
