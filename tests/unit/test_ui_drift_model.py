"""The drift page's data: heatmap rows from the feed's series (streamable look by look, gaps blank),
lines, report rows, the report preview, and one column's reference-vs-window distribution."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from workbench.monitoring.distribution import MAX_VALUES, column_distribution
from workbench.monitoring.drift import ColumnKind, ReferenceProfile, WindowHistogram, profile_column
from workbench.records.endpoints import EndpointRecord
from workbench.records.monitoring import MonitorRecord, ReportRecord
from workbench.specs.endpoint import EndpointSpec
from workbench.specs.monitor import MonitorSpec
from workbench.ui.actions import ActionDesk
from workbench.ui.feed import Snapshot, Update
from workbench.ui.models.drift import (
    DriftModel,
    column_order,
    distribution_bars,
    heatmap_rows,
    last_look,
    line_points,
    pick_monitor,
    preview_report,
    report_rows,
    shows_feature_store,
    thresholds_of,
    window_label,
)

T0 = 1_800_000_000.0
NOW = datetime(2027, 1, 15, 12, 0, tzinfo=UTC)


def _monitor(name: str, endpoint: str, **spec: Any) -> MonitorRecord:
    return MonitorRecord(
        spec=MonitorSpec(name=name, endpoint=endpoint, **spec), created_at=NOW, updated_at=NOW
    )


def _series(points: dict[str, list[tuple[float, float]]]) -> dict[str, dict[str, list[float]]]:
    return {
        key: {"ts": [t for t, _ in values], "value": [v for _, v in values]} for key, values in points.items()
    }


# ------------------------------------------------------------------------------------------- monitor
def test_the_named_monitor_else_the_endpoints_first_else_the_first() -> None:
    monitors = [_monitor("m-a", "alpha"), _monitor("m-b1", "beta"), _monitor("m-b2", "beta")]
    assert pick_monitor(monitors, "m-b2", "alpha") == "m-b2"
    assert pick_monitor(monitors, "not-yet-listed", None) == "not-yet-listed"
    assert pick_monitor(monitors, None, "beta") == "m-b1"
    assert pick_monitor(monitors, None, "gamma") == "m-a"
    assert pick_monitor(monitors, "", "") == "m-a"
    assert pick_monitor([], None, "beta") == ""


def test_rows_follow_the_monitors_columns_then_the_scored_ones_and_thresholds_default_to_0_1() -> None:
    named = _monitor("m", "e", drift={"columns": ["z", "a"], "thresholds": {"a": 0.3}})
    assert column_order(named, ["a", "b", "z"]) == ["z", "a", "b"]
    assert column_order(_monitor("m", "e"), ["a", "b"]) == ["a", "b"]
    assert column_order(None, ["b", "a"]) == ["b", "a"]
    assert thresholds_of(named, ["z", "a"]) == {"z": 0.1, "a": 0.3}
    assert thresholds_of(None, ["x"]) == {"x": 0.1}


# ------------------------------------------------------------------------------------------- heatmap
def test_heatmap_rows_are_look_after_look_with_a_ratio_to_the_threshold_and_nan_where_unscored() -> None:
    drift = _series(
        {
            "a": [(T0, 0.05), (T0 + 5, 0.2)],
            "b": [(T0, 0.3)],  # no score for b at the second look
        }
    )
    rows = heatmap_rows(drift, ["a", "b"], {"a": 0.1, "b": 0.2}, every_s=5)
    assert rows["time"] == [T0 * 1000, T0 * 1000, (T0 + 5) * 1000, (T0 + 5) * 1000]
    assert rows["column"] == ["a", "b", "a", "b"]
    assert rows["score"][:3] == [0.05, 0.3, 0.2]
    assert rows["ratio"][:3] == pytest.approx([0.5, 1.5, 2.0])
    assert math.isnan(rows["score"][3])
    assert math.isnan(rows["ratio"][3])
    assert last_look(rows) == T0 + 5
    assert last_look(heatmap_rows({}, ["a"], {}, every_s=5)) is None


def test_new_looks_only_after_the_last_drawn_and_a_key_the_page_does_not_draw_is_left_out() -> None:
    drift = _series({"a": [(T0, 0.1), (T0 + 5, 0.2), (T0 + 10, 0.3)], "other": [(T0 + 10, 9.0)]})
    rows = heatmap_rows(drift, ["a"], {"a": 0.1}, every_s=5, after=T0 + 5)
    assert rows["time"] == [(T0 + 10) * 1000]
    assert rows["column"] == ["a"]
    assert rows["score"] == [0.3]


def test_a_gap_in_the_looks_is_drawn_blank_rather_than_stretching_the_cells_around_it() -> None:
    drift = _series({"a": [(T0, 0.1), (T0 + 5, 0.1), (T0 + 605, 0.4)]})
    rows = heatmap_rows(drift, ["a"], {"a": 0.1}, every_s=5)
    assert [t / 1000 for t in rows["time"]] == [T0, T0 + 5, T0 + 10, T0 + 600, T0 + 605]
    assert [math.isnan(s) for s in rows["score"]] == [False, False, True, True, False]
    # The same when the look after the gap arrives alone, as a delta of the stream.
    delta = heatmap_rows(_series({"a": [(T0 + 605, 0.4)]}), ["a"], {"a": 0.1}, every_s=5, after=T0 + 5)
    assert [t / 1000 for t in delta["time"]] == [T0 + 10, T0 + 600, T0 + 605]
    # A late look within the interval's tolerance is no gap.
    assert len(heatmap_rows(_series({"a": [(T0, 0.1), (T0 + 12, 0.1)]}), ["a"], {}, every_s=5)["time"]) == 2


def test_the_heatmap_streams_each_look_and_draws_what_a_fresh_heatmap_draws() -> None:
    """HoloViews streams the last rows of its gridded data: right only if a look's rows come last; and
    a look must reach the browser as those rows alone, not as a whole column sent again."""
    import holoviews as hv
    from bokeh.document import Document
    from bokeh.document.events import ColumnDataChangedEvent, ColumnsStreamedEvent, DocumentChangedEvent

    from workbench.ui.views.drift import heat_frame, heatmap_element

    columns = ["b", "a", "c"]
    thresholds = dict.fromkeys(columns, 0.1)
    looks = {c: [(T0 + 5 * i, 0.01 * (i + 1) * (j + 1)) for i in range(6)] for j, c in enumerate(columns)}
    looks["c"] = looks["c"][:4] + looks["c"][5:]  # c unscored at one look
    first = heatmap_rows(_series({c: v[:3] for c, v in looks.items()}), columns, thresholds, every_s=5)
    buffer = hv.streams.Buffer(heat_frame(first, columns), length=1000, index=False)
    document = Document()
    streamed = hv.renderer("bokeh").get_plot(
        hv.DynamicMap(lambda data: heatmap_element(data, columns), streams=[buffer]), doc=document
    )
    document.add_root(streamed.state)
    events: list[DocumentChangedEvent] = []
    document.on_change(events.append)
    for i in range(3, 6):  # the new looks one by one, as the feed brings them
        after = T0 + 5 * (i - 1)
        so_far = {c: [p for p in v if p[0] <= after + 5] for c, v in looks.items()}
        delta = heatmap_rows(_series(so_far), columns, thresholds, every_s=5, after=after)
        buffer.send(heat_frame(delta, columns))
    sent = [e for e in events if isinstance(e, ColumnsStreamedEvent | ColumnDataChangedEvent)]
    assert [type(e) for e in sent] == [ColumnsStreamedEvent] * 3
    whole = heat_frame(heatmap_rows(_series(looks), columns, thresholds, every_s=5), columns)
    fresh = hv.renderer("bokeh").get_plot(heatmap_element(whole, columns), doc=Document())
    got, want = streamed.handles["cds"].data, fresh.handles["cds"].data
    assert len(got["time"]) == len(want["time"]) == 18
    for name in ("time", "row", "zvalues", "width"):
        assert np.allclose(np.asarray(got[name], float), np.asarray(want[name], float), equal_nan=True), name
    assert list(got["score"]) == list(want["score"])
    # The first column on top: rows counted from the bottom, labelled with the names.
    assert streamed.state.yaxis[0].major_label_overrides == {0: "c", 1: "a", 2: "b"}


# --------------------------------------------------------------------------------------------- lines
def test_lines_are_the_drawn_series_in_epoch_milliseconds() -> None:
    series = {
        "prediction_drift": {"all": {"ts": [T0, T0 + 5], "value": [0.1, 0.2]}},
        "accuracy": {"all": {"ts": [], "value": []}},
        "labelled": {"all": {"ts": [T0], "value": [12.0]}},
        "requests_per_s": {"all": {"ts": [T0], "value": [99.0]}},  # not drawn here
    }
    assert line_points(series) == {
        "prediction_drift": {"x": [T0 * 1000, (T0 + 5) * 1000], "y": [0.1, 0.2]},
        "labelled": {"x": [T0 * 1000], "y": [12.0]},
    }


# ----------------------------------------------------------------------------------- feature store
def _endpoint(name: str, *, lookup: bool) -> EndpointRecord:
    spec: dict[str, Any] = {"name": name, "routes": [{"model": "churn", "version": 1, "weight": 100}]}
    if lookup:
        spec["features"] = {"entity": "customer_id", "service": "churn_features"}
    return EndpointRecord(spec=EndpointSpec.model_validate(spec), revision=1, created_at=NOW, updated_at=NOW)


def test_feature_age_and_lookup_p95_are_lines_drawn_for_an_endpoint_that_looks_features_up() -> None:
    series = {
        "feature_age_max_s": {"all": {"ts": [T0, T0 + 5], "value": [300.0, 305.0]}},
        "feature_lookup_p95_ms": {"all": {"ts": [T0 + 5], "value": [0.42]}},
    }
    lines = line_points(series)
    assert lines == {
        "feature_age_max_s": {"x": [T0 * 1000, (T0 + 5) * 1000], "y": [300.0, 305.0]},
        "feature_lookup_p95_ms": {"x": [(T0 + 5) * 1000], "y": [0.42]},
    }
    looks_up, plain = _endpoint("by-id", lookup=True), _endpoint("churn", lookup=False)
    assert shows_feature_store(looks_up, {})  # before its first looked-up request
    assert not shows_feature_store(plain, line_points({"drift_share": series["feature_age_max_s"]}))
    assert not shows_feature_store(None, {})
    # Points without a lookup now (removed since, or the endpoint deleted): what was served is still drawn.
    assert shows_feature_store(plain, {"feature_lookup_p95_ms": lines["feature_lookup_p95_ms"]})
    assert shows_feature_store(None, lines)


class _Feed:
    """What a page model reads of the feed: its snapshot and each monitor's held series."""

    def __init__(self, snapshot: Snapshot, series: dict[str, dict[str, Any]]) -> None:
        self.snapshot = snapshot
        self.series = series

    def monitor_series(self, monitor: str) -> dict[str, Any]:
        return self.series.get(monitor, {})


