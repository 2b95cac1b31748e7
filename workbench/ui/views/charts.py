"""Live time-series charts on Bokeh: one source per series, streamed with rollover.

Streaming appends only the new rows to the browser's copy of a source (``ColumnDataSource.stream``),
and ``rollover`` drops the oldest, so a page open for hours sends a few hundred bytes a second and
holds a bounded number of points. Several figures share one source per version, so one stream moves
every chart of that version at once.

What a page opens with decides how soon its first chart shows: every Bokeh model is built and
serialized by the server and rebuilt by the browser. So the columns are numpy arrays (sent as binary
buffers, not JSON numbers; values as float32, which a chart cannot tell apart), the figures of a page
share one datetime ticker and formatter (each default one is 13 models), and lines are drawn without
the selection and mute variants Bokeh adds by default (the browser derives them when needed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from bokeh.models import (
    ColumnDataSource,
    DataRange1d,
    DatetimeAxis,
    DatetimeTicker,
    DatetimeTickFormatter,
    Grid,
    HoverTool,
    Line,
    Scatter,
    VSpan,
)
from bokeh.models.annotations import Legend, LegendItem, Title
from bokeh.plotting import figure

from workbench.ui.views.shell import version_color

FIELDS = ("p50_ms", "p95_ms", "p99_ms", "requests_per_s", "error_rate", "batch_size")


def _values(values: list[Any], length: int, scale: float = 1.0) -> np.ndarray:
    out = np.full(length, np.nan, dtype=np.float32)
    for i, value in enumerate(values[:length]):
        if value is not None:
            out[i] = float(value) * scale
    return out


def to_source_data(column: dict[str, list[Any]]) -> dict[str, np.ndarray]:
    """Feed columns (epoch seconds, nulls) → source columns (epoch milliseconds, NaN gaps)."""
    x = np.asarray(column.get("ts", []), dtype=np.float64) * 1000.0
    data: dict[str, np.ndarray] = {"x": x}
    for name in FIELDS:
        data[name] = _values(column.get(name, []), len(x), 100.0 if name == "error_rate" else 1.0)
    return data


class TimeAxis:
    """One datetime ticker and formatter for every figure of a page (they share the x range too)."""

    def __init__(self) -> None:
        self.ticker = DatetimeTicker()
        self.formatter = DatetimeTickFormatter(
            milliseconds="%H:%M:%S", seconds="%H:%M:%S", minsec="%H:%M:%S", minutes="%H:%M", hours="%H:%M"
        )

    def attach(self, fig: Any) -> None:
        fig.add_layout(DatetimeAxis(ticker=self.ticker, formatter=self.formatter), "below")
        fig.add_layout(Grid(dimension=0, ticker=self.ticker))


def add_line(fig: Any, source: ColumnDataSource, y: str, **line: Any) -> Any:
    """A line renderer without the nonselection and muted glyph models ``figure.line`` adds."""
    return fig.add_glyph(source, Line(x="x", y=y, **line))


def add_legend_item(fig: Any, label: str, renderers: list[Any]) -> None:
    """Entries by label: one per version, however many lines it draws on the figure."""
    legends = fig.select(type=Legend)
    if not legends:
        legend = Legend(location="top_left", click_policy="hide", label_text_font_size="11px", items=[])
        fig.add_layout(legend)
    else:
        legend = legends[0]
    for item in legend.items:
        if isinstance(item, LegendItem) and getattr(item.label, "value", None) == label:
            item.renderers = [*item.renderers, *renderers]
            return
    legend.items = [*legend.items, LegendItem(label=label, renderers=renderers)]


def time_figure(
    title: str,
    y_label: str,
    *,
    height: int = 210,
    x_range: Any = None,
    from_zero: bool = True,
    axis: TimeAxis | None = None,
) -> Any:
    options: dict[str, Any] = {"x_range": x_range} if x_range is not None else {}
    fig = figure(
        title=title,
        height=height,
        sizing_mode="stretch_width",
        x_axis_type=None,
        tools="xpan,xwheel_zoom,reset,save",
        toolbar_location="right",
        # A range's start and end from the data: no axis below zero for rates, latencies and sizes.
        y_range=DataRange1d(start=0) if from_zero else DataRange1d(),
        **options,
    )
    (axis or TimeAxis()).attach(fig)
    fig.yaxis.axis_label = y_label
    if isinstance(fig.title, Title):
        fig.title.text_font_size = "13px"
    fig.toolbar.logo = None
    return fig


class VersionCharts:
    """Latency, requests/s, error rate and batch size, a line per version, sharing one x range."""

    def __init__(self, rollover: int) -> None:
        self.rollover = rollover
        self.axis = TimeAxis()
        self.latency = time_figure(
            "Latency per version (p50 dashed, p95 solid, p99 dotted)", "ms", axis=self.axis
        )
        shared = {"x_range": self.latency.x_range, "axis": self.axis}
        self.rps = time_figure("Requests per second", "req/s", **shared)
        self.errors = time_figure("Error rate", "% of requests", **shared)
        self.batch = time_figure("Mean batch size seen by requests", "rows", **shared)
        self.figures = (self.latency, self.rps, self.errors, self.batch)
        self.sources: dict[str, ColumnDataSource] = {}
        # Revision marks: one source drawn as vertical lines by every figure, so re-marking is one data
        # update (adding and removing Span annotations per figure cost seconds of document events).
        self.marks = ColumnDataSource({"x": [], "color": []}, name="revision-marks")
        for fig in self.figures:
            fig.add_glyph(self.marks, VSpan(x="x", line_color="color", line_dash="dashed", line_width=1.5))
        for fig in self.figures:
            fig.add_tools(
                HoverTool(
                    tooltips=[("time", "@x{%H:%M:%S}"), ("value", "$y{0.00}")], formatters={"@x": "datetime"}
                )
            )

    def _source(self, key: str) -> ColumnDataSource:
        source = self.sources.get(key)
        if source is not None:
            return source
        source = ColumnDataSource({"x": [], **{f: [] for f in FIELDS}}, name=f"traffic-{key}")
        self.sources[key] = source
        if key == "all":
            line = add_line(self.rps, source, "requests_per_s", line_color="#94a3b8", line_width=1.5)
            add_legend_item(self.rps, "all", [line])
            return source
        color = version_color(key)
        label = f"v{key}"
        latency = [
            add_line(self.latency, source, "p50_ms", line_color=color, line_dash="dashed"),
            add_line(self.latency, source, "p95_ms", line_color=color, line_width=2),
            add_line(self.latency, source, "p99_ms", line_color=color, line_dash="dotted"),
        ]
        add_legend_item(self.latency, label, latency)
        for fig, field in (
            (self.rps, "requests_per_s"),
            (self.errors, "error_rate"),
            (self.batch, "batch_size"),
        ):
            add_legend_item(fig, label, [add_line(fig, source, field, line_color=color, line_width=2)])
        return source

    def reset(self, points: dict[str, dict[str, list[Any]]]) -> None:
        for key, source in self.sources.items():
            source.data = to_source_data(points.get(key, {}))
        for key, column in points.items():
            if key not in self.sources:
                self._source(key).data = to_source_data(column)

    def stream(self, points: dict[str, dict[str, list[Any]]]) -> None:
        for key, column in points.items():
            data = to_source_data(column)
            if len(data["x"]):
                self._source(key).stream(dict(data), rollover=self.rollover)

    def mark(self, marks: Sequence[tuple[float, str]]) -> None:
        """Vertical lines at revision times (epoch seconds), coloured by cause."""
        data = {"x": [at * 1000.0 for at, _ in marks], "color": [color for _, color in marks]}
        if data != dict(self.marks.data):
            self.marks.data = data


CAUSE_COLORS = {
    "deploy": "#2563eb",
    "rollout_step": "#f59e0b",
    "promote": "#10b981",
    "automatic_rollback": "#ef4444",
    "manual_rollback": "#b91c1c",
    "edit": "#64748b",
}


def revision_strip(x_range: Any, axis: TimeAxis | None = None) -> tuple[Any, ColumnDataSource]:
    """A thin figure of revision markers (hover: cause, routes, who) on the charts' time axis."""
    source = ColumnDataSource({"x": [], "y": [], "color": [], "label": [], "who": [], "revision": []})
    fig = figure(
        height=90,
        sizing_mode="stretch_width",
        x_axis_type=None,
        x_range=x_range,
        tools="",
        toolbar_location=None,
        title="Revisions (hover for what changed)",
    )
    (axis or TimeAxis()).attach(fig)
    fig.add_glyph(
        source,
        Scatter(x="x", y="y", size=13, fill_color="color", marker="triangle", line_color="#1f2933"),
    )
    fig.yaxis.visible = False
    fig.ygrid.visible = False
    fig.y_range = DataRange1d(start=0, end=2)
    if isinstance(fig.title, Title):
        fig.title.text_font_size = "12px"
    fig.add_tools(
        HoverTool(
            tooltips=[
                ("revision", "@revision"),
                ("change", "@label"),
                ("by", "@who"),
                ("at", "@x{%H:%M:%S}"),
            ],
            formatters={"@x": "datetime"},
        )
    )
    return fig, source


def revision_rows(revisions: Iterable[Any], split: Any) -> dict[str, list[Any]]:
    rows: dict[str, list[Any]] = {"x": [], "y": [], "color": [], "label": [], "who": [], "revision": []}
    for revision in revisions:
        rows["x"].append(revision.at.timestamp() * 1000.0)
        rows["y"].append(1)
        rows["color"].append(CAUSE_COLORS.get(revision.cause.value, "#64748b"))
        rows["label"].append(f"{revision.cause.value.replace('_', ' ')}: {split(revision.routes)}")
        rows["who"].append(revision.actor)
        rows["revision"].append(revision.revision)
    return rows
