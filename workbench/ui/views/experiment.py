"""Experiments page: every experiment with its latest verdict; for one, its state, units per variant,
the sample-ratio check, the decision, each primary comparison's estimate inside its always-valid
confidence sequence look by look (the headline chart), the table of comparisons, and the controls.

The chart is a HoloViews overlay over a ``Buffer`` per compared variant: a new look is one row sent to
the buffer (the feed pushes it; the page never asks the control plane), a page that opens draws every
look the feed holds.
"""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import quote

import holoviews as hv  # type: ignore[import-untyped]
import holoviews.plotting.bokeh  # type: ignore[import-untyped]  # registers the Bokeh options
import pandas as pd
import panel as pn
import param
from bokeh.models import DatetimeTickFormatter, HoverTool
from panel.viewable import Viewer

from workbench.records.experiments import ExperimentRecord, ExperimentState
from workbench.ui.feed import LOOKS_KEEP
from workbench.ui.models.experiment import (
    ACTIONS,
    CHART_COLUMNS,
    STATE_KIND,
    VERDICT_KIND,
    VERDICT_LABEL,
    ComparisonRow,
    ExperimentModel,
    ExperimentRow,
    action_states,
    chart_scale,
    comparison_rows,
    confidence_label,
    sample_ratio_check,
)
from workbench.ui.views.shell import esc, stylesheets, version_color
from workbench.ui.views.widgets import badge, stat, when

LABELS = {
    "pause": "Pause",
    "resume": "Resume",
    "conclude": "Conclude",
    "promote_canary": "Promote (canary)",
    "promote_blue_green": "Promote (blue-green)",
}
BAND = "#93c5fd"
ESTIMATE = "#1d4ed8"
MARGIN = "#059669"


def look_frame(columns: dict[str, list[float]]) -> pd.DataFrame:
    """Chart rows as the buffer holds them: every column, in one order, as floats even when empty."""
    frame = pd.DataFrame({name: columns.get(name, []) for name in CHART_COLUMNS})
    return frame.astype(dict.fromkeys(CHART_COLUMNS, float))


def _no_logo(plot: Any, _element: Any) -> None:
    plot.state.toolbar.logo = None


def comparison_element(data: pd.DataFrame, *, title: str, ylabel: str, margin: float | None = None) -> Any:
    """The estimate (line and a dot per look) inside its confidence sequence (band), with the zero line
    and, for a primary metric with one, the smallest effect worth shipping (dashed)."""
    bounded = data.dropna(subset=["lower", "upper"])
    hover = HoverTool(
        tooltips=[
            ("look", "@time{%H:%M:%S}"),
            ("units", "@units{0,0}"),
            ("difference", "@estimate{+0.000}"),
            ("interval", "@lower{+0.000} to @upper{+0.000}"),
            ("n (control / variant)", "@n_control{0,0} / @n_variant{0,0}"),
        ],
        formatters={"@time": "datetime"},
    )
    vdims = ["estimate", "units", "lower", "upper", "n_control", "n_variant"]
    band = hv.Area(bounded, kdims=["time"], vdims=["lower", "upper"], label="confidence sequence").opts(
        backend="bokeh", color=BAND, alpha=0.45, line_alpha=0
    )
    line = hv.Curve(data, kdims=["time"], vdims=vdims, label="estimate").opts(
        backend="bokeh", color=ESTIMATE, line_width=2
    )
    dots = hv.Scatter(data, kdims=["time"], vdims=vdims).opts(
        backend="bokeh", color=ESTIMATE, size=7, tools=[hover], line_color="white"
    )
    overlay = band * line * dots * hv.HLine(0.0).opts(backend="bokeh", color="#334155", line_width=1.5)
    if margin:
        overlay = overlay * hv.HLine(margin).opts(
            backend="bokeh", color=MARGIN, line_dash="dashed", line_width=1.5
        )
    return overlay.opts(
        backend="bokeh",
        title=title,
        xlabel="look (UTC)",
        ylabel=ylabel,
        responsive=True,
        height=300,
        show_grid=True,
        padding=(0.03, 0.05),  # the first and the latest look's dots whole, not cut by the frame
        legend_position="top_right",  # the latest looks, on the right, have the narrowest band
        fontsize={"title": "13px", "labels": "12px", "legend": "11px"},
        xformatter=DatetimeTickFormatter(
            milliseconds="%H:%M:%S.%3N", seconds="%H:%M:%S", minsec="%H:%M:%S", minutes="%H:%M", hours="%H:%M"
        ),
        default_tools=["xpan", "xwheel_zoom", "reset", "save"],
        toolbar="right",
        hooks=[_no_logo],
    )