class _Client:
    """The page's own reads: no report, no distribution."""

    def __enter__(self) -> _Client:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def drift_reports(self, monitor: str) -> list[ReportRecord]:
        return []

    def monitor_distribution(self, monitor: str, column: str) -> dict[str, Any]:
        return {}


def test_the_feature_store_chart_shows_for_a_lookup_or_its_points_and_an_endpoint_without_has_none() -> None:
    from bokeh.document import Document

    from workbench.ui.views.drift import ALIGNED_BORDERS, FEATURES_TITLE, LOOKUP_RANGE, DriftView

    age = {"all": {"ts": [T0, T0 + 5], "value": [300.0, 305.0]}}
    lookup = {"all": {"ts": [T0, T0 + 5], "value": [0.4, 0.5]}}
    drift_share = {"all": {"ts": [T0], "value": [0.2]}}
    snapshot = Snapshot(
        endpoints=(_endpoint("by-id", lookup=True), _endpoint("churn", lookup=False)),
        monitors=(_monitor("m-by-id", "by-id"), _monitor("m-fresh", "by-id"), _monitor("m-churn", "churn")),
    )
    feed = _Feed(
        snapshot,
        {
            "m-by-id": {
                "feature_age_max_s": age,
                "feature_lookup_p95_ms": lookup,
                "drift_share": drift_share,
            },
            "m-churn": {"drift_share": drift_share},
        },
    )
    desk = ActionDesk(lambda actor: _Client(), user=lambda: "alice")  # type: ignore[arg-type,return-value]

    def page(monitor: str) -> tuple[DriftModel, DriftView]:
        model = DriftModel(feed, desk, live=False, background=False, monitor=monitor)
        view = DriftView(model=model)
        view.__panel__().get_root(Document())
        return model, view

    model, view = page("m-by-id")
    assert model.feature_store
    assert view._figures["features"].visible
    chart = view._figures["features"]
    assert (
        chart.title.text == FEATURES_TITLE == "Feature store: oldest feature served (s) and lookup p95 (ms)"
    )
    assert list(view._sources["feature_age_max_s"].data["y"]) == [300.0, 305.0]
    assert list(view._sources["feature_lookup_p95_ms"].data["y"]) == [0.4, 0.5]
    # Two scales: age on the left, lookup ms on the right, each from 0 to its own line's top and some
    # headroom (the lookup's twice its top: it runs in the lower half, never drawn over the age).
    assert view._renderers["feature_lookup_p95_ms"].y_range_name == LOOKUP_RANGE
    assert (chart.y_range.start, chart.y_range.end) == (0, pytest.approx(305.0 * 1.15))
    assert (chart.extra_y_ranges[LOOKUP_RANGE].start, chart.extra_y_ranges[LOOKUP_RANGE].end) == (0, 1.0)
    assert chart.extra_y_ranges[LOOKUP_RANGE].reset_end == 1.0  # the reset tool keeps the fitted scale
    assert [axis.axis_label for axis in chart.yaxis] == ["oldest feature served (s)", "lookup p95 (ms)"]
    assert chart.x_range is view._figures["drift"].x_range
    # The charts above keep as much room beside their frames: the same time at the same place.
    for name in ("drift", "performance", "labelled", "features"):
        assert (view._figures[name].min_border_left, view._figures[name].min_border_right) == ALIGNED_BORDERS
    assert not view._features_note.visible

    # A lookup endpoint's monitor without looked-up requests yet: the chart, and why it is empty.
    model, view = page("m-fresh")
    assert model.feature_store
    assert view._figures["features"].visible
    assert "No looked-up request" in view._features_note.object
    assert view._features_note.visible

    # An endpoint without a lookup: the page as it was, no empty chart.
    model, view = page("m-churn")
    assert not model.feature_store
    assert not view._figures["features"].visible
    assert not view._features_note.visible
    assert list(view._sources["drift_share"].data["y"]) == [0.2]
    assert view._figures["drift"].min_border_right is None  # Bokeh's own borders, as before

    # Its first feature points (a lookup deployed since): the chart appears and takes them.
    fresh = {"feature_age_max_s": {"all": {"ts": [T0 + 10], "value": [12.0]}}}
    model.apply(Update(1, snapshot, frozenset({"monitors"}), {}, {}, monitor_points={"m-churn": fresh}))
    assert model.feature_store
    assert view._figures["features"].visible
    assert list(view._sources["feature_age_max_s"].data["y"]) == [12.0]
    assert view._figures["features"].y_range.end == pytest.approx(12.0 * 1.15)
    assert not view._features_note.visible

    # A lookup deployed on the endpoint shows the chart at the next state, before any point.
    model, view = page("m-churn")
    assert not model.feature_store
    redeployed = Snapshot(endpoints=(_endpoint("churn", lookup=True),), monitors=snapshot.monitors)
    model.apply(Update(2, redeployed, frozenset({"state"}), {}, {}))
    assert model.feature_store
    assert view._figures["features"].visible
    assert view._features_note.visible


