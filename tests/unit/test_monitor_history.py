"""Monitor history and the request-id index in the state store, on SQLite and PostgreSQL; history
queries' checks; the feedback feed finding a request the in-memory index has forgotten."""

from __future__ import annotations

import math
import random
import time
from dataclasses import replace
from pathlib import Path

import pytest

from workbench.client import Client
from workbench.control_plane import ControlPlane
from workbench.errors import ValidationError
from workbench.monitoring.feed import EndpointFeed
from workbench.monitoring.history import MAX_STEPS, check_size, plan
from workbench.settings import Settings
from workbench.specs.monitor import AlertRuleSpec, MonitorSpec
from workbench.store import Database
from workbench.store.history import ALL, HistoryRepository
from workbench.store.monitoring import IndexedRequest, MonitoringRepository
from workbench.telemetry import PredictionLogWriter

T0 = 1_700_000_000.0


def _fill(db: Database, repo: HistoryRepository, seconds: int = 120) -> None:
    points = []
    for i in range(seconds):
        points.append(("churn", "error_rate", ALL, T0 + i, i / 100))
        points.append(("churn", "drift", "tenure", T0 + i, 0.5))
        points.append(("churn", "latency_p95_ms", "2", T0 + i, float(i % 10)))
        points.append(("other", "error_rate", ALL, T0 + i, 1.0))
    points.append(("churn", "accuracy", ALL, T0, float("nan")))  # no data: not a point
    with db.write() as connection:
        assert repo.append(connection, points) == 4 * seconds


def test_points_are_downsampled_per_step_with_mean_min_max_count(db: Database) -> None:
    repo = HistoryRepository()
    _fill(db, repo)
    with db.read() as connection:
        rows = repo.find(connection, monitors=["churn"], series=["error_rate"])
        assert [(r.monitor, r.series, r.key) for r in rows] == [("churn", "error_rate", ALL)]
        found = repo.aggregate(connection, [rows[0].id], start=T0, end=T0 + 119, step_s=60)
        assert repo.find(connection, monitors=["churn"], series=["accuracy"]) == []
    points = found[rows[0].id]
    assert points.ts == [T0, T0 + 60]
    assert points.count == [60, 60]
    assert points.min == [0.0, 0.6]
    assert points.max == pytest.approx([0.59, 1.19])
    assert points.mean == pytest.approx([sum(range(60)) / 6000, sum(range(60, 120)) / 6000])


def test_a_range_inside_the_data_and_one_series_per_column_or_version(db: Database) -> None:
    repo = HistoryRepository()
    _fill(db, repo)
    with db.read() as connection:
        drift = repo.find(connection, monitors=["churn"], series=["drift"])
        assert [r.key for r in drift] == ["tenure"]
        latency = repo.find(connection, series=["latency_p95_ms"])
        found = repo.aggregate(connection, [latency[0].id], start=T0 + 10, end=T0 + 19.5, step_s=5)
        everywhere = repo.find(connection, series=["error_rate"])
    assert [r.key for r in latency] == ["2"]
    assert found[latency[0].id].ts == [T0 + 10, T0 + 15]
    assert found[latency[0].id].max == [4.0, 9.0]
    assert [r.monitor for r in everywhere] == ["churn", "other"]


M0 = 1_700_000_040.0  # on a minute


def _expected(points: list[tuple[float, float]], start: float, step: float) -> dict[str, list[float]]:
    steps: dict[int, list[float]] = {}
    for ts, value in points:
        steps.setdefault(math.floor((ts - start) / step), []).append(value)
    return {
        "ts": [start + k * step for k in sorted(steps)],
        "mean": [sum(steps[k]) / len(steps[k]) for k in sorted(steps)],
        "min": [min(steps[k]) for k in sorted(steps)],
        "max": [max(steps[k]) for k in sorted(steps)],
        "count": [len(steps[k]) for k in sorted(steps)],
    }


