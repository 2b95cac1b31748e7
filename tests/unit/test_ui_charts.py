"""The endpoint page's charts: what they hold and how few models they take to draw it."""

from __future__ import annotations

import math

import numpy as np
from bokeh.document import Document
from bokeh.models import DatetimeTicker, GlyphRenderer, LegendItem

from workbench.ui.views.charts import VersionCharts, revision_strip, to_source_data
from workbench.ui.views.progressive import first_then_rest


def test_feed_columns_become_binary_arrays_with_nan_gaps_and_percent_errors() -> None:
    data = to_source_data({"ts": [10, 11, 12], "p95_ms": [1.5, None, 3.0], "error_rate": [0.0, 0.25]})
    assert data["x"].dtype == np.float64
    assert data["x"].tolist() == [10_000.0, 11_000.0, 12_000.0]
    assert data["p95_ms"].dtype == np.float32
    assert data["p95_ms"][0] == 1.5
    assert math.isnan(data["p95_ms"][1])
    assert data["p95_ms"][2] == 3.0
    # a column shorter than the time column is padded with gaps, not misaligned
    assert data["error_rate"][1] == 25.0
    assert math.isnan(data["error_rate"][2])
    assert all(len(data[name]) == 3 for name in data)


def test_a_version_is_one_legend_entry_per_figure_and_the_page_shares_one_time_ticker() -> None:
    charts = VersionCharts(rollover=900)
    strip, _ = revision_strip(charts.latency.x_range, charts.axis)
    charts.reset({"all": {"ts": [1, 2]}, "1": {"ts": [1, 2]}, "2": {"ts": [2]}})
    doc = Document()
    for fig in (strip, *charts.figures):
        doc.add_root(fig)
    assert len([m for m in doc.models if isinstance(m, DatetimeTicker)]) == 1
    legend = [item.label.value for item in charts.latency.legend[0].items]
    assert legend == ["v1", "v2"]  # p50, p95 and p99 of a version under one entry
    entry = next(i for i in charts.latency.legend[0].items if isinstance(i, LegendItem))
    assert len(entry.renderers) == 3
    assert [item.label.value for item in charts.rps.legend[0].items] == ["all", "v1", "v2"]
    renderers = [m for m in doc.models if isinstance(m, GlyphRenderer)]
    # no selection or mute variants as models of their own: the browser derives them
    assert all(r.nonselection_glyph == "auto" and r.muted_glyph == "auto" for r in renderers)


def test_streaming_appends_only_new_rows_and_rolls_over() -> None:
    charts = VersionCharts(rollover=3)
    charts.reset({"1": {"ts": [1, 2], "p95_ms": [1.0, 2.0]}})
    charts.stream({"1": {"ts": [3, 4], "p95_ms": [3.0, 4.0]}})
    source = charts.sources["1"]
    assert list(source.data["x"]) == [2000.0, 3000.0, 4000.0]
    assert list(source.data["p95_ms"]) == [2.0, 3.0, 4.0]


def test_outside_a_served_session_the_whole_column_is_there_at_once() -> None:
    column = first_then_rest(["first"], lambda: ["second", "third"])
    assert [obj.object for obj in column.objects] == ["first", "second", "third"]