# -------------------------------------------------------------------------------------- distribution
def test_bars_give_each_value_on_both_sides_reference_rows_first() -> None:
    answer = {
        "kind": "values",
        "values": [0.0, 1.0, 2.5],
        "reference": [0.5, 0.5, 0.0],
        "current": [0.2, 0.3, 0.5],
    }
    assert distribution_bars(answer) == [
        ("0", "reference", 0.5),
        ("1", "reference", 0.5),
        ("2.5", "reference", 0.0),
        ("0", "current window", 0.2),
        ("1", "current window", 0.3),
        ("2.5", "current window", 0.5),
    ]


def test_each_bar_is_coloured_by_its_own_side_and_values_keep_their_numeric_order() -> None:
    """HoloViews colours grouped bars by the rows' order but draws them side by side: a mismatch paints
    a reference bar in the window's colour."""
    import holoviews as hv
    from bokeh.document import Document

    from workbench.ui.views.drift import distribution_element

    answer = {
        "column": "plan",
        "kind": "values",
        "values": [0.0, 1.0, 2.0, 10.0],
        "reference": [0.1, 0.2, 0.3, 0.4],
        "current": [0.4, 0.3, 0.2, 0.1],
        "reference_data": {"model": "churn", "version": 1, "rows": 100},
    }
    plot = hv.renderer("bokeh").get_plot(distribution_element(answer), doc=Document())
    data = plot.handles["cds"].data
    assert list(data["color"]) == list(data["side"])
    drawn = {
        (v, side): share for v, side, share in zip(data["value"], data["side"], data["share"], strict=True)
    }
    assert drawn[("10", "reference")] == 0.4
    assert drawn[("1", "current window")] == 0.3
    assert [factor[0] for factor in plot.handles["x_range"].factors[::2]] == ["0", "1", "2", "10"]


