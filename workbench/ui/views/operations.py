# Panel's widget and pane constructors carry no type hints: calling them is not an error here.
# mypy: disable-error-code="no-untyped-call"
"""Runbooks & audit page: runs (click one for its details and notebook), a runbook's parameter form,
and the audit timeline with its filters. Layout only: the data and the actions are the model's."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pandas as pd
import panel as pn
import param
from panel.viewable import Viewer

from workbench.records.audit import AuditEvent
from workbench.records.runbooks import RunRecord
from workbench.specs.runbook import RunStatus
from workbench.ui.files import run_url
from workbench.ui.models.operations import (
    WINDOWS,
    OperationsModel,
    ParameterField,
    change_text,
    duration_label,
    linked_run,
    summary_label,
    summary_value,
    trigger_label,
)
from workbench.ui.views.shell import ConfirmBox, esc, stylesheets
from workbench.ui.views.widgets import badge, when

STATUS_KIND = {
    "succeeded": "wb-ok",
    "failed": "wb-bad",
    "timed_out": "wb-bad",
    "cancelled": "wb-warn",
    "running": "wb-info",
}
ROWS_STEP = 100
RUN_COLUMNS = ("id", "runbook", "status", "trigger", "endpoint", "started (UTC)", "duration", "summary")
TITLE = '<h3 style="font-family:system-ui;margin:10px 0 4px 0">{}</h3>'


def status_badge(status: str) -> str:
    return badge(status.replace("_", " "), STATUS_KIND.get(status, ""))


def action_kind(action: str) -> str:
    if any(word in action for word in ("fail", "reject", "rollback", "timed_out", "error", "delete", "stop")):
        return "wb-bad"
    if any(word in action for word in ("succeeded", "promote", "deploy")):
        return "wb-ok"
    if action.startswith(("rollout.", "runbook.")):
        return "wb-info"
    return ""


def run_rows(runs: list[RunRecord]) -> pd.DataFrame:
    rows = [
        {
            "id": run.id,
            "runbook": run.runbook,
            "status": status_badge(run.status.value),
            "trigger": trigger_label(run),
            "endpoint": run_endpoint(run),
            "started (UTC)": when(run.started_at or run.created_at),
            "duration": "in progress" if run.status is RunStatus.RUNNING else duration_label(run.duration_s),
            "summary": summary_label(run.summary) or (run.error or "")[:140],
        }
        for run in runs
    ]
    return pd.DataFrame(rows, columns=list(RUN_COLUMNS))


def run_endpoint(run: RunRecord) -> str:
    """The endpoint the run changes (and holds), or the one it only reads."""
    if run.endpoint:
        return run.endpoint
    named = run.parameters.get("endpoint")
    return f"{named} (reads)" if isinstance(named, str) and named else "-"


def _target(target: str) -> str:
    if target.startswith("endpoint:"):
        name = target.removeprefix("endpoint:")
        return f'<a href="./endpoint?name={quote(name)}">{esc(target)}</a>'
    return esc(target)


def _link(event: AuditEvent) -> str:
    run = linked_run(event)
    if run is not None:
        return f'<a href="./operations?run={quote(run)}" title="run {esc(run)}">the run</a>'
    if event.link and event.link.startswith("rollout:"):
        rollout = event.link.removeprefix("rollout:")
        return f'<a href="./rollout?id={quote(rollout)}">rollout</a>'
    return ""


def audit_row(event: AuditEvent) -> str:
    change = change_text(event.before, event.after)
    return (
        f'<tr data-testid="audit-row" data-id="{event.id}"><td style="white-space:nowrap">{when(event.at)}</td>'
        f"<td>{esc(event.actor)}</td><td>{badge(event.action, action_kind(event.action))}</td>"
        f"<td>{_target(event.target)}</td><td>{esc(event.reason or '')}</td>"
        f'<td class="wb-muted" style="font-size:12px">{esc(change)}</td><td>{_link(event)}</td></tr>'
    )


def run_details(run: RunRecord | None, note: str = "") -> str:
    if run is None:
        body = esc(note) if note else "Click a run to see its parameters, summary and notebook."
        return f'<div class="wb-card" data-testid="run-details"><span class="wb-muted">{body}</span></div>'
    params = "".join(
        f"<tr><td>{esc(k)}</td><td><code>{esc(repr(v))}</code></td></tr>" for k, v in run.parameters.items()
    )
    summary = "".join(
        f"<tr><td>{esc(k)}</td><td>{esc(summary_value(v))}</td></tr>" for k, v in (run.summary or {}).items()
    )
    if run.status is RunStatus.RUNNING:
        notebook = '<span class="wb-muted">the executed notebook opens here when the run ends</span>'
    else:
        notebook = (
            f'<a href="{esc(run_url(run.id))}" target="_blank" rel="noopener" data-testid="notebook-link">'
            "open the executed notebook ↗</a>"
        )
    error = ""
    if run.error:
        error = f'<div class="wb-outcome-bad" data-testid="run-error">{esc(run.error)}</div>'
    failed = ""
    if run.failed_cell is not None:
        cell = run.failed_cell
        tags = f" (tags: {esc(', '.join(cell.tags))})" if cell.tags else ""
        failed = (
            f'<div data-testid="failed-cell"><b>failed cell {cell.index}</b>{tags}: '
            f"<code>{esc(cell.ename)}: {esc(cell.evalue)}</code>"
            '<pre style="background:#f8fafc;border:1px solid #e2e8f0;padding:6px;max-height:220px;'
            f'overflow:auto;font-size:12px">{esc(cell.source)}</pre></div>'
        )
    timing = f"created {when(run.created_at)}"
    if run.started_at:
        timing += f" · started {when(run.started_at)}"
    if run.finished_at:
        timing += f" · ended {when(run.finished_at)} · took {duration_label(run.duration_s)}"
    return (
        f'<div class="wb-card" data-testid="run-details" data-run="{esc(run.id)}">'
        f"<h3>{esc(run.runbook)} {status_badge(run.status.value)} "
        f'<span class="wb-muted">run {esc(run.id)}</span></h3>'
        f"<div>{esc(trigger_label(run))} · endpoint {esc(run_endpoint(run))} · "
        f'timeout {run.timeout_s:g} s</div><div class="wb-muted">{timing} (UTC)</div>'
        f"<div style='margin:6px 0'>{notebook}</div>{error}{failed}"
        '<table class="wb-table" data-testid="run-parameters"><tr><th>parameter</th><th>value</th></tr>'
        f"{params or '<tr><td colspan=2>the runbook defaults</td></tr>'}</table>"
        + (
            '<table class="wb-table" data-testid="run-summary" style="margin-top:6px"><tr><th>summary</th>'
            f"<th></th></tr>{summary}</table>"
            if summary
            else ""
        )
        + "</div>"
    )


def field_widget(field: ParameterField) -> pn.widgets.Widget:
    label = f"{field.name} ({field.declared_type or 'any'})"
    options: dict[str, Any] = {"label": label, "width": 230, "description": field.help or None}
    if field.kind == "bool":
        return pn.widgets.Checkbox(
            value=bool(field.default), label=field.name, width=230, margin=(24, 10, 5, 10)
        )
    if field.kind == "int":
        return pn.widgets.IntInput(value=int(field.default), **options)
    if field.kind == "float":
        return pn.widgets.FloatInput(value=float(field.default), **options)
    if field.kind == "str":
        return pn.widgets.TextInput(value=str(field.default), **options)
    return pn.widgets.TextInput(value=field.default_text, placeholder="a Python literal", **options)


class OperationsView(Viewer):
    model = param.ClassSelector(class_=OperationsModel)
    rows = param.Integer(default=ROWS_STEP, bounds=(ROWS_STEP, None), doc="audit rows drawn")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.model is None:
            raise TypeError("OperationsView needs its model")
        self._page: OperationsModel = self.model
        model = self._page
        css = stylesheets()
        self._error = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        # ---- runs
        self._runs = pn.widgets.Tabulator(
            run_rows(model.runs),
            show_index=False,
            disabled=True,
            selectable=1,
            hidden_columns=["id"],
            formatters={"status": {"type": "html"}},
            layout="fit_data_stretch",
            theme="simple",
            sizing_mode="stretch_width",
            max_height=420,
            configuration={"placeholder": "No runbook runs yet: start one below."},
            stylesheets=css,
        )
        self._runs.on_click(self._on_run_click)
        self._details = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        self._cancel = pn.widgets.Button(label="Cancel this run", color="danger", width=150)
        self._cancel.on_click(lambda _e: model.propose_cancel())
        # ---- the form
        self._runbook = pn.widgets.Select(label="Runbook", width=460)
        self._runbook.param.watch(lambda e: setattr(model, "runbook", e.new or ""), "value")
        self._about = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        self._form = pn.FlexBox(sizing_mode="stretch_width")
        self._inputs: dict[str, pn.widgets.Widget] = {}
        self._start = pn.widgets.Button(label="Review and run…", color="primary", width=160)
        self._start.on_click(self._on_start)
        # The frame's confirmation box is at the top of a long page: the form shows the same one here.
        self._here = ConfirmBox(desk=model.desk)
        self._reset = pn.widgets.Button(label="Defaults", width=100)
        self._reset.on_click(lambda _e: self._render_form())
        # ---- audit
        self._actor = pn.widgets.TextInput(label="Actor", placeholder="alice, runbook:, rollout-", width=170)
        self._action = pn.widgets.TextInput(
            label="Action prefixes", placeholder="endpoint., rollout. or -feedback.", width=230
        )
        self._target = pn.widgets.TextInput(label="Target", placeholder="endpoint:churn", width=170)
        self._window = pn.widgets.Select(label="When", options=dict(WINDOWS), value=0, width=150)
        self._range = pn.widgets.DatetimeRangePicker(label="From / to (UTC)", width=300)
        self._clear = pn.widgets.Button(label="Clear filters", width=110, margin=(24, 5, 5, 5))
        self._clear.on_click(self._on_clear)
        for widget, name in ((self._actor, "actor"), (self._action, "action"), (self._target, "target")):
            widget.param.watch(lambda e, name=name: setattr(model, name, e.new or ""), "value_input")
        self._window.param.watch(lambda e: setattr(model, "last_s", float(e.new or 0)), "value")
        self._range.param.watch(self._on_range, "value")
        self._count = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        self._audit = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=css)
        self._more = pn.widgets.Button(label="Show more", width=120)
        self._more.on_click(lambda _e: setattr(self, "rows", self.rows + ROWS_STEP))
        self._older = pn.widgets.Button(label="Load older events", width=160)
        self._older.on_click(lambda _e: model.load_older())
        # ---- follow the model
        model.param.watch(self._render_runs, ["runs", "run_id"])
        model.param.watch(self._render_details, ["run", "run_note"])
        model.param.watch(self._render_catalogue, ["runbooks"])
        model.param.watch(self._render_form, ["fields"])
        model.param.watch(self._render_audit, ["shown"])
        model.param.watch(self._render_count, ["events", "older_note"])
        model.param.watch(self._render_error, ["error"])
        model.desk.param.watch(self._sync_busy, ["busy"])
        self.param.watch(self._render_audit, ["rows"])
        self._render_error()
        self._render_runs()
        self._render_details()
        self._render_catalogue()
        self._render_form()
        self._render_audit()

    # ------------------------------------------------------------------ runs
    def _render_error(self, *_: Any) -> None:
        error = self._page.error
        self._error.object = (
            f'<div class="wb-outcome-bad">Cannot read the control plane: {esc(error)}</div>' if error else ""
        )

    def _render_runs(self, *_: Any) -> None:
        frame = run_rows(self._page.runs)
        if not frame.equals(self._runs.value):
            self._runs.value = frame
        ids = list(frame["id"])
        selection = [ids.index(self._page.run_id)] if self._page.run_id in ids else []
        if self._runs.selection != selection:
            self._runs.selection = selection

    def _on_run_click(self, event: Any) -> None:
        frame = self._runs.value
        if event.row is not None and 0 <= event.row < len(frame):
            self._page.run_id = str(frame.iloc[event.row]["id"])

    def _render_details(self, *_: Any) -> None:
        run = self._page.run
        self._details.object = run_details(run, self._page.run_note)
        self._cancel.visible = run is not None and run.status is RunStatus.RUNNING

    # ------------------------------------------------------------------ form
    def _render_catalogue(self, *_: Any) -> None:
        options = {f"{r.get('title') or r['name']} ({r['name']})": r["name"] for r in self._page.runbooks}
        if self._runbook.options != options:
            self._runbook.options = options
        if self._page.runbook in options.values():
            self._runbook.value = self._page.runbook

    def _render_form(self, *_: Any) -> None:
        info = self._page.info()
        if info is None:
            self._about.object = '<div class="wb-muted">No runbooks in the catalogue.</div>'
            self._form.objects = []
            self._inputs = {}
            return
        lock = (
            badge("changes its endpoint (holds its lock)", "wb-warn")
            if info.get("locks_endpoint")
            else badge("changes no endpoint", "wb-ok")
        )
        timeout = badge(f"timeout {float(info.get('timeout_s') or 0):g} s")
        self._about.object = (
            f'<div class="wb-muted" style="font-size:13px;max-width:1000px" data-testid="runbook-about">'
            f"{esc(info.get('description') or '')}</div><div>{lock}{timeout}</div>"
        )
        self._inputs = {field.name: field_widget(field) for field in self._page.fields}
        cells = []
        for field in self._page.fields:
            note = f"{esc(field.help)}<br>default <code>{esc(field.default_text or '-')}</code>"
            cells.append(
                pn.Column(
                    self._inputs[field.name],
                    pn.pane.HTML(
                        f'<div class="wb-muted" style="width:220px">{note}</div>',
                        stylesheets=stylesheets(),
                        margin=(0, 10),
                    ),
                    width=245,
                )
            )
        self._form.objects = cells

    def _on_start(self, _event: Any) -> None:
        self._page.propose_run({name: widget.value for name, widget in self._inputs.items()})

    def _sync_busy(self, *_: Any) -> None:
        busy = self._page.desk.busy
        self._start.disabled = self._cancel.disabled = busy

    # ----------------------------------------------------------------- audit
    def _on_range(self, event: Any) -> None:
        start, end = event.new if event.new else (None, None)
        self._page.param.update(since=start, until=end)

    def _on_clear(self, _event: Any) -> None:
        for widget in (self._actor, self._action, self._target):
            widget.value = widget.value_input = ""
        self._window.value = 0
        self._range.value = None
        self.rows = ROWS_STEP

    def _render_count(self, *_: Any) -> None:
        model = self._page
        filtered = " that pass the filter" if model.rule.active else ""
        self._count.object = (
            f'<div class="wb-muted" data-testid="audit-count">showing {min(self.rows, len(model.shown))} of '
            f"{len(model.shown)} events{filtered} · {len(model.events)} held · newest first, new events "
            f"appear at the top{' · ' + esc(model.older_note) if model.older_note else ''}</div>"
        )

    def _render_audit(self, *_: Any) -> None:
        """The table is redrawn only when what it shows changes (an event the filter hides costs nothing)."""
        model = self._page
        body = "".join(audit_row(e) for e in model.shown[: self.rows])
        self._audit.object = (
            '<table class="wb-table" data-testid="audit"><tr><th>when (UTC)</th><th>actor</th><th>action</th>'
            "<th>target</th><th>reason</th><th>before → after</th><th></th></tr>"
            f"{body or '<tr><td colspan=7>no events</td></tr>'}</table>"
        )
        self._more.visible = len(model.shown) > self.rows
        self._render_count()

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            self._error,
            pn.pane.HTML(TITLE.format("Runbook runs")),
            pn.Row(
                pn.Column(self._runs, sizing_mode="stretch_width"),
                pn.Column(self._details, self._cancel, width=520),
                sizing_mode="stretch_width",
            ),
            pn.pane.HTML(TITLE.format("Run a runbook")),
            pn.Row(self._runbook),
            self._about,
            self._form,
            pn.Row(self._start, self._reset),
            self._here,
            pn.pane.HTML(TITLE.format("Audit log")),
            pn.Row(self._actor, self._action, self._target, self._window, self._range, self._clear),
            self._count,
            self._audit,
            pn.Row(self._more, self._older),
            sizing_mode="stretch_width",
        )