def experiment_list(rows: list[ExperimentRow], current: str) -> str:
    if not rows:
        return ""
    current_row = ' style="background:#eff6ff"'
    body = "".join(
        f'<tr data-experiment="{esc(r.name)}"{current_row if r.name == current else ""}>'
        f'<td><a href="./experiments?name={quote(r.name)}">{esc(r.name)}</a></td>'
        f'<td><a href="./endpoint?name={quote(r.endpoint)}">{esc(r.endpoint)}</a></td>'
        f"<td>{badge(r.state, STATE_KIND.get(r.state, ''))}</td><td>{esc(r.variants)}</td>"
        f"<td>{_verdict(r.verdict)}{' ' + esc(r.winner) if r.winner else ''}</td><td>{r.units:,}</td></tr>"
        for r in rows
    )
    return (
        '<table class="wb-table" data-testid="experiments"><tr><th>experiment</th><th>endpoint</th>'
        f"<th>state</th><th>variants (weights)</th><th>latest verdict</th><th>units</th></tr>{body}</table>"
    )


def _verdict(verdict: str | None, testid: str = "") -> str:
    if verdict is None:
        return '<span class="wb-muted">no look yet</span>'
    attribute = f' data-testid="{testid}"' if testid else ""
    label = VERDICT_LABEL.get(verdict, verdict)
    return f'<span class="wb-badge {VERDICT_KIND.get(verdict, "")}"{attribute}>{esc(label)}</span>'


def _comparison_row(row: ComparisonRow) -> str:
    established = {"better": badge("better", "wb-ok"), "worse": badge("worse", "wb-bad")}.get(
        row.direction or "", '<span class="wb-muted">not established</span>'
    )
    role = badge("primary", "wb-info") if row.role == "primary" else badge("guardrail")
    return (
        f"<tr><td>{role} {esc(row.metric)} <span class='wb-muted'>({esc(row.better)} is better)</span></td>"
        f"<td>{esc(row.variant)}</td><td>{esc(row.control_mean)} <span class='wb-muted'>n={row.n_control:,}"
        f"</span></td><td>{esc(row.variant_mean)} <span class='wb-muted'>n={row.n_variant:,}</span></td>"
        f"<td><b>{esc(row.difference)}</b> <span class='wb-muted'>{esc(row.relative)}</span></td>"
        f"<td>{esc(row.interval)}</td><td>{esc(row.adjusted_p)}</td><td>{established}</td></tr>"
    )