def _window(profile: ReferenceProfile, name: str, values: Any) -> WindowHistogram:
    window = WindowHistogram(profile)
    window.add({name: np.asarray(values, dtype=float)})
    return window


def test_a_continuous_column_on_equal_bins_over_the_reference_range_and_what_falls_outside() -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(0.0, 1.0, 20_000)
    profile = ReferenceProfile((profile_column("x", reference),))
    column = profile.column("x")
    assert column.kind is ColumnKind.CONTINUOUS
    same = column_distribution(column, _window(profile, "x", rng.normal(0.0, 1.0, 20_000)), bins=20)
    assert same["kind"] == "bins"
    assert same["edges"][0] == pytest.approx(reference.min())
    assert same["edges"][-1] == pytest.approx(reference.max())
    assert len(same["reference"]) == len(same["current"]) == 20
    assert sum(same["reference"]) == pytest.approx(1.0)
    assert np.abs(np.subtract(same["reference"], same["current"])).max() < 0.01
    # Binned shares agree with a plain histogram of the reference (mass spread within fine bins).
    direct, _ = np.histogram(reference, bins=np.asarray(same["edges"]))
    assert np.abs(np.asarray(same["reference"]) - direct / reference.size).max() < 0.002
    shifted = column_distribution(column, _window(profile, "x", rng.normal(3.0, 1.0, 10_000)), bins=20)
    assert shifted["above"] > 0.05
    assert shifted["below"] == 0.0
    assert sum(shifted["current"]) + shifted["above"] == pytest.approx(1.0)
    assert np.argmax(shifted["current"]) > np.argmax(shifted["reference"])