@pytest.mark.parametrize("step_s", [1.0, 2.5, 30.0, 60.0, 120.0])
def test_every_read_path_agrees_with_the_points(db: Database, step_s: float) -> None:
    """Fine steps reduce points in numpy, coarser ones group in SQL, whole minutes read the rollups
    (written in several batches here, as the recorder's flushes write them)."""
    repo = HistoryRepository()
    rng = random.Random(5)
    points = [(M0 + i * 0.5 + rng.random() * 0.4, rng.uniform(-5, 5)) for i in range(480)]
    for first in range(0, len(points), 70):
        with db.write() as connection:
            repo.append(
                connection, [("churn", "error_rate", ALL, ts, v) for ts, v in points[first : first + 70]]
            )
    with db.read() as connection:
        (row,) = repo.find(connection, monitors=["churn"])
        found = repo.aggregate(connection, [row.id], start=M0, end=M0 + 240, step_s=step_s)[row.id]
    expected = _expected(points, M0, step_s)
    assert found.ts == pytest.approx(expected["ts"])
    assert found.count == expected["count"]
    assert found.mean == pytest.approx(expected["mean"])
    assert found.min == pytest.approx(expected["min"])
    assert found.max == pytest.approx(expected["max"])


def test_rollups_outlive_the_points_and_are_pruned_by_their_own_retention(db: Database) -> None:
    repo = HistoryRepository()
    with db.write() as connection:
        repo.append(connection, [("churn", "rows", ALL, M0 + i, float(i)) for i in range(300)])
    with db.write() as connection:
        assert repo.prune(connection, before=M0 + 300, rollups_before=M0 + 120) == 300
    with db.read() as connection:
        (row,) = repo.find(connection, monitors=["churn"])
        by_minute = repo.aggregate(connection, [row.id], start=M0, end=M0 + 300, step_s=60)[row.id]
        assert repo.aggregate(connection, [row.id], start=M0, end=M0 + 300, step_s=1) == {}
    assert by_minute.ts == [M0 + 120, M0 + 180, M0 + 240]
    assert by_minute.count == [60, 60, 60]
    assert by_minute.mean == [149.5, 209.5, 269.5]


def test_a_point_written_twice_is_kept_once_and_prune_applies_the_retention(db: Database) -> None:
    repo = HistoryRepository()
    _fill(db, repo)
    with db.write() as connection:  # a second control plane writing the same look changes nothing
        HistoryRepository().append(connection, [("churn", "error_rate", ALL, T0, 9.0)])
    with db.write() as connection:
        assert repo.prune(connection, before=T0 + 100) == 4 * 100
    with db.read() as connection:
        rows = repo.find(connection, monitors=["churn"], series=["error_rate"])
        found = repo.aggregate(connection, [rows[0].id], start=T0, end=T0 + 1000, step_s=1000)
    assert found[rows[0].id].count == [20]
    assert found[rows[0].id].min == [1.0]


def test_recent_looks_come_back_as_rows_of_the_monitor_wide_series(db: Database) -> None:
    repo = HistoryRepository()
    with db.write() as connection:
        repo.append(
            connection,
            [
                p
                for i in range(5)
                for p in (
                    ("churn", "rows", ALL, T0 + i, 100.0 * i),
                    ("churn", "drift_share", ALL, T0 + i, 0.1 * i),
                    ("churn", "drift", "tenure", T0 + i, 0.3),
                )
            ],
        )
    with db.read() as connection:
        looks = repo.recent(connection, "churn", 2)
        assert repo.recent(connection, "nobody", 2) == []
    assert looks == [
        {"ts": T0 + 3, "rows": 300.0, "drift_share": pytest.approx(0.3)},
        {"ts": T0 + 4, "rows": 400.0, "drift_share": pytest.approx(0.4)},
    ]


