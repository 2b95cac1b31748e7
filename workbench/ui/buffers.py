"""The feed's memory: per-second traffic per endpoint and each monitor's persisted series, bounded.

A page opens by copying a window out of these (no request to the control plane); the feed appends what
each poll brings. Older traffic than the control plane's live fold holds is converted from the
monitors' persisted series once (``traffic_from_history``).
"""

from __future__ import annotations

from collections import deque
from typing import Any

#: Seconds of per-second traffic kept per endpoint: a page opens with the last hour at once.
KEEP_S = 3600

#: Older traffic than the control plane's live fold holds comes from the monitors' persisted series.
BACKFILL_SERIES = {
    "requests_per_s": "requests_per_s",
    "error_rate": "error_rate",
    "latency_p50_ms": "p50_ms",
    "latency_p95_ms": "p95_ms",
    "latency_p99_ms": "p99_ms",
}


class TrafficBuffer:
    """An endpoint's per-second points for the last ``KEEP_S``, per key (``all`` and each version)."""

    def __init__(self, keep_s: int = KEEP_S) -> None:
        self.keep_s = keep_s
        self.columns: dict[str, dict[str, deque[Any]]] = {}

    def extend(self, points: dict[str, dict[str, list[Any]]]) -> dict[str, dict[str, list[Any]]]:
        """Append the seconds newer than what each key holds; returns only those (what pages stream)."""
        added: dict[str, dict[str, list[Any]]] = {}
        for key, column in points.items():
            target = self.columns.setdefault(key, {name: deque(maxlen=self.keep_s) for name in column})
            held = target.get("ts")
            last = held[-1] if held else float("-inf")
            fresh = [i for i, ts in enumerate(column.get("ts", [])) if ts > last]
            if not fresh:
                continue
            start = fresh[0]  # seconds come in order: everything from the first new one
            added[key] = {name: list(values[start:]) for name, values in column.items()}
            for name, values in added[key].items():
                target.setdefault(name, deque(maxlen=self.keep_s)).extend(values)
        return added

    def window(self, seconds: float, *, now: float) -> dict[str, dict[str, list[Any]]]:
        """A copy of the points of the last ``seconds`` (what a page draws when it opens)."""
        first = now - seconds
        out: dict[str, dict[str, list[Any]]] = {}
        for key, column in self.columns.items():
            ts = list(column.get("ts", ()))
            start = next((i for i, t in enumerate(ts) if t >= first), len(ts))
            out[key] = {name: list(values)[start:] for name, values in column.items()}
        return out


def traffic_from_history(
    series: dict[str, dict[str, dict[str, list[Any]]]],
) -> dict[str, dict[str, list[Any]]]:
    """Monitor series (name -> key -> ts/mean) → the live fold's columns (key -> ts, p95_ms, ...)."""
    out: dict[str, dict[int, dict[str, Any]]] = {}  # key -> second -> field -> value
    for name, field_name in BACKFILL_SERIES.items():
        for key, points in series.get(name, {}).items():
            target = out.setdefault(key, {})
            for ts, value in zip(points.get("ts", []), points.get("mean", []), strict=False):
                target.setdefault(int(ts), {})[field_name] = value
    columns: dict[str, dict[str, list[Any]]] = {}
    for key, by_second in out.items():
        seconds = sorted(by_second)
        column: dict[str, list[Any]] = {"ts": list(seconds)}
        for field_name in (*BACKFILL_SERIES.values(), "errors", "batch_size"):
            column[field_name] = [by_second[t].get(field_name) for t in seconds]
        # A look's rate, not a count: close enough for a chart of the past.
        column["requests"] = [round(rps) if rps is not None else None for rps in column["requests_per_s"]]
        columns[key] = column
    return columns


class SeriesBuffer:
    """A monitor's persisted series (series -> key -> ts/value), the last ``keep`` points of each."""

    def __init__(self, keep: int = KEEP_S) -> None:
        self.keep = keep
        self.series: dict[str, dict[str, dict[str, deque[float]]]] = {}

    def merge(
        self, answer: dict[str, dict[str, dict[str, list[Any]]]]
    ) -> dict[str, dict[str, dict[str, list[Any]]]]:
        """Add what is newer than what each series holds; returns only that (what pages stream)."""
        fresh: dict[str, dict[str, dict[str, list[Any]]]] = {}
        for name, keys in answer.items():
            for key, column in keys.items():
                held = self.series.setdefault(name, {}).setdefault(
                    key, {"ts": deque(maxlen=self.keep), "value": deque(maxlen=self.keep)}
                )
                last = held["ts"][-1] if held["ts"] else float("-inf")
                for ts, value in zip(column.get("ts", []), column.get("mean", []), strict=False):
                    if ts > last and value is not None:
                        held["ts"].append(float(ts))
                        held["value"].append(float(value))
                        out = fresh.setdefault(name, {}).setdefault(key, {"ts": [], "value": []})
                        out["ts"].append(float(ts))
                        out["value"].append(float(value))
        return fresh

    def copy(self) -> dict[str, dict[str, dict[str, list[float]]]]:
        return {
            name: {key: {"ts": list(c["ts"]), "value": list(c["value"])} for key, c in keys.items()}
            for name, keys in self.series.items()
        }
