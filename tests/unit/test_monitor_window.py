"""The sliding window: slices by time, eviction, series, shadows and client errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from workbench.monitoring.drift import ReferenceProfile, profile_column
from workbench.monitoring.window import PREDICTION, SlidingWindow, record_rows, record_scores


def _profile() -> ReferenceProfile:
    rng = np.random.default_rng(0)
    return ReferenceProfile(
        (profile_column("a", rng.normal(0, 1, 2000)), profile_column("b", rng.normal(0, 1, 2000)))
    )


def _record(ts: float, status: int = 200, **extra: Any) -> dict[str, Any]:
    return {
        "ts": ts,
        "version": 1,
        "status": status,
        "latency_ms": 2.0,
        "rows": 1,
        "request_id": f"r{ts}",
        "inputs": {"a": [0.1], "b": [0.2]},
        "outputs": {"p": [[0.7]]},
        **extra,
    }


def test_series_over_the_window_and_eviction() -> None:
    predictions = ReferenceProfile((profile_column(PREDICTION, np.linspace(0, 1, 500)),))
    window = SlidingWindow(window_s=10, every_s=1, features=_profile(), predictions=predictions)
    records = [_record(100 + i * 0.5) for i in range(20)]  # 100.0 .. 109.5
    records += [_record(105.2, status=500), _record(105.3, status=422), _record(105.4, shadow=True)]
    window.add(records, now=110.0)
    series = window.series(110.0)
    assert series.requests == 22  # the shadow copy is not traffic; the 422 is a request
    assert series.error_rate == pytest.approx(1 / 22)
    assert series.requests_per_s == pytest.approx(2.2)
    assert series.latency_p95_ms == 2.0
    assert window.feature_histogram().rows == 20
    assert len(window.scored()) == 20
    window.evict(115.0)
    assert window.series(115.0).requests == 12  # slices from 105 on: ten, the 500 and the 422


def test_rows_come_from_columns_or_a_matrix() -> None:
    assert record_rows({"inputs": {"a": [1, 2], "b": [3, 4], "c": [0, 0]}}, ("a", "b")) == {
        "a": [1, 2],
        "b": [3, 4],
    }
    matrix = record_rows({"inputs": {"matrix": [[1, 2], [3, 4]]}}, ("a", "b"))
    assert matrix is not None
    assert matrix["b"].tolist() == [2.0, 4.0]
    assert record_rows({"inputs": {"matrix": [[1, 2, 3]]}}, ("a", "b")) is None
    assert record_rows({}, ("a",)) is None
    scores = record_scores({"rows": 2, "outputs": {"p": [[0.1, 0.9], [0.8, 0.2]]}})
    assert scores is not None
    assert scores.tolist() == [0.9, 0.2]  # the positive class of a two-column classifier output


def test_dashboard_series_per_version_and_all() -> None:
    from workbench.errors import ValidationError
    from workbench.monitoring.series import series_from_records

    records = [_record(100.0 + i * 0.1, version=1 if i % 4 else 2) for i in range(100)]  # 10 s
    records.append(_record(101.0, status=503, version=2))
    records.append(_record(101.0, shadow=True, version=3))
    series = series_from_records(records, start=100.0, end=110.0, step_s=5.0)
    assert list(series) == ["all", "1", "2"]
    first, second = series["all"]
    assert (first["requests"], second["requests"]) == (51, 50)
    assert first["requests_per_s"] == pytest.approx(10.2)
    assert series["2"][0]["error_rate"] == pytest.approx(1 / 14)
    assert series["1"][1]["latency_p99_ms"] == 2.0
    with pytest.raises(ValidationError, match="at most"):
        series_from_records([], start=0.0, end=1e6, step_s=1.0)


def test_feature_freshness_and_lookup_time_over_the_window() -> None:
    window = SlidingWindow(window_s=10, every_s=1, features=_profile(), predictions=None)
    assert window.lookup_series() == {"feature_age_max_s": None, "feature_lookup_p95_ms": None}
    window.add([_record(100.0)], now=100.5)  # no lookup: nothing to say
    assert window.lookup_series()["feature_age_max_s"] is None
    looked_up = [
        # None: every feature of that row was defaulted
        _record(101.0, lookup_ms=0.5, lookup={"feature_age_s": [30.0, None]}),
        _record(102.0, lookup_ms=1.5, lookup={"feature_age_s": [90.0]}),
        _record(103.0, status=422, lookup_ms=9.0, lookup={"feature_age_s": [5000.0]}),  # refused: not served
    ]
    window.add(looked_up, now=103.5)
    series = window.lookup_series()
    assert series["feature_age_max_s"] == 90.0
    assert series["feature_lookup_p95_ms"] == pytest.approx(1.45)
    window.evict(113.5)  # the look-ups leave the window
    assert window.lookup_series()["feature_age_max_s"] is None


def _batch_line(rng: np.random.Generator, ts: float, requests: int, *, status: int = 200) -> dict[str, Any]:
    """A batch line as a replica writes it (and orjson reads it back): lists per request, columns joined."""
    rows = [int(r) for r in rng.integers(1, 4, requests)]
    total = sum(rows)
    return {
        "ts": ts,
        "endpoint": "e",
        "model": "m",
        "version": 2,
        "batch_size": total,
        "requests": {
            "ts": [ts + 0.37 * i for i in range(requests)],
            "request_id": [f"r{ts}-{i}" for i in range(requests)],
            "status": [status] * requests,
            "shadow": [False] * requests,
            "rows": rows,
            "latency_ms": [float(x) for x in rng.uniform(1, 9, requests)],
            "queue_ms": [0.1] * requests,
        },
        "inputs": {"a": rng.normal(0, 1, total).tolist(), "b": rng.normal(0.5, 2, total).tolist()},
        "outputs": {"p": rng.uniform(0, 1, (total, 1)).tolist()},
    }


def _counts(histogram: Any) -> dict[str, Any]:
    return {
        name: (
            c.inner.tolist(),
            c.below_n,
            round(c.below_sum, 9),
            c.above_n,
            round(c.above_sum, 9),
            sorted(c.discrete.items()),
            c.n,
        )
        for name, c in histogram._counts.items()
    }


def _state(window: SlidingWindow, now: float) -> dict[str, Any]:
    histogram = window.feature_histogram()
    predictions = window.prediction_histogram()
    assert predictions is not None
    return {
        "series": window.series(now),
        "by_version": window.series_by_version(now),
        "rows": histogram.rows,
        "features": _counts(histogram),
        "predictions": _counts(predictions),
        "scored": sorted(window.scored()),
        "versions": window.versions(),
    }


def test_batch_lines_fold_whole_exactly_as_their_expanded_requests() -> None:
    """The fast path (a batch line's columns sliced once per slice) and the per-request path agree on
    everything a monitor computes, including lines that straddle slices and the window's start, and lines
    the fast path leaves to the other (errors, shadows, per-request parts)."""
    from workbench.telemetry.batch_record import expand

    rng = np.random.default_rng(7)
    predictions = ReferenceProfile((profile_column(PREDICTION, np.linspace(0, 1, 500)),))
    lines = [_batch_line(rng, 95.0 + 1.3 * i, int(rng.integers(1, 9))) for i in range(12)]
    lines.append(_batch_line(rng, 101.0, 3, status=500))
    shadow = _batch_line(rng, 102.0, 2)
    shadow["shadow"] = True
    lines.append(shadow)
    parts = _batch_line(rng, 103.0, 2)
    parts["inputs"] = [{"a": [0.1], "b": [0.2]}, {"a": [0.3, 0.4], "b": [0.5, 0.6]}]
    parts["requests"]["rows"] = [1, 2]
    parts["outputs"] = {"p": [[0.2], [0.4], [0.6]]}
    lines.append(parts)
    whole = SlidingWindow(window_s=10, every_s=2, features=_profile(), predictions=predictions)
    expanded = SlidingWindow(window_s=10, every_s=2, features=_profile(), predictions=predictions)
    whole.add_lines(lines, now=108.0)
    expanded.add([record for line in lines for record in expand(line)], now=108.0)
    assert _state(whole, 108.0) == _state(expanded, 108.0)
    assert whole.feature_histogram().rows > 20
    probe = SlidingWindow(window_s=10, every_s=2, features=_profile(), predictions=predictions)
    taken = [probe._add_batch_line(line, oldest=0.0, gathered={}) for line in lines]
    assert taken == [True] * 12 + [False, False, False], "the fast path took the plain lines, and only them"
