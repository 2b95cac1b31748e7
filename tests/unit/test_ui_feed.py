"""The dashboard feed's buffers: an hour per endpoint, overlapping re-reads added once, backfill shapes."""

from __future__ import annotations

from workbench.ui.buffers import SeriesBuffer, TrafficBuffer, traffic_from_history


def test_a_traffic_buffer_keeps_its_last_seconds_and_windows_copy() -> None:
    buffer = TrafficBuffer(keep_s=5)
    buffer.extend({"all": {"ts": [1, 2, 3], "p95_ms": [1.0, 2.0, 3.0]}})
    buffer.extend(
        {"all": {"ts": [4, 5, 6, 7], "p95_ms": [4.0, 5.0, 6.0, 7.0]}, "2": {"ts": [7], "p95_ms": [9.0]}}
    )
    assert buffer.window(100, now=7)["all"]["ts"] == [3, 4, 5, 6, 7]  # bounded
    window = buffer.window(2.5, now=7)
    assert window["all"] == {"ts": [5, 6, 7], "p95_ms": [5.0, 6.0, 7.0]}
    window["all"]["ts"].append(99)
    assert buffer.window(2.5, now=7)["all"]["ts"] == [5, 6, 7]  # a copy: a page cannot change the feed's


def test_monitor_series_read_again_with_overlap_are_added_once() -> None:
    buffer = SeriesBuffer(keep=100)
    first = buffer.merge({"drift": {"age": {"ts": [10.0, 15.0], "mean": [0.1, 0.2]}}})
    assert first == {"drift": {"age": {"ts": [10.0, 15.0], "value": [0.1, 0.2]}}}
    again = buffer.merge({"drift": {"age": {"ts": [10.0, 15.0, 20.0], "mean": [0.1, 0.2, 0.3]}}})
    assert again == {"drift": {"age": {"ts": [20.0], "value": [0.3]}}}
    assert buffer.merge({"drift": {"age": {"ts": [20.0], "mean": [0.3]}}}) == {}
    assert buffer.copy()["drift"]["age"]["value"] == [0.1, 0.2, 0.3]


def test_persisted_monitor_series_become_the_live_folds_columns() -> None:
    columns = traffic_from_history(
        {
            "requests_per_s": {"all": {"ts": [100.0, 105.0], "mean": [4.4, 6.0]}},
            "latency_p95_ms": {
                "all": {"ts": [100.0, 105.0], "mean": [3.0, None]},
                "2": {"ts": [105.0], "mean": [7.0]},
            },
        }
    )
    assert columns["all"]["ts"] == [100, 105]
    assert columns["all"]["p95_ms"] == [3.0, None]
    assert columns["all"]["requests"] == [4, 6]
    assert columns["2"]["p95_ms"] == [7.0]
    assert columns["2"]["requests_per_s"] == [None]


def test_seconds_already_held_are_not_added_again() -> None:
    buffer = TrafficBuffer(keep_s=100)
    assert buffer.extend({"all": {"ts": [1, 2], "requests": [3, 4]}}) == {
        "all": {"ts": [1, 2], "requests": [3, 4]}
    }
    again = buffer.extend(
        {"all": {"ts": [1, 2, 3], "requests": [3, 4, 5]}, "2": {"ts": [3], "requests": [1]}}
    )
    assert again == {"all": {"ts": [3], "requests": [5]}, "2": {"ts": [3], "requests": [1]}}
    assert buffer.extend({"all": {"ts": [2, 3], "requests": [4, 5]}}) == {}
    assert buffer.window(100, now=3)["all"]["ts"] == [1, 2, 3]
