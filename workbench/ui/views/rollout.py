"""Rollout page: step and weights, each check's estimate and anytime-valid bounds per tick against its
tolerance with the decision, the transitions and the evidence of a rollback; the controls."""

from __future__ import annotations

from functools import partial
from typing import Any

import panel as pn
import param
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.models.annotations import Span
from panel.viewable import Viewer

from workbench.ui.feed import is_active
from workbench.ui.models.rollout import CHECK_COLUMNS, RolloutModel
from workbench.ui.plans import split_label
from workbench.ui.views.charts import time_figure
from workbench.ui.views.shell import esc, stylesheets
from workbench.ui.views.widgets import badge, split_bar, when

PHASE_KIND = {
    "succeeded": "wb-ok",
    "rolled_back": "wb-bad",
    "failed": "wb-bad",
    "error": "wb-bad",
    "paused": "wb-warn",
}
ACTIONS = ("pause", "resume", "promote", "abort", "rollback")
MAX_TICKS = 5000


class CheckCharts:
    """A figure per check: the confidence band, the estimate, the tolerance, a dot per tick by verdict."""

    def __init__(self) -> None:
        self.sources: dict[str, ColumnDataSource] = {}
        self.figures: dict[str, Any] = {}
        self.column = pn.Column(sizing_mode="stretch_width")

    def _figure(self, name: str, threshold: float) -> ColumnDataSource:
        source = ColumnDataSource(
            {k: [] for k in CHECK_COLUMNS},
            name=f"check-{name}",
        )
        fig = time_figure(
            f"{name}: estimate and anytime-valid bounds per tick (dashed: tolerance)",
            "difference",
            from_zero=False,
        )
        fig.varea(
            "x", "low", "high", source=source, fill_color="#93c5fd", fill_alpha=0.35, legend_label="bounds"
        )
        fig.line("x", "estimate", source=source, color="#1d4ed8", line_width=2, legend_label="estimate")
        dots = fig.scatter("x", "estimate", source=source, color="color", size=8, line_color="#1f2933")
        fig.add_layout(
            Span(
                location=threshold, dimension="width", line_color="#ef4444", line_dash="dashed", line_width=2
            )
        )
        fig.add_tools(
            HoverTool(
                renderers=[dots],
                tooltips=[
                    ("verdict", "@verdict"),
                    ("decision", "@decision"),
                    ("n (base / cand.)", "@n"),
                    ("why", "@reason"),
                ],
            )
        )
        fig.legend.location = "top_left"
        fig.legend.label_text_font_size = "11px"
        self.sources[name] = source
        self.figures[name] = fig
        self.column.append(pn.pane.Bokeh(fig, sizing_mode="stretch_width"))
        return source

    def reset(self, checks: dict[str, dict[str, list[Any]]]) -> None:
        for name, column in checks.items():
            source = self.sources.get(name) or self._figure(name, _threshold(column))
            source.data = dict(column)
        for name, source in self.sources.items():
            if name not in checks:
                source.data = {k: [] for k in source.data}

    def stream(self, checks: dict[str, dict[str, list[Any]]]) -> None:
        for name, column in checks.items():
            source = self.sources.get(name) or self._figure(name, _threshold(column))
            source.stream(dict(column), rollover=MAX_TICKS)


def _threshold(column: dict[str, list[Any]]) -> float:
    values = [v for v in column.get("threshold", []) if v == v]
    return float(values[-1]) if values else 0.0


