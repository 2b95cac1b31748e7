"""Endpoint page: traffic per version over time with revision markers, replicas, history, actions."""

from __future__ import annotations

import time
from functools import partial
from typing import Any
from urllib.parse import quote

import panel as pn
import param
from panel.viewable import Viewer

from workbench.ui.models.endpoint import STRATEGIES, EndpointModel, lookup_summary
from workbench.ui.plans import split_label
from workbench.ui.views.charts import CAUSE_COLORS, VersionCharts, revision_rows, revision_strip
from workbench.ui.views.progressive import first_then_rest
from workbench.ui.views.shell import esc, stylesheets
from workbench.ui.views.widgets import badge, split_bar, when

_VARIANT_BADGES = {"parent": "wb-info", "registered": "wb-ok", "refused": "wb-warn", "failed": "wb-bad"}


def _number(value: Any) -> str:
    return "-" if value is None else f"{float(value):g}"


def _signed(value: Any) -> str:
    return "-" if value is None else f"{float(value):+.2f}"


def _speedup(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}&times;"


class EndpointView(Viewer):
    model = param.ClassSelector(class_=EndpointModel)

    @property
    def _model_(self) -> EndpointModel:
        """The model, typed: param declares it optional, the view is never built without it."""
        assert self.model is not None
        return self.model

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        model = self._model_
        self.charts = VersionCharts(rollover=model.window_s)
        self._strip, self._strip_source = revision_strip(self.charts.latency.x_range, self.charts.axis)
        css = stylesheets()
        self._summary = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        self._no_traffic = pn.pane.HTML(
            '<div class="wb-muted" data-testid="no-traffic">No traffic in the last hour yet: the charts fill '
            "as requests are served.</div>",
            stylesheets=css,
        )
        self._replicas = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        self._history = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        self._variants = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        self._select = pn.widgets.Select(
            label="Endpoint", options=self._endpoint_names(), value=model.endpoint or None, width=220
        )
        self._select.param.watch(lambda e: setattr(model, "endpoint", e.new or ""), "value")
        self._actions = self._build_actions()
        model.param.watch(self._on_points, ["points"])
        model.param.watch(self._on_delta, ["delta"])
        # Each part re-drawn only when what it shows changed: an active rollout re-reads the state every
        # second, and re-drawing the history and the markers each time would cost every open page.
        self._shown_experiment: tuple[str, str] | None = None
        self._shown_monitor: str | None = None
        model.param.watch(self._render_summary, ["record", "rollout"])
        model.param.watch(self._on_snapshot, ["snapshot"])
        model.param.watch(self._render_replicas, ["replicas"])
        model.param.watch(self._render_history, ["revisions"])
        model.param.watch(self._render_variants, ["variants"])
        model.param.watch(self._sync_actions, ["models", "rollout", "record", "revisions"])
        model.param.watch(self._sync_names, ["endpoint_names"])
        self._on_points()
        self._render_summary()
        self._render_replicas()
        self._render_history()
        self._render_variants()
        self._sync_actions()
        self._sync_names()

    # ------------------------------------------------------------------ data
    def _endpoint_names(self) -> list[str]:
        return list(self._model_.endpoint_names)

    def _sync_names(self, *_: Any) -> None:
        names = self._endpoint_names()
        if self._select.options != names:
            self._select.options = names

    def _on_points(self, *_: Any) -> None:
        self.charts.reset(self._model_.points)
        self._no_traffic.visible = not self._model_.points.get("all", {}).get("ts")

    def _on_delta(self, *_: Any) -> None:
        self.charts.stream(self._model_.delta)
        self._no_traffic.visible = False

    def _render_summary(self, *_: Any) -> None:
        model = self._model_
        record = model.record
        self._shown_experiment = self._experiment()
        self._shown_monitor = self._monitor()
        if record is None:
            self._summary.object = (
                f'<div class="wb-outcome-bad">No endpoint named {esc(model.endpoint)!s} (deleted?).</div>'
                if model.endpoint
                else '<div class="wb-card">No endpoints yet.</div>'
            )
        else:
            routes = tuple((r.model, r.version, r.weight) for r in record.spec.routes if r.weight > 0)
            rollout = ""
            if model.rollout is not None:
                r = model.rollout
                rollout = (
                    f"<div>{badge('rollout ' + r.phase.value, 'wb-info')} {esc(r.strategy.replace('_', '-'))} of "
                    f'{esc(r.candidate_model)} v{r.candidate_version} · <a href="./rollout?id={esc(r.id)}" '
                    f'data-testid="rollout-link">open the rollout</a></div>'
                )
            experiment = ""
            if (active := self._experiment()) is not None:
                experiment = (
                    f"<div>{badge('experiment ' + active[1], 'wb-info')} {esc(active[0])} · "
                    f'<a href="./experiments?name={quote(active[0])}" data-testid="experiment-link">'
                    "open the experiment</a></div>"
                )
            shadows = ", ".join(f"{s.model} v{s.version}" for s in record.spec.shadows)
            lookup = ""
            if record.spec.features is not None:
                watched = ""
                if (monitor := self._monitor()) is not None:
                    watched = (
                        f' · <a href="./drift?monitor={quote(monitor)}" data-testid="feature-store-link">'
                        "feature age and lookup time</a>"
                    )
                lookup = (
                    f'<div data-testid="feature-lookup">{badge("feature lookup", "wb-info")} '
                    f"{esc(lookup_summary(record.spec.features))}{watched}</div>"
                )
            self._summary.object = (
                f'<div class="wb-card" data-testid="endpoint-summary"><h3>{esc(record.spec.name)} '
                f'<span class="wb-muted">revision {record.revision}</span></h3>'
                f"{split_bar(routes)}<div>{esc(split_label(routes))}"
                f"{' · shadow: ' + esc(shadows) if shadows else ''}</div>{lookup}{rollout}{experiment}</div>"
            )

    def _experiment(self) -> tuple[str, str] | None:
        """The endpoint's running or paused experiment, as (name, state)."""
        model = self._model_
        active = model.snapshot.active_experiment(model.endpoint)
        return (active.name, active.state.value) if active is not None else None

    def _monitor(self) -> str | None:
        """The first monitor watching the endpoint: its drift page draws the feature store's series."""
        model = self._model_
        return next((m.spec.name for m in model.snapshot.monitors if m.spec.endpoint == model.endpoint), None)

    def _on_snapshot(self, *_: Any) -> None:
        """The experiment link follows the experiment (a paused one concluded leaves the routes alone), the
        feature-store link the endpoint's monitor."""
        if (self._experiment(), self._monitor()) != (self._shown_experiment, self._shown_monitor):
            self._render_summary()

    def _render_replicas(self, *_: Any) -> None:
        model = self._model_
        rows = "".join(
            f"<tr><td>{esc(r.get('id'))}</td><td>v{esc(r.get('version'))}</td><td>"
            f"{badge(str(r.get('state')), 'wb-ok' if r.get('state') == 'ready' else 'wb-warn')}</td>"
            f"<td>{esc(r.get('device'))}</td><td>{esc(r.get('pid'))}</td><td>{esc(r.get('restarts'))}</td></tr>"
            for r in model.replicas
        )
        self._replicas.object = (
            '<h3 class="wb-section">Replicas</h3>'
            '<table class="wb-table" data-testid="replicas"><tr><th>replica</th><th>version</th><th>state</th>'
            f"<th>device</th><th>pid</th><th>restarts</th></tr>{rows or '<tr><td colspan=6>none</td></tr>'}</table>"
        )

    def _render_history(self, *_: Any) -> None:
        model = self._model_
        window_start = time.time() - model.window_s
        shown = [r for r in model.revisions if r.at.timestamp() >= window_start]
        self._strip_source.data = revision_rows(shown, split_label)
        self.charts.mark([(r.at.timestamp(), CAUSE_COLORS.get(r.cause.value, "#64748b")) for r in shown])
        history = "".join(
            f"<tr><td>{r.revision}</td><td>{when(r.at)}</td><td>{esc(r.cause.value.replace('_', ' '))}</td>"
            f"<td>{esc(split_label(r.routes))}</td><td>{esc(r.actor)}</td><td>{esc(r.reason or '')}</td></tr>"
            for r in model.revisions[:30]
        )
        self._history.object = (
            '<h3 class="wb-section">Revision history</h3>'
            '<table class="wb-table" data-testid="history"><tr><th>rev</th><th>at (UTC)</th><th>cause</th>'
            f"<th>routes</th><th>by</th><th>why</th></tr>{history}</table>"
        )

    def _render_variants(self, *_: Any) -> None:
        """Each served version beside its optimised variants: measured in one run, registered or refused."""
        tables = self._model_.variants
        if not tables:
            self._variants.object = ""
            return
        parts = ['<h3 class="wb-section">Optimised variants</h3>']
        for parent, rows in tables.items():
            body = "".join(
                f'<tr data-status="{esc(row["status"])}"><td>{esc(row["model"])}</td><td>{esc(row["method"])}</td>'
                f"<td>{badge(str(row['status']), _VARIANT_BADGES.get(str(row['status']), 'wb-muted'))}</td>"
                f"<td>{esc(row.get('quality') or '')}</td><td>{_signed(row.get('delta'))}</td>"
                f"<td>{_number(row.get('p50_ms_batch1'))}</td><td>{_number(row.get('p50_ms_serving'))}</td>"
                f"<td>{_speedup(row.get('speedup'))}</td><td>{_number(row.get('size_kb'))}</td>"
                f"<td>{_number(row.get('rss_mb'))}</td><td>{esc(row.get('note') or '')}</td></tr>"
                for row in rows
            )
            parts.append(
                f'<table class="wb-table" data-testid="variants" data-parent="{esc(parent)}"><tr><th>model</th>'
                "<th>method</th><th>status</th><th>quality</th><th>&Delta;</th><th>p50 ms @1</th>"
                "<th>p50 ms @serving</th><th>speed-up</th><th>size KB</th><th>RSS MB</th><th>note</th></tr>"
                f"{body}</table>"
            )
        parts.append(
            '<div class="wb-muted">A registered variant goes out like any version: choose it below and start '
            "a canary. <code>workbench optimize</code> asks for more.</div>"
        )
        self._variants.object = "".join(parts)

    # --------------------------------------------------------------- actions
    def _build_actions(self) -> pn.viewable.Viewable:
        model = self._model_
        self._rollback = pn.widgets.Button(label="Roll back", color="danger", width=120)
        self._rollback.on_click(self._on_rollback)
        self._revision = pn.widgets.Select(label="…or to revision", options={}, width=260)
        self._rollback_to = pn.widgets.Button(label="Roll back to it", width=130)
        self._rollback_to.on_click(self._on_rollback_to)
        self._model_select = pn.widgets.Select(label="Model", options=list(model.models), width=200)
        self._version = pn.widgets.Select(label="Version", options={}, width=160)
        self._model_select.param.watch(self._fill_versions, "value")
        self._strategy = pn.widgets.Select(
            label="Strategy", options=list(STRATEGIES), value="canary", width=130
        )
        self._steps = pn.widgets.TextInput(label="Canary steps (%)", value="5, 25, 50", width=150)
        self._deploy = pn.widgets.Button(label="Deploy now", color="primary", width=120)
        self._deploy.on_click(self._on_deploy)
        self._start = pn.widgets.Button(label="Start rollout", color="primary", width=130)
        self._start.on_click(self._on_start)
        self._rollout_buttons = {
            action: pn.widgets.Button(label=action.capitalize(), width=95)
            for action in ("pause", "resume", "promote", "abort")
        }
        for action, button in self._rollout_buttons.items():
            button.on_click(partial(self._on_rollout_action, action))
        if model.models:
            self._model_select.value = model.models[0]
            self._fill_versions()
        return pn.Column(
            pn.pane.HTML('<h3 class="wb-section">Act on this endpoint</h3>', stylesheets=stylesheets()),
            pn.Row(self._rollback, self._revision, self._rollback_to),
            pn.Row(self._model_select, self._version, self._strategy, self._steps),
            pn.Row(self._deploy, self._start),
            pn.Row(*self._rollout_buttons.values()),
            sizing_mode="stretch_width",
        )

    def _on_rollback(self, _event: Any) -> None:
        self._model_.propose_rollback()

    def _on_rollback_to(self, _event: Any) -> None:
        if self._revision.value:
            self._model_.propose_rollback(int(self._revision.value))

    def _chosen(self) -> tuple[str, int] | None:
        if not self._model_select.value or not self._version.value:
            self._model_.desk.refuse("choose a model and a version first")
            return None
        return str(self._model_select.value), int(self._version.value)

    def _on_deploy(self, _event: Any) -> None:
        if chosen := self._chosen():
            self._model_.propose_deploy(*chosen)

    def _on_start(self, _event: Any) -> None:
        if chosen := self._chosen():
            self._model_.propose_rollout(*chosen, str(self._strategy.value), str(self._steps.value or ""))

    def _on_rollout_action(self, action: str, _event: Any) -> None:
        self._model_.propose_rollout_action(action)

    def _fill_versions(self, *_: Any) -> None:
        if not self._model_select.value:
            return
        try:
            options = {label: str(v) for label, v in self._model_.versions_of(self._model_select.value)}
            self._version.options = options
            if options and self._version.value not in options.values():
                self._version.value = next(iter(options.values()))  # the newest version
        except Exception as exc:  # the page says so; the form stays usable for another model
            self._model_.desk.refuse(f"cannot list versions of {self._model_select.value}: {exc}")

    def _sync_actions(self, *_: Any) -> None:
        model = self._model_
        if list(self._model_select.options) != list(model.models):
            self._model_select.options = list(model.models)
        choices = {
            f"{r.revision}: {split_label(r.routes)} ({r.cause.value.replace('_', ' ')})": str(r.revision)
            for r in model.revisions[1:30]
        }
        self._revision.options = choices
        if choices and self._revision.value not in choices.values():
            self._revision.value = next(iter(choices.values()))
        self._rollback_to.disabled = not choices
        rollout = model.rollout
        phase = rollout.phase.value if rollout is not None else None
        self._rollout_buttons["pause"].disabled = phase not in ("progressing", "pending")
        self._rollout_buttons["resume"].disabled = phase not in ("paused", "inconclusive")
        for action in ("promote", "abort"):
            self._rollout_buttons[action].disabled = rollout is None
        self._start.disabled = rollout is not None or model.record is None
        self._rollback.disabled = model.record is None

    def __panel__(self) -> pn.viewable.Viewable:
        def chart(fig: Any) -> pn.pane.Bokeh:
            return pn.pane.Bokeh(fig, sizing_mode="stretch_width")

        def below_the_first_screen() -> list[Any]:
            return [
                chart(self.charts.errors),
                chart(self.charts.batch),
                self._actions,
                self._variants,
                self._replicas,
                self._history,
            ]

        # The first screen: which endpoint, its split and rollout, the revision strip, latency and
        # requests/s. Error rate, batch size, the actions and the tables follow once it is drawn.
        return first_then_rest(
            [
                pn.Row(self._select),
                self._summary,
                self._no_traffic,
                chart(self._strip),
                chart(self.charts.latency),
                chart(self.charts.rps),
            ],
            below_the_first_screen,
            sizing_mode="stretch_width",
        )
