"""Drift & performance page: a per-feature drift heatmap, one feature against its reference, prediction
drift, accuracy from labels beside its label-free estimate, and the archived Evidently reports.

The heatmap is a HoloViews ``HeatMap`` over a ``Buffer``: a new look is a few rows sent to the buffer,
which HoloViews streams to the browser's source (features are numbered rows: a string column would be
sent whole again after each look). The line charts are Bokeh sources streamed with ``rollover``. The
distribution, a few dozen bars, gets its new data through a ``Pipe``; another feature is a new figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import holoviews as hv  # type: ignore[import-untyped]
import holoviews.plotting.bokeh  # type: ignore[import-untyped]  # registers the Bokeh options
import pandas as pd
import panel as pn
import param
from bokeh.models import (
    ColumnDataSource,
    CustomJSHover,
    DataRange1d,
    DatetimeTickFormatter,
    HoverTool,
    LinearAxis,
    NumeralTickFormatter,
    Range1d,
)
from bokeh.models.annotations import Legend
from bokeh.models.annotations.geometry import Span
from panel.viewable import Viewer

from workbench.ui.buffers import KEEP_S
from workbench.ui.models.drift import (
    FEATURE_SERIES,
    LINE_SERIES,
    PREDICTION,
    DriftModel,
    distribution_bars,
    window_label,
)
from workbench.ui.views.charts import time_figure
from workbench.ui.views.shell import esc, stylesheets
from workbench.ui.views.widgets import badge, number, when

#: The buffer's columns. A feature is its row number (the first feature on top): HoloViews' Bokeh
#: work-around for string arrays re-sends a whole string column after each streamed look, numbers stream.
HEAT_COLUMNS = ("time", "row", "ratio", "score")
#: Score over threshold, 0 to 2 in tenths: blues below the threshold, ambers and reds from it on.
HEAT_PALETTE = [
    "#e0f2fe",
    "#bae6fd",
    "#7dd3fc",
    "#38bdf8",
    "#0ea5e9",
    "#fdba74",
    "#fb923c",
    "#f97316",
    "#ea580c",
    "#dc2626",
]
REFERENCE_COLOR = "#64748b"
CURRENT_COLOR = "#f97316"
#: How each monitor-wide series is drawn: figure, colour, dash, label.
LINE_STYLE = {
    "prediction_drift": ("drift", "#a855f7", "solid", "prediction drift (score)"),
    "drift_share": ("drift", "#2563eb", "solid", "share of drifted columns"),
    "dataset_drift": ("drift", "#ef4444", "dashed", "dataset drift (1 = drifted)"),
    "accuracy": ("performance", "#2563eb", "solid", "accuracy (labels)"),
    "estimated_accuracy": ("performance", "#2563eb", "dashed", "accuracy (estimated)"),
    "auc": ("performance", "#10b981", "solid", "AUC (labels)"),
    "estimated_auc": ("performance", "#10b981", "dashed", "AUC (estimated)"),
    "labelled": ("labelled", "#64748b", "solid", "labelled predictions"),
    "feature_age_max_s": ("features", "#0d9488", "solid", "oldest feature served (s, left)"),
    "feature_lookup_p95_ms": ("features", "#d97706", "solid", "lookup p95 (ms, right)"),
}
FEATURES_TITLE = "Feature store: oldest feature served (s) and lookup p95 (ms)"
#: The series drawn against the feature-store chart's second (right) y axis, and that range's name.
LOOKUP_RANGE = "lookup_ms"
#: Each feature-store scale ends this much above its line's highest point: the age runs in the upper part
#: of the chart, the lookup in the lower half, so two steady lines are never drawn one over the other.
FEATURE_HEADROOM = {"feature_age_max_s": 1.15, "feature_lookup_p95_ms": 2.0}
#: Pixels beside each chart's frame (left; right, the toolbar included) while the feature-store chart is
#: drawn: its second axis takes room on the right, so every chart sharing its time axis keeps as much on
#: each side, and the same time stays at the same place down the page.
ALIGNED_BORDERS = (72, 100)


def _heading(text: str) -> pn.pane.HTML:
    return pn.pane.HTML(f'<h3 style="font-family:system-ui;margin:8px 0 2px 0">{esc(text)}</h3>')


def heat_frame(rows: dict[str, list[Any]], columns: Sequence[str]) -> pd.DataFrame:
    """Heatmap rows as the frame the buffer holds: columns in one order, typed even when empty, and each
    feature as its row from the top (see ``heatmap_element``)."""
    top = len(columns) - 1
    position = {name: top - i for i, name in enumerate(columns)}
    frame = pd.DataFrame(
        {
            "time": rows.get("time", []),
            "row": [position[c] for c in rows.get("column", [])],
            "ratio": rows.get("ratio", []),
            "score": rows.get("score", []),
        }
    )
    return frame.astype(dict.fromkeys(HEAT_COLUMNS, float))


def _report_row(report: dict[str, Any]) -> str:
    rows = report["rows"]
    share = report["share_drifted"]
    drifted = badge("dataset drift", "wb-bad") if report["dataset_drifted"] else ""
    return (
        f"<tr><td>{when(report['at'])}</td>"
        f"<td>{esc(window_label(report['window_s']))} to {when(report['window_end'])[11:]}</td>"
        f"<td>{'-' if rows is None else f'{int(rows):,}'}</td>"
        f"<td>{'-' if share is None else f'{float(share):.0%}'} {drifted}</td>"
        f"<td>{esc(report['trigger'])}</td>"
        f'<td><a href="{esc(report["url"])}" target="_blank" rel="noopener" data-testid="open-report">'
        "open</a></td></tr>"
    )


def _no_logo(plot: Any, _element: Any) -> None:
    plot.state.toolbar.logo = None


def heatmap_element(data: pd.DataFrame, columns: Sequence[str]) -> Any:
    """Features by looks, coloured by score over threshold; the first column on top."""
    names = list(columns)[::-1]  # by row, from the bottom
    return (
        hv.HeatMap(data, kdims=["time", "row"], vdims=["ratio", "score"])
        .redim.label(time="time (UTC)", row="feature", ratio="score ÷ threshold")
        .opts(
            backend="bokeh",
            optimize_gridded=False,
            cmap=HEAT_PALETTE,
            clim=(0.0, 2.0),
            colorbar=True,
            colorbar_opts={"title": "score ÷ threshold (≥ 1: drifted)", "title_text_font_size": "11px"},
            clipping_colors={"NaN": "#ffffff", "max": "#7f1d1d"},  # no look: blank
            xformatter=DatetimeTickFormatter(  # two looks apart are seconds, never milliseconds
                milliseconds="%H:%M:%S", seconds="%H:%M:%S", minsec="%H:%M:%S", minutes="%H:%M", hours="%H:%M"
            ),
            tools=[
                HoverTool(
                    tooltips=[
                        ("feature", "@row{name}"),
                        ("look", "@time{%H:%M:%S}"),
                        ("score", "@score"),
                        ("÷ threshold", "@ratio"),
                    ],
                    formatters={
                        "@time": "datetime",
                        "@row": CustomJSHover(args={"names": names}, code="return names[Math.round(value)]"),
                    },
                )
            ],
            yticks=list(enumerate(names)),
            default_tools=["xpan", "xwheel_zoom", "reset", "save"],
            toolbar="right",
            title="Drift score per feature, look by look (last hour)",
            fontsize={"title": "13px", "labels": "11px", "yticks": "11px"},
            xlabel="",
            ylabel="",
            responsive=True,
            height=max(160, 22 * len(names) + 70),
            hooks=[_no_logo],
        )
    )


def distribution_element(data: dict[str, Any]) -> Any:
    """Reference and current-window shares of one column: overlaid histograms, or bars per value."""
    answer = data
    column = str(answer.get("column", ""))
    source = answer["reference_data"]
    title = f"{column}: reference (models:/{source['model']}/{source['version']}) vs the current window"
    common = {
        "responsive": True,
        "height": 260,
        "title": title,
        "fontsize": {"title": "13px"},
        "toolbar": "right",
        "hooks": [_no_logo],
    }
    if answer.get("kind") == "bins":
        edges = answer["edges"]
        reference = hv.Histogram(
            (edges, answer["reference"]), kdims=[column], vdims=["share"], label="reference"
        )
        current = hv.Histogram(
            (edges, answer["current"]), kdims=[column], vdims=["share"], label="current window"
        )
        element: Any = (
            reference.opts(backend="bokeh", color=REFERENCE_COLOR, fill_alpha=0.3, line_alpha=0)
            * current.opts(backend="bokeh", fill_alpha=0, line_color=CURRENT_COLOR, line_width=2)
        ).opts(backend="bokeh", legend_position="top_right", tools=["hover"], **common)
    else:
        element = (
            hv.Bars(distribution_bars(answer), kdims=["value", "side"], vdims=["share"])
            .redim.values(side=["reference", "current window"])
            .redim.label(value=column)
            .opts(
                backend="bokeh",
                color="side",
                cmap={"reference": REFERENCE_COLOR, "current window": CURRENT_COLOR},
                multi_level=False,
                show_legend=True,
                legend_position="top_right",
                tools=["hover"],
                **common,
            )
        )
    return element


class DriftView(Viewer):
    model = param.ClassSelector(class_=DriftModel)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.model is None:
            raise TypeError("DriftView needs a DriftModel")
        model: DriftModel = self.model
        self._model = model
        css = stylesheets()
        self._error = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        self._summary = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        self._select = pn.widgets.Select(
            label="Monitor", options=self._monitor_names(), value=model.monitor or None, width=220
        )
        self._select.param.watch(lambda e: setattr(model, "monitor", e.new or ""), "value")
        # Heatmap: rebuilt when the page (re)opens a monitor, streamed look by look afterwards.
        self._heat_note = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        self._heat = pn.pane.HoloViews(None, backend="bokeh", sizing_mode="stretch_width")
        self._buffer: hv.streams.Buffer | None = None
        # Distribution of the chosen feature.
        self._column = pn.widgets.Select(label="Feature", options=[], width=260)
        self._column.param.watch(self._on_column, "value")
        self._dist = pn.pane.HoloViews(None, backend="bokeh", sizing_mode="stretch_width")
        self._pipe: hv.streams.Pipe | None = None
        self._dist_key: tuple[Any, ...] = ()
        self._dist_note = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        # Lines.
        self._renderers: dict[str, Any] = {}
        self._features_drawn = False  # whether the feature-store chart has points
        self._figures = {
            "drift": time_figure("Prediction drift and dataset drift", "score / share"),
            "performance": time_figure(
                "Accuracy and AUC: measured from labels (solid) beside the label-free estimate (dashed)",
                "accuracy / AUC",
            ),
            "labelled": time_figure("Predictions with a label in the window", "rows", height=160),
            "features": self._features_figure(),
        }
        performance = self._figures["performance"]
        performance.y_range = DataRange1d(
            range_padding=0.2
        )  # not from 0: the differences that matter are small
        for name in ("performance", "labelled", "features"):
            self._figures[name].x_range = self._figures["drift"].x_range
        self._share_span = Span(
            location=0.5, dimension="width", line_color="#2563eb", line_dash="dotted", line_width=1
        )
        self._figures["drift"].add_layout(self._share_span)
        self._sources = {name: self._line(name) for name in LINE_SERIES}
        for name, fig in self._figures.items():
            fig.legend.location = "top_left"
            fig.legend.click_policy = "hide"
            fig.legend.label_text_font_size = "11px"
            if name != "features":  # its lines have hovers of their own, with units
                fig.add_tools(
                    HoverTool(
                        tooltips=[("time", "@x{%H:%M:%S}"), ("value", "@y{0.000}")],
                        formatters={"@x": "datetime"},
                    )
                )
        self._add_feature_hovers()
        self._features_note = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css, visible=False)
        # The feature-store chart is shown and hidden by its figure's ``visible``: a Bokeh pane's own does not
        # come back once toggled off (Panel 1.9), and a box around it would lay it out wider than the others.
        self._figures["features"].visible = False
        self._charts = [
            *(pn.pane.Bokeh(fig, sizing_mode="stretch_width") for fig in self._figures.values()),
            self._features_note,
        ]
        # Reports.
        self._reports = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        self._make_report = pn.widgets.Button(label="Make a report now", color="primary", width=170)
        self._make_report.on_click(lambda _e: model.propose_report())
        model.desk.param.watch(self._sync_button, ["busy", "pending"])

        model.param.watch(self._render_error, ["error"])
        model.param.watch(self._render_summary, ["record", "snapshot", "monitor"])
        model.param.watch(self._sync_button, ["record"])
        model.param.watch(self._on_heatmap, ["heatmap"])
        model.param.watch(self._on_heatmap_delta, ["heatmap_delta"])
        model.param.watch(self._on_lines, ["lines"])
        model.param.watch(self._on_lines_delta, ["lines_delta"])
        model.param.watch(self._render_features, ["feature_store", "lines", "lines_delta", "record"])
        model.param.watch(self._render_columns, ["columns", "column", "distribution"])
        model.param.watch(self._render_distribution, ["distribution", "distribution_error"])
        model.param.watch(self._render_reports, ["reports", "reports_error"])
        self._render_error()
        self._render_summary()
        self._on_heatmap()
        self._on_lines()
        self._render_features()
        self._render_columns()
        self._render_distribution()
        self._render_reports()
        self._sync_button()

    # ------------------------------------------------------------------ state
    def _monitor_names(self) -> list[str]:
        return [m.spec.name for m in self._model.snapshot.monitors]

    def _render_error(self, *_: Any) -> None:
        error = self._model.error
        self._error.object = (
            f'<div class="wb-outcome-bad">Cannot read the control plane: {esc(error)}</div>' if error else ""
        )

    def _render_summary(self, *_: Any) -> None:
        model = self._model
        names = self._monitor_names()
        if model.monitor and model.monitor not in names:
            names = [model.monitor, *names]
        if self._select.options != names:
            self._select.options = names
        if self._select.value != (model.monitor or None):
            self._select.value = model.monitor or None
        record = model.record
        if record is None:
            self._summary.object = (
                f'<div class="wb-outcome-bad">No monitor named {esc(model.monitor)} (deleted?).</div>'
                if model.monitor
                else '<div class="wb-card">No monitors yet: create one with <code>workbench monitor create'
                "</code> or <code>Client.create_monitor</code>.</div>"
            )
            return
        spec = record.spec
        self._share_span.location = spec.drift.drift_share
        firing = [
            r.spec.name
            for r in model.snapshot.rules
            if r.spec.monitor == spec.name and r.state.get("state") == "firing"
        ]
        alerts = " ".join(badge(f"firing: {name}", "wb-bad") for name in firing) or badge(
            "no alert firing", "wb-ok"
        )
        self._summary.object = (
            f'<div class="wb-card" data-testid="monitor-summary"><h3>{esc(spec.name)} '
            f'<span class="wb-muted">watches <a href="./endpoint?name={esc(spec.endpoint)}">'
            f"{esc(spec.endpoint)}</a></span></h3>"
            f"<div>window {esc(window_label(spec.window_s))}, a look every {esc(window_label(spec.every_s))}; "
            f"drift judged from {spec.drift.min_rows} rows, the dataset drifts when "
            f"{spec.drift.drift_share:.0%} of the columns do · {alerts}</div></div>"
        )

    # ---------------------------------------------------------------- heatmap
    def _on_heatmap(self, *_: Any) -> None:
        model = self._model
        if not model.columns:
            self._buffer = None
            self._heat.object = None
            self._heat.visible = False
            self._heat_note.object = (
                '<div class="wb-card wb-muted">No drift scores yet: a monitor scores drift once its window '
                "holds enough rows (min_rows).</div>"
                if model.record is not None
                else ""
            )
            return
        every_s = model.record.spec.every_s if model.record is not None else 10.0
        looks = int(KEEP_S / every_s * 1.5) + 10  # an hour of looks, and the blank looks of gaps
        self._buffer = hv.streams.Buffer(
            heat_frame(model.heatmap, model.columns),
            length=looks * len(model.columns),
            index=False,
            following=True,
        )
        columns = list(model.columns)
        self._heat.object = hv.DynamicMap(lambda data: heatmap_element(data, columns), streams=[self._buffer])
        self._heat.visible = True
        self._heat_note.object = ""

    def _on_heatmap_delta(self, *_: Any) -> None:
        delta = self._model.heatmap_delta
        if self._buffer is None:
            self._on_heatmap()
        elif delta.get("time"):
            self._buffer.send(heat_frame(delta, self._model.columns))

    # ------------------------------------------------------------------ lines
    @staticmethod
    def _features_figure() -> Any:
        """Two scales on one time axis: feature age in seconds on the left, lookup time in ms on the right,
        each axis coloured as its line."""
        fig = time_figure(FEATURES_TITLE, "oldest feature served (s)", height=230)
        fig.y_range = Range1d(start=0, end=1, reset_start=0, reset_end=1)  # see _fit_feature_scales
        fig.extra_y_ranges = {LOOKUP_RANGE: Range1d(start=0, end=1, reset_start=0, reset_end=1)}
        fig.add_layout(LinearAxis(y_range_name=LOOKUP_RANGE, axis_label="lookup p95 (ms)"), "right")
        fig.yaxis[0].formatter = NumeralTickFormatter(format="0.[0]a")  # a day old is 86.4k, not 86400
        for axis, series in ((fig.yaxis[0], "feature_age_max_s"), (fig.yaxis[1], "feature_lookup_p95_ms")):
            color = LINE_STYLE[series][1]
            axis.axis_label_text_color = color
            axis.major_label_text_color = color
            axis.axis_line_color = color
        # The legend above the frame, in a row: two lines on two scales may run anywhere in it.
        legend = Legend(orientation="horizontal", border_line_alpha=0, margin=0)
        legend.update(padding=4)
        fig.add_layout(legend, "above")
        fig.min_border_left, fig.min_border_right = ALIGNED_BORDERS
        return fig

    def _add_feature_hovers(self) -> None:
        fig = self._figures["features"]
        for series, label, unit in (
            ("feature_age_max_s", "oldest feature", "@y{0,0.0} s"),
            ("feature_lookup_p95_ms", "lookup p95", "@y{0.000} ms"),
        ):
            fig.add_tools(
                HoverTool(
                    renderers=[self._renderers[series]],
                    tooltips=[("time", "@x{%H:%M:%S}"), (label, unit)],
                    formatters={"@x": "datetime"},
                )
            )

    def _line(self, name: str) -> ColumnDataSource:
        figure_name, color, dash, label = LINE_STYLE[name]
        source = ColumnDataSource({"x": [], "y": []}, name=f"monitor-{name}")
        fig = self._figures[figure_name]
        if name in FEATURE_SERIES:  # kept for their hovers; the lookup against the right-hand scale
            scale = LOOKUP_RANGE if name == "feature_lookup_p95_ms" else "default"
            self._renderers[name] = fig.line(
                "x", "y", source=source, color=color, line_width=2, legend_label=label, y_range_name=scale
            )
        elif name in ("dataset_drift", "labelled"):
            fig.step(
                "x",
                "y",
                source=source,
                color=color,
                line_dash=dash,
                line_width=2,
                mode="after",
                legend_label=label,
            )
        else:
            fig.line("x", "y", source=source, color=color, line_dash=dash, line_width=2, legend_label=label)
        return source

    def _on_lines(self, *_: Any) -> None:
        lines = self._model.lines
        self._features_drawn = any(name in lines for name in FEATURE_SERIES)
        for name, source in self._sources.items():
            source.data = lines.get(name, {"x": [], "y": []})
        self._fit_feature_scales()

    def _fit_feature_scales(self) -> None:
        """Each scale of the feature-store chart from 0 to its line's highest point and some headroom
        (see FEATURE_HEADROOM); a scale without points spans 0 to 1."""
        fig = self._figures["features"]
        ranges = {"feature_age_max_s": fig.y_range, "feature_lookup_p95_ms": fig.extra_y_ranges[LOOKUP_RANGE]}
        for name, scale in ranges.items():
            values = [float(v) for v in self._sources[name].data.get("y", ()) if math.isfinite(float(v))]
            top = max(values, default=0.0) * FEATURE_HEADROOM[name]
            end = top if top > 0 else 1.0
            if scale.end != end:
                scale.update(end=end, reset_end=end)

    def _render_features(self, *_: Any) -> None:
        """The feature-store chart: for an endpoint that looks its features up (or did), else not at all."""
        model = self._model
        shown = model.feature_store
        self._figures["features"].visible = shown
        for name in ("drift", "performance", "labelled"):
            fig = self._figures[name]
            fig.min_border_left, fig.min_border_right = ALIGNED_BORDERS if shown else (None, None)
        if not shown or self._features_drawn:
            self._features_note.object = ""
            self._features_note.visible = False
            return
        endpoint = model.record.spec.endpoint if model.record is not None else "the endpoint"
        self._features_note.object = (
            '<div class="wb-muted" data-testid="feature-store-note">No looked-up request in the last hour '
            f"yet: the feature-store chart fills as {esc(endpoint)} serves requests by id.</div>"
        )
        self._features_note.visible = True

    def _on_lines_delta(self, *_: Any) -> None:
        if any(name in self._model.lines_delta for name in FEATURE_SERIES):
            self._features_drawn = True
        for name, points in self._model.lines_delta.items():
            source = self._sources.get(name)
            if source is not None and points.get("x"):
                source.stream(points, rollover=KEEP_S)
        if self._features_drawn:
            self._fit_feature_scales()

    # ----------------------------------------------------------- distribution
    def _on_column(self, event: Any) -> None:
        if event.new:
            self._model.column = event.new

    def _render_columns(self, *_: Any) -> None:
        model = self._model
        options = list(model.columns)
        if model.distribution.get("predictions") and PREDICTION not in options:
            options.append(PREDICTION)
        if list(self._column.options) != options:
            self._column.options = options
        if model.column in options and self._column.value != model.column:
            self._column.value = model.column

    def _render_distribution(self, *_: Any) -> None:
        model = self._model
        answer = model.distribution
        if model.distribution_error:
            self._dist_note.object = (
                f'<div class="wb-outcome-bad">Cannot read the distribution of {esc(model.column)}: '
                f"{esc(model.distribution_error)}</div>"
            )
        if not answer:
            self._pipe = None
            self._dist.object = None
            self._dist.visible = False
            if not model.distribution_error:
                self._dist_note.object = (
                    '<div class="wb-muted">Reading the distribution…</div>' if model.column else ""
                )
            return
        # The same feature again (the window moved): new data into the drawn figure; another: a new figure.
        key = (answer.get("column"), answer.get("kind"), str(answer.get("reference_data")))
        if self._pipe is None or key != self._dist_key:
            self._pipe = hv.streams.Pipe(data=answer)
            self._dist.object = hv.DynamicMap(distribution_element, streams=[self._pipe])
            self._dist_key = key
        else:
            self._pipe.send(answer)
        self._dist.visible = True
        if not model.distribution_error:
            self._dist_note.object = self._distribution_caption(answer)

    def _distribution_caption(self, answer: dict[str, Any]) -> str:
        window = answer.get("window", {})
        rows = int(window.get("rows") or 0)
        score = answer.get("score")
        if score is None:
            verdict = badge("no rows in the window", "wb-warn")
        elif rows < int(answer.get("min_rows") or 0):
            verdict = badge(f"not judged below {answer.get('min_rows')} rows", "wb-warn")
        elif answer.get("drifted"):
            verdict = badge("drifted", "wb-bad")
        else:
            verdict = badge("no drift", "wb-ok")
        outside = ""
        below, above = float(answer.get("below") or 0.0), float(answer.get("above") or 0.0)
        if below or above:
            outside = f" · outside the reference range: {below:.1%} below, {above:.1%} above (not drawn)"
        score_text = "-" if score is None or not math.isfinite(float(score)) else f"{float(score):.4f}"
        last = window.get("last_look")
        return (
            f'<div class="wb-muted" data-testid="distribution-caption">{verdict} {esc(answer.get("method"))} '
            f"score <b>{esc(score_text)}</b> (threshold {number(answer.get('threshold'), digits=2)}) · "
            f"window: {rows:,} rows, reference: {int(answer['reference_data']['rows']):,} rows · "
            f"shares of each side's rows{esc(outside)} · as of {esc(when(last) if last else '-')} UTC</div>"
        )

    # --------------------------------------------------------------- reports
    def _render_reports(self, *_: Any) -> None:
        model = self._model
        if model.reports_error:
            self._reports.object = (
                f'<div class="wb-outcome-bad">Cannot list the reports: {esc(model.reports_error)}</div>'
            )
            return
        rows = "".join(_report_row(r) for r in model.reports)
        empty = '<tr><td colspan=6 class="wb-muted">no archived report yet</td></tr>'
        self._reports.object = (
            '<table class="wb-table" data-testid="reports"><tr><th>made (UTC)</th><th>window</th><th>rows</th>'
            f"<th>columns drifted</th><th>trigger</th><th></th></tr>{rows or empty}</table>"
        )

    def _sync_button(self, *_: Any) -> None:
        desk = self._model.desk
        self._make_report.disabled = desk.busy or desk.pending is not None or self._model.record is None

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            self._error,
            pn.Row(self._select),
            self._summary,
            self._heat_note,
            self._heat,
            _heading("One feature against its reference"),
            pn.Row(self._column),
            self._dist,
            self._dist_note,
            *self._charts,
            pn.Row(_heading("Archived Evidently reports"), self._make_report),
            self._reports,
            sizing_mode="stretch_width",
        )
