"""Live time-series charts on Bokeh: one source per series, streamed with rollover.

Streaming appends only the new rows to the browser's copy of a source (``ColumnDataSource.stream``),
and ``rollover`` drops the oldest, so a page open for hours sends a few hundred bytes a second and
holds a bounded number of points. Several figures share one source per version, so one stream moves
every chart of that version at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from bokeh.models import ColumnDataSource, DataRange1d, DatetimeTickFormatter, HoverTool
from bokeh.models.annotations import Title
from bokeh.plotting import figure

from workbench.ui.views.shell import version_color

FIELDS = ("p50_ms", "p95_ms", "p99_ms", "requests_per_s", "error_rate", "batch_size")


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def to_source_data(column: dict[str, list[Any]]) -> dict[str, list[float]]:
    """Feed columns (epoch seconds, nulls) → source columns (epoch milliseconds, NaN gaps)."""
    data: dict[str, list[float]] = {"x": [float(t) * 1000.0 for t in column.get("ts", [])]}
    for name in FIELDS:
        values = column.get(name, [])
        if name == "error_rate":
            data[name] = [_num(v) * 100.0 if v is not None else math.nan for v in values]
        else:
            data[name] = [_num(v) for v in values]
        if len(data[name]) < len(data["x"]):
            data[name] += [math.nan] * (len(data["x"]) - len(data[name]))
    return data


def time_figure(
    title: str, y_label: str, *, height: int = 210, x_range: Any = None, from_zero: bool = True
) -> Any:
    options: dict[str, Any] = {"x_range": x_range} if x_range is not None else {}
    fig = figure(
        title=title,
        height=height,
        sizing_mode="stretch_width",
        x_axis_type="datetime",
        tools="xpan,xwheel_zoom,reset,save",
        toolbar_location="right",
        **options,
    )
    fig.yaxis.axis_label = y_label
    if from_zero:  # rates, latencies and sizes are never negative: no axis below zero
        fig.y_range = DataRange1d(start=0)
    fig.xaxis.formatter = DatetimeTickFormatter(
        milliseconds="%H:%M:%S", seconds="%H:%M:%S", minsec="%H:%M:%S", minutes="%H:%M", hours="%H:%M"
    )
    if isinstance(fig.title, Title):
        fig.title.text_font_size = "13px"
    fig.toolbar.logo = None
    return fig


class VersionCharts:
    """Latency, requests/s, error rate and batch size, a line per version, sharing one x range."""

    def __init__(self, rollover: int) -> None:
        self.rollover = rollover
        self.latency = time_figure("Latency per version (p50 dashed, p95 solid, p99 dotted)", "ms")
        self.rps = time_figure("Requests per second", "req/s", x_range=self.latency.x_range)
        self.errors = time_figure("Error rate", "% of requests", x_range=self.latency.x_range)
        self.batch = time_figure("Mean batch size seen by requests", "rows", x_range=self.latency.x_range)
        self.figures = (self.latency, self.rps, self.errors, self.batch)
        self.sources: dict[str, ColumnDataSource] = {}
        # Revision marks: one source drawn as vertical lines by every figure, so re-marking is one data
        # update (adding and removing Span annotations per figure cost seconds of document events).
        self.marks = ColumnDataSource({"x": [], "color": []}, name="revision-marks")
        for fig in self.figures:
            fig.vspan(x="x", source=self.marks, line_color="color", line_dash="dashed", line_width=1.5)
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
            self.rps.line(
                "x", "requests_per_s", source=source, color="#94a3b8", line_width=1.5, legend_label="all"
            )
        else:
            color = version_color(key)
            label = f"v{key}"
            self.latency.line(
                "x", "p50_ms", source=source, color=color, line_dash="dashed", legend_label=label
            )
            self.latency.line("x", "p95_ms", source=source, color=color, line_width=2, legend_label=label)
            self.latency.line(
                "x", "p99_ms", source=source, color=color, line_dash="dotted", legend_label=label
            )
            self.rps.line("x", "requests_per_s", source=source, color=color, line_width=2, legend_label=label)
            self.errors.line("x", "error_rate", source=source, color=color, line_width=2, legend_label=label)
            self.batch.line("x", "batch_size", source=source, color=color, line_width=2, legend_label=label)
        for fig in self.figures:
            if fig.legend:
                fig.legend.location = "top_left"
                fig.legend.click_policy = "hide"
                fig.legend.label_text_font_size = "11px"
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
            if data["x"]:
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


def revision_strip(x_range: Any) -> tuple[Any, ColumnDataSource]:
    """A thin figure of revision markers (hover: cause, routes, who) on the charts' time axis."""
    source = ColumnDataSource({"x": [], "y": [], "color": [], "label": [], "who": [], "revision": []})
    fig = figure(
        height=90,
        sizing_mode="stretch_width",
        x_axis_type="datetime",
        x_range=x_range,
        tools="",
        toolbar_location=None,
        title="Revisions (hover for what changed)",
    )
    fig.scatter("x", "y", source=source, size=13, color="color", marker="triangle", line_color="#1f2933")
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