class ExperimentView(Viewer):
    model = param.ClassSelector(class_=ExperimentModel)

    @property
    def _model_(self) -> ExperimentModel:
        """The model, typed: param declares it optional, the view is never built without it."""
        assert self.model is not None
        return self.model

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        model = self._model_
        css = stylesheets()
        self._error = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        self._list = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        self._summary = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        self._hint = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        self._chart_note = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        self._table = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        self._charts = pn.Column(sizing_mode="stretch_width")
        self._buffers: dict[str, hv.streams.Buffer] = {}
        self._buttons = {
            a: pn.widgets.Button(label=LABELS[a], width=165 if "promote" in a else 100) for a in ACTIONS
        }
        self._buttons["conclude"].color = "danger"
        for action, button in self._buttons.items():
            button.on_click(partial(self._on_action, action))
        model.param.watch(self._render_error, ["error"])
        model.param.watch(self._render_list, ["rows", "experiment"])
        model.param.watch(self._render, ["record", "endpoint_record", "decision", "looks", "last_look"])
        model.param.watch(self._on_series, ["series"])
        model.param.watch(self._on_delta, ["delta"])
        model.desk.param.watch(self._sync_buttons, ["busy", "pending"])
        self._render_error()
        self._render_list()
        self._render()
        self._on_series()

    # ------------------------------------------------------------------ text
    def _render_error(self, *_: Any) -> None:
        error = self._model_.error
        self._error.object = (
            f'<div class="wb-outcome-bad">Cannot read the control plane: {esc(error)}</div>' if error else ""
        )

    def _render_list(self, *_: Any) -> None:
        model = self._model_
        table = experiment_list(model.rows, model.experiment)
        self._list.object = (
            f'<h3 class="wb-section">Experiments</h3>{table}'
            if table
            else '<div class="wb-card" data-testid="experiments">No experiments yet: define one with '
            "<code>Client.create_experiment</code> (or <code>POST /api/v1/experiments</code>), or run "
            "<code>workbench demo-experiment</code>.</div>"
        )

    def _render(self, *_: Any) -> None:
        model = self._model_
        record = model.record
        if record is None:
            self._summary.object = (
                f'<div class="wb-outcome-bad" data-testid="experiment-summary">No experiment named '
                f"{esc(model.experiment)} (yet?).</div>"
                if model.experiment
                else ""
            )
            self._table.object = self._hint.object = ""
            self._render_chart_note()
            self._sync_buttons()
            return
        self._summary.object = self._summary_html(record, model.decision)
        rows = comparison_rows(record.spec, model.decision)
        self._table.object = (
            f'<h3 class="wb-section">Comparisons against {esc(record.spec.control.name)} at the latest look</h3>'
            f'<div class="wb-muted">interval: the {esc(confidence_label(record.spec))}'
            f"{' (valid at every look)' if record.spec.method == 'sequential' else ''}; p adjusted by "
            f"{esc(record.spec.correction)} per family of comparisons</div>"
            '<table class="wb-table" data-testid="comparisons"><tr><th>metric</th><th>variant</th>'
            "<th>control mean</th><th>variant mean</th><th>difference</th><th>interval</th>"
            f"<th>adjusted p</th><th>established</th></tr>"
            f"{''.join(_comparison_row(r) for r in rows) or self._no_comparison()}</table>"
        )
        self._render_chart_note()
        self._sync_buttons()

    @staticmethod
    def _no_comparison() -> str:
        return (
            '<tr><td colspan=8 class="wb-muted">no comparison yet: each variant needs two units with an '
            "outcome</td></tr>"
        )

    def _summary_html(self, record: ExperimentRecord, decision: dict[str, Any]) -> str:
        model = self._model_
        spec = record.spec
        check = sample_ratio_check(record, decision)
        split = "".join(
            f'<div style="width:{v.weight:g}%;background:{version_color(v.version)}" '
            f'title="{esc(v.name)}: {esc(v.model)} v{v.version} {v.weight:g}%">'
            f"{esc(v.name)} v{v.version} {v.weight:g}%</div>"
            for v in spec.variants
        )
        units = "".join(
            stat(
                f"{u.units:,}",
                f"{u.variant} (v{u.version}): "
                + (f"{u.share:.1%} of units" if u.share is not None else "no units")
                + f", planned {u.planned:.0%}",
                f"units-{u.variant}",
            )
            for u in check.units
        )
        total = sum(u.units for u in check.units)
        looks = stat(f"{model.looks:,}", "looks kept", "looks") + stat(
            when(model.last_look)[11:] if model.last_look else "-", "latest look (UTC)", "last-look"
        )
        ratio = badge("sample ratio mismatch", "wb-bad") if check.alarm else badge("sample ratio ok", "wb-ok")
        if not decision or total == 0:
            ratio = badge("sample ratio not checked", "")
        verdict = decision.get("verdict")
        winner = decision.get("winner")
        started = f"started {when(record.started_at)} UTC" if record.started_at else "not started"
        ended = f", ended {when(record.ended_at)} UTC" if record.ended_at else ""
        primary = spec.primary
        metrics = f"primary <b>{esc(primary.name)}</b> ({esc(primary.kind)}, {esc(primary.better)} is better)"
        if spec.guardrails:
            metrics += " · guardrails " + ", ".join(esc(g.name) for g in spec.guardrails)
        return (
            f'<div class="wb-card" data-testid="experiment-summary"><h3>{esc(record.name)} '
            f'<span class="wb-muted">on <a href="./endpoint?name={quote(record.endpoint)}">{esc(record.endpoint)}'
            f"</a></span> "
            f'<span class="wb-badge {STATE_KIND.get(record.state.value, "")}" data-testid="state">'
            f"{esc(record.state.value)}</span></h3>"
            f'<div class="wb-split">{split}</div>'
            f"<div>{metrics} · unit: {esc(spec.unit)} · {esc(spec.method)}, alpha {spec.alpha:g}, "
            f"min {spec.min_units:,} units per variant{' · auto-stop' if spec.auto_stop else ''}</div>"
            f'<div class="wb-stats">{stat(f"{total:,}", "units assigned", "units-total")}{units}{looks}</div>'
            f'<div style="margin-top:6px" data-testid="srm">{ratio} {esc(check.text)}</div>'
            f'<div class="wb-muted">{esc(started)}{esc(ended)} by {esc(record.actor)} · '
            f"revision {record.revision}</div>"
            "</div>"
            f'<div class="wb-card" data-testid="decision"><h3>Decision: '
            f"{_verdict(str(verdict) if verdict else None, 'verdict')}"
            f"{' <b data-testid=winner>' + esc(winner) + '</b>' if winner else ''}</h3>"
            f"<div>{esc(decision.get('reason') or 'no look yet: the first comes once the experiment runs')}</div>"
            "</div>"
        )

    # ----------------------------------------------------------------- charts
    def _chart(self, variant: str, columns: dict[str, list[float]]) -> None:
        record = self._model_.record
        assert record is not None
        spec = record.spec
        buffer = hv.streams.Buffer(look_frame(columns), length=LOOKS_KEEP, index=False, following=True)
        self._buffers[variant] = buffer
        unit = " (percentage points)" if chart_scale(spec) != 1.0 else ""
        margin = spec.primary.margin * chart_scale(spec)
        title = (
            f"{spec.primary.name}: {variant} vs {spec.control.name}, look by look, inside its "
            f"{confidence_label(spec)}"
        )
        signed = margin if spec.primary.better == "higher" else -margin
        element = hv.DynamicMap(
            lambda data: comparison_element(data, title=title, ylabel=f"difference{unit}", margin=signed),
            streams=[buffer],
        )
        self._charts.append(
            pn.pane.HoloViews(element, backend="bokeh", sizing_mode="stretch_width", min_height=300)
        )

    def _on_series(self, *_: Any) -> None:
        self._buffers = {}
        self._charts.clear()
        for variant, columns in self._model_.series.items():
            if columns.get("time"):  # no empty frame before the first look
                self._chart(variant, columns)
        self._render_chart_note()

    def _on_delta(self, *_: Any) -> None:
        for variant, columns in self._model_.delta.items():
            buffer = self._buffers.get(variant)
            if buffer is None:
                if columns.get("time"):
                    self._chart(variant, columns)
            elif columns.get("time"):
                buffer.send(look_frame(columns))
        self._render_chart_note()

    def _render_chart_note(self) -> None:
        model = self._model_
        if model.record is None:
            self._chart_note.object = ""
        elif not model.looks and model.record.state == ExperimentState.CONCLUDED:
            self._chart_note.object = (
                '<div class="wb-card wb-muted" data-testid="chart-note">No looks held for this experiment: the '
                "dashboards keep those of the running and paused experiments and of the five newest.</div>"
            )
        elif not model.looks:
            self._chart_note.object = (
                '<div class="wb-card wb-muted" data-testid="chart-note">No looks yet: the chart draws each '
                "primary comparison's estimate and its confidence sequence from the first look on.</div>"
            )
        else:
            self._chart_note.object = (
                '<div class="wb-muted" data-testid="chart-note">The band is where the difference can be at '
                "this confidence whenever one looks; the experiment is decided once it leaves zero (solid "
                "line)"
                + (", dashed: the smallest effect worth shipping" if model.record.spec.primary.margin else "")
                + ".</div>"
            )

    # ---------------------------------------------------------------- actions
    def _on_action(self, action: str, _event: Any) -> None:
        self._model_.propose(action)

    def _sync_buttons(self, *_: Any) -> None:
        model = self._model_
        states = action_states(model.record, model.decision)
        blocked = model.desk.busy or model.desk.pending is not None
        for action, button in self._buttons.items():
            button.disabled = blocked or not states[action].enabled
        # Green only for a winner to roll out: without one, a promote is a question to the control plane.
        for action in ("promote_canary", "promote_blue_green"):
            self._buttons[action].color = "success" if model.decision.get("winner") else "default"
        record = model.record
        if record is None:
            self._hint.object = ""
            return
        promote = states["promote_canary"]
        self._hint.object = (
            f'<div class="wb-muted" data-testid="promote-hint">Promote concludes the experiment and rolls '
            f"its winner out: {esc(promote.why)}"
            + (
                " (the control plane looks again and refuses if it still finds none)."
                if promote.enabled and not model.decision.get("winner")
                else "."
            )
            + "</div>"
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            self._error,
            self._list,
            self._summary,
            pn.Row(*self._buttons.values()),
            self._hint,
            self._charts,
            self._chart_note,
            self._table,
            sizing_mode="stretch_width",
        )
