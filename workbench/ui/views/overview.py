"""Overview page: a card per endpoint (click through to its page), recent runbook runs."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import panel as pn
import param
from panel.viewable import Viewer

from workbench.ui.models.overview import EndpointSummary, OverviewModel
from workbench.ui.views.shell import esc, stylesheets
from workbench.ui.views.widgets import badge, number, split_bar, stat, when


def endpoint_card(summary: EndpointSummary) -> str:
    name = quote(summary.name)
    health_kind = "wb-ok" if summary.replicas and summary.replicas_ready == summary.replicas else "wb-bad"
    health = f"{summary.replicas_ready}/{summary.replicas} replicas ready"
    devices = ", ".join(summary.devices) or "-"
    badges = [badge(health, health_kind), badge(f"device {devices}"), badge(f"revision {summary.revision}")]
    if summary.restarts:
        badges.append(badge(f"{summary.restarts} restarts", "wb-warn"))
    for rule in summary.firing:
        badges.append(badge(f"alert firing: {rule}", "wb-bad"))
    rollout = ""
    if summary.rollout:
        rollout = (
            f'<div>{badge("rollout", "wb-info")}<a href="./rollout?id={quote(summary.rollout_id or "")}" '
            f'data-testid="rollout-link">{esc(summary.rollout)}</a></div>'
        )
    stats = "".join(
        [
            stat(f"{summary.requests_total:,}", "requests (total)", "requests-total"),
            stat(number(summary.requests_per_s), "req/s (last 10 s)", "rps"),
            stat(number(summary.p95_ms, " ms", 2), "p95 latency (last 10 s)", "p95"),
            stat(number(None if summary.error_rate is None else summary.error_rate * 100, " %", 2), "errors"),
        ]
    )
    return (
        f'<div class="wb-card" data-testid="endpoint-card" data-endpoint="{esc(summary.name)}">'
        f'<h3><a href="./endpoint?name={name}">{esc(summary.name)}</a></h3>'
        f"{split_bar(summary.routes)}<div>{''.join(badges)}</div>{rollout}"
        f'<div class="wb-stats">{stats}</div></div>'
    )


class OverviewView(Viewer):
    model = param.ClassSelector(class_=OverviewModel)

    @property
    def _model_(self) -> OverviewModel:
        """The model, typed: param declares it optional, the view is never built without it."""
        assert self.model is not None
        return self.model

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._cards = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=stylesheets())
        self._runs = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=stylesheets())
        self._error = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=stylesheets())
        self._model_.param.watch(self._render_cards, ["endpoints"])
        self._model_.param.watch(self._render_runs, ["runs"])
        self._model_.param.watch(self._render_error, ["error"])
        self._render_cards()
        self._render_runs()
        self._render_error()

    def _render_error(self, *_: Any) -> None:
        self._error.object = (
            f'<div class="wb-outcome-bad">Cannot read the control plane: {esc(self._model_.error)}</div>'
            if self._model_.error
            else ""
        )

    def _render_cards(self, *_: Any) -> None:
        cards = "".join(endpoint_card(s) for s in self._model_.endpoints)
        self._cards.object = cards or '<div class="wb-card">No endpoints yet: deploy a model.</div>'

    def _render_runs(self, *_: Any) -> None:
        rows = "".join(
            f'<tr><td><a href="./operations?run={quote(run.id)}">{esc(run.runbook)}</a></td>'
            f"<td>{badge(run.status.value, _status_kind(run.status.value))}</td>"
            f"<td>{esc(run.trigger.kind.value)}</td><td>{esc(run.endpoint or '-')}</td>"
            f"<td>{when(run.created_at)}</td></tr>"
            for run in self._model_.runs
        )
        self._runs.object = (
            '<h3 style="font-family:system-ui">Recent runbook runs</h3><table class="wb-table">'
            "<tr><th>runbook</th><th>status</th><th>trigger</th><th>endpoint</th><th>created</th></tr>"
            f"{rows or '<tr><td colspan=5>none yet</td></tr>'}</table>"
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self._error, self._cards, self._runs, sizing_mode="stretch_width")


def _status_kind(status: str) -> str:
    return {"succeeded": "wb-ok", "failed": "wb-bad", "running": "wb-info", "timed_out": "wb-bad"}.get(
        status, ""
    )