def test_discrete_values_are_the_union_of_both_sides_and_an_empty_window_is_all_zeros() -> None:
    profile = ReferenceProfile((profile_column("tier", [0, 0, 1, 1, 1, 2] * 100),))
    column = profile.column("tier")
    answer = column_distribution(column, _window(profile, "tier", [1, 3, 3, 3]))
    assert answer["kind"] == "values"
    assert answer["values"] == [0.0, 1.0, 2.0, 3.0]
    assert answer["reference"] == pytest.approx([2 / 6, 3 / 6, 1 / 6, 0.0])
    assert answer["current"] == pytest.approx([0.0, 0.25, 0.0, 0.75])
    empty = column_distribution(column, WindowHistogram(profile))
    assert empty["current"] == [0.0] * 3


def test_a_numeric_column_with_many_distinct_values_is_binned() -> None:
    few = ReferenceProfile((profile_column("age", np.arange(18, 18 + MAX_VALUES - 5).repeat(3)),))
    assert few.column("age").kind is ColumnKind.POINTS
    assert column_distribution(few.column("age"), _window(few, "age", [20, 21]))["kind"] == "values"
    many = ReferenceProfile((profile_column("age", np.arange(18, 98).repeat(3)),))
    answer = column_distribution(many.column("age"), _window(many, "age", [10, 20, 20, 120]), bins=8)
    assert answer["kind"] == "bins"
    assert len(answer["edges"]) == 9
    assert sum(answer["reference"]) == pytest.approx(1.0)
    assert (answer["below"], answer["above"]) == (0.25, 0.25)
    assert sum(answer["current"]) == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------- reports
def _report(report_id: int, at: datetime, **summary: Any) -> ReportRecord:
    return ReportRecord(
        id=report_id,
        monitor="churn",
        at=at,
        window_start=at - timedelta(seconds=300),
        window_end=at,
        trigger="manual",
        html_path="/x.html",
        json_path="/x.json",
        summary=summary,
    )


def test_reports_newest_first_with_their_window_and_where_to_open_them() -> None:
    rows = report_rows(
        [
            _report(1, NOW, rows=900, share_drifted=0.25, dataset_drifted=False),
            _report(2, NOW + timedelta(hours=1)),
        ]
    )
    assert [r["id"] for r in rows] == [2, 1]
    assert rows[1]["window_s"] == 300
    assert rows[1]["url"] == "./files/report/churn/1"
    assert (rows[1]["rows"], rows[1]["share_drifted"], rows[1]["dataset_drifted"]) == (900, 0.25, False)
    assert rows[0]["share_drifted"] is None


def test_a_report_is_previewed_as_no_traffic_change() -> None:
    preview = preview_report(_monitor("churn", "churn", window_s=600), None)
    assert not preview.changes_traffic
    assert preview.expected_revision is None
    text = preview.text()
    assert "make a drift report of monitor churn on churn" in text
    assert "traffic: (no endpoint) (unchanged)" in text
    assert "no traffic change: a full Evidently report of the last 600 s" in text


def test_window_labels() -> None:
    assert [window_label(s) for s in (45, 60, 300, 90, 3600, 5400, 7200)] == [
        "45 s",
        "1 min",
        "5 min",
        "90 s",
        "1 h",
        "90 min",
        "2 h",
    ]