@pytest.mark.parametrize(
    ("start", "end", "step_s", "message"),
    [
        (T0, T0 + 3600, 5e-324, "step_s must be between"),
        (T0, T0 + 3600, float("inf"), "step_s must be between"),
        (T0, T0 + 3600, float("nan"), "step_s must be between"),
        (T0, T0 + 3600, 0.0, "step_s must be between"),
        (T0 + 10, T0, 1.0, "start must be at or before end"),
        (T0, T0 + 3600, 0.1, "steps; at most"),
        (0.0, T0, 86_400.0, "the range spans"),
        (float("nan"), T0, 1.0, "start must be a finite"),
    ],
)
def test_bad_ranges_and_steps_are_refused_before_any_query(
    start: float, end: float, step_s: float, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        plan(start=start, end=end, step_s=step_s, now=T0 + 3600)


def test_query_defaults_and_the_size_limit() -> None:
    query = plan(start=None, end=None, step_s=None, now=T0)
    assert (query.start, query.end, query.step_s, query.steps) == (T0 - 3600, T0, 3.6, 1001)
    day = plan(start=T0, end=T0 + 86_400, step_s=None, now=T0)
    assert day.step_s == 86.4
    assert plan(start=T0, end=T0, step_s=1.0, now=T0).steps == 1
    minutes = plan(start=M0 + 59, end=M0 + 3600, step_s=300, now=T0)  # whole minutes: from the minute
    assert (minutes.start, minutes.steps) == (M0, 13)
    assert plan(start=T0, end=T0 + MAX_STEPS - 1, step_s=1.0, now=T0).steps == MAX_STEPS
    check_size(query, 499)
    with pytest.raises(ValidationError, match="more than"):
        check_size(query, 500)


def test_a_rule_transition_is_compare_and_set_in_the_store(db: Database) -> None:
    """Two looks that judged the same stored state: the first change wins, the second changes nothing."""
    repo = MonitoringRepository()
    with db.write() as connection:
        repo.create_monitor(connection, MonitorSpec(name="churn", endpoint="churn"))
        repo.create_rule(
            connection,
            AlertRuleSpec(name="errors", monitor="churn", series="error_rate", op=">", threshold=0.1),
        )
    with db.read() as connection:
        judged = repo.get_rule(connection, "errors").state
    firing = {"state": "firing", "since": T0, "last_fired_at": T0, "value": 0.5}
    with db.write() as connection:
        assert repo.save_rule_state(connection, "errors", firing, expected=judged)
    with db.write() as connection:
        assert not repo.save_rule_state(
            connection, "errors", {**firing, "last_fired_at": T0 + 1}, expected=judged
        )
    with db.read() as connection:
        assert repo.get_rule(connection, "errors").state == firing


# --- the request-id index -------------------------------------------------------------------------------


def test_the_request_index_keeps_the_first_prediction_and_forgets_by_age(db: Database) -> None:
    repo = MonitoringRepository()
    with db.write() as connection:
        assert repo.index_cursor(connection, "churn") is None
        repo.index_requests(
            connection,
            "churn",
            [IndexedRequest(request_id=f"r{i}", ts=T0 + i, version=1, score=0.25) for i in range(10)],
        )
        repo.index_requests(connection, "churn", [IndexedRequest(request_id="r0", ts=T0 + 50, version=2)])
        repo.index_requests(connection, "other", [IndexedRequest(request_id="r0", ts=T0, version=7)])
    with db.read() as connection:
        found = repo.indexed(connection, "churn", ["r0", "r9", "nope"])
        assert repo.index_cursor(connection, "churn") == T0 + 9
    assert found == {
        "r0": IndexedRequest(request_id="r0", ts=T0, version=1, score=0.25),
        "r9": IndexedRequest(request_id="r9", ts=T0 + 9, version=1, score=0.25),
    }
    with db.write() as connection:
        assert repo.prune_index(connection, "churn", before=T0 + 5) == 5
    with db.read() as connection:
        assert set(repo.indexed(connection, "churn", [f"r{i}" for i in range(10)])) == {
            f"r{i}" for i in range(5, 10)
        }
        assert set(repo.indexed(connection, "other", ["r0"])) == {"r0"}


def _log(directory: Path, ids: list[str], start: float) -> None:
    with PredictionLogWriter(directory, writer_id="replica-a", flush_interval=0.01) as writer:
        for i, request_id in enumerate(ids):
            writer.log(
                {
                    "ts": start + i,  # a second apart
                    "request_id": request_id,
                    "version": 3,
                    "status": 200,
                    "rows": 1,
                    "outputs": {"score": [[0.1 + i / 1000]]},
                }
            )


def test_a_label_for_a_request_older_than_the_in_memory_window_still_joins(
    db: Database, tmp_path: Path
) -> None:
    directory = tmp_path / "predictions" / "churn"
    ids = [f"req-{i}" for i in range(200)]
    started = time.time() - 3 * 86_400.0  # predictions made three days ago
    _log(directory, ids, started)
    feed = EndpointFeed(directory, endpoint="churn", db=db, since=started - 1, index_limit=20)
    assert feed.poll() == 200
    assert feed.cached("req-0") is None, "the in-memory window should have forgotten the oldest request"
    assert feed.cached("req-199") is not None
    found = feed.lookup(["req-0", "req-150"])
    assert found["req-0"].version == 3
    assert found["req-0"].ts == pytest.approx(started)
    assert found["req-0"].score == pytest.approx(0.1)
    assert set(found) == {"req-0", "req-150"}
    # A control plane started afresh resumes the index where it was and still finds the oldest request.
    _log(directory, ["req-new"], time.time())
    again = EndpointFeed(directory, endpoint="churn", db=db, since=started - 1, index_limit=20)
    assert again.poll() < 200, "a restarted feed re-read the whole log instead of resuming"
    assert set(again.lookup(["req-0", "req-new"])) == {"req-0", "req-new"}
    # Without the store, the forgotten request is unknown: the store is what makes it join.
    memory_only = EndpointFeed(directory, endpoint="churn", since=started - 1, index_limit=20)
    memory_only.poll()
    assert memory_only._found(["req-0"]) == {}


# --- through the control plane --------------------------------------------------------------------------


def test_the_engine_prunes_by_the_retention_settings(settings: Settings) -> None:
    plane = ControlPlane(replace(settings, history_retention_s=3600.0, rollup_retention_s=86_400.0))
    try:
        engine = plane.monitoring.engine
        now = time.time()
        minute = math.floor(now / 60) * 60
        engine.recorder.add(
            [
                ("churn", "rows", ALL, minute - 7200, 1.0),  # points pruned, its rollup kept
                ("churn", "rows", ALL, minute - 2 * 86_400, 2.0),  # both pruned
                ("churn", "rows", ALL, minute, 3.0),  # kept
            ]
        )
        assert engine.recorder.flush() == 3
        with plane.db.write() as connection:
            MonitoringRepository().index_requests(
                connection,
                "churn",
                [
                    IndexedRequest(request_id="old", ts=now - 40 * 86_400, version=1),
                    IndexedRequest(request_id="new", ts=now - 60, version=1),
                ],
            )
        engine.feed("churn")  # a feed the loop knows of
        engine.prune(now)
        with plane.db.read() as connection:
            (row,) = HistoryRepository().find(connection, monitors=["churn"])
            points = HistoryRepository().aggregate(
                connection, [row.id], start=minute - 3 * 86_400, end=now, step_s=1.0
            )[row.id]
            minutes = HistoryRepository().aggregate(
                connection, [row.id], start=minute - 3 * 86_400, end=now, step_s=60.0
            )[row.id]
            indexed = MonitoringRepository().indexed(connection, "churn", ["old", "new"])
        assert points.mean == [3.0]
        assert minutes.mean == [1.0, 3.0]
        assert set(indexed) == {"new"}
    finally:
        plane.close()


def test_history_queries_that_cannot_be_answered_are_422_not_500(client: Client) -> None:
    """The fuzzer's ``step_s=5e-324`` overflowed into a 500; every bad range is a clear 422 now."""
    for bad in (
        {"step_s": 5e-324},
        {"step_s": 0},
        {"start": T0 + 60, "end": T0},
        {"start": T0, "end": T0 + 86_400, "step_s": 1},
        {"start": -1.0},
    ):
        with pytest.raises(ValidationError):
            client.monitor_history(**bad)
    with pytest.raises(ValidationError):
        client.series("churn", window_s=100, step_s=5e-324)
    empty = client.monitor_history(start=T0, end=T0 + 3600)
    assert (empty["monitors"], empty["step_s"], empty["aggregations"]) == (
        {},
        3.6,
        ["mean", "min", "max", "count"],
    )