class RolloutView(Viewer):
    model = param.ClassSelector(class_=RolloutModel)

    @property
    def _model_(self) -> RolloutModel:
        """The model, typed: param declares it optional, the view is never built without it."""
        assert self.model is not None
        return self.model

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        css = stylesheets()
        self._summary = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        self._latest = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        self._events = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        self.charts = CheckCharts()
        self._buttons = {
            a: pn.widgets.Button(label="Roll back" if a == "rollback" else a.capitalize(), width=100)
            for a in ACTIONS
        }
        self._buttons["rollback"].color = "danger"
        self._buttons["promote"].color = "success"
        for action, button in self._buttons.items():
            button.on_click(partial(self._on_action, action))
        self._model_.param.watch(self._render, ["record", "endpoint_record", "events", "latest"])
        self._model_.param.watch(lambda *_: self.charts.reset(self._model_.checks), ["checks"])
        self._model_.param.watch(lambda *_: self.charts.stream(self._model_.delta), ["delta"])
        self.charts.reset(self._model_.checks)
        self._render()

    def _on_action(self, action: str, _event: Any) -> None:
        self._model_.propose(action)

    def _render(self, *_: Any) -> None:
        record, endpoint = self._model_.record, self._model_.endpoint_record
        if record is None:
            self._summary.object = (
                '<div class="wb-card" data-testid="rollout-summary">No rollout to show yet.</div>'
            )
            self._latest.object = self._events.object = ""
            for button in self._buttons.values():
                button.disabled = True
            return
        steps = record.spec.get("steps") or []
        weights = [float(s.get("weight", 0)) for s in steps]
        progress = " → ".join(
            f"<b>{w:g}%</b>" if i == record.step_index and is_active(record) else f"{w:g}%"
            for i, w in enumerate(weights)
        )
        routes = (
            tuple((r.model, r.version, r.weight) for r in endpoint.spec.routes if r.weight > 0)
            if endpoint
            else ()
        )
        self._summary.object = (
            f'<div class="wb-card" data-testid="rollout-summary"><h3>{esc(record.strategy.replace("_", "-"))} of '
            f"{esc(record.candidate_model)} v{record.candidate_version} on "
            f'<a href="./endpoint?name={esc(record.endpoint)}">{esc(record.endpoint)}</a> '
            f"{badge(record.phase.value, PHASE_KIND.get(record.phase.value, 'wb-info'))}</h3>"
            f"<div>stable v{record.stable_version} · step {record.step_index + 1}/{max(len(steps), 1)}"
            f"{' · steps ' + progress if progress else ''}</div>"
            f"{split_bar(routes)}<div>now: {esc(split_label(routes))}</div>"
            f'<div class="wb-muted">started {when(record.created_at)} by {esc(record.actor)}; '
            f"id {esc(record.id)}</div></div>"
        )
        latest = self._model_.latest
        rows = "".join(
            f"<tr><td>{esc(m.get('name'))}</td><td>{badge(str(m.get('verdict')), _verdict_kind(m.get('verdict')))}</td>"
            f"<td>{_fmt(m.get('estimate'))}</td><td>[{_fmt(m.get('low'))}, {_fmt(m.get('high'))}]</td>"
            f"<td>{_fmt(m.get('threshold'))}</td><td>{'yes' if m.get('gating') else 'no'}</td>"
            f"<td>{esc(m.get('reason', ''))}</td></tr>"
            for m in latest.get("metrics", [])
        )
        decision = latest.get("decision") or latest.get("verdict") or ""
        title = "Evidence of the rollback" if record.phase.value == "rolled_back" else "Latest analysis"
        self._latest.object = (
            f'<h3 style="font-family:system-ui;margin:4px 0">{title}: {esc(decision)}</h3>'
            f'<div class="wb-muted">{esc(latest.get("reason", ""))}</div>'
            '<table class="wb-table" data-testid="checks"><tr><th>check</th><th>verdict</th><th>estimate</th>'
            f"<th>bounds</th><th>tolerance</th><th>gating</th><th>why</th></tr>{rows}</table>"
            if latest
            else '<div class="wb-muted" data-testid="checks">No analysis yet: the first tick comes once the '
            "first step has started.</div>"
        )
        events = "".join(
            f"<tr><td>{esc(str(e.get('at', ''))[:19].replace('T', ' '))}</td><td>{esc(e.get('kind'))}</td>"
            f"<td>{esc(e.get('phase'))}</td><td>{esc(e.get('step_index'))}</td><td>{esc(e.get('message'))}</td></tr>"
            for e in reversed(self._model_.events)
        )
        self._events.object = (
            '<table class="wb-table" data-testid="events"><tr><th>at (UTC)</th><th>kind</th><th>phase</th>'
            f"<th>step</th><th>what happened</th></tr>{events}</table>"
        )
        active, phase = is_active(record), record.phase.value
        self._buttons["pause"].disabled = not active or phase == "paused"
        self._buttons["resume"].disabled = phase not in ("paused", "inconclusive")
        self._buttons["promote"].disabled = not active
        self._buttons["abort"].disabled = not active
        self._buttons["rollback"].disabled = endpoint is None

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            self._summary,
            pn.Row(*self._buttons.values()),
            self._latest,
            self.charts.column,
            pn.pane.HTML('<h3 style="font-family:system-ui;margin:4px 0">Transitions</h3>'),
            self._events,
            sizing_mode="stretch_width",
        )


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4g}"


def _verdict_kind(verdict: Any) -> str:
    return {"pass": "wb-ok", "fail": "wb-bad"}.get(str(verdict), "")
