"""Drift & performance of one monitor: per-feature drift over time, one feature's distribution against the
reference, prediction drift, accuracy from labels beside the label-free estimate, and archived reports.

The time series come from the feed (every monitor's persisted series, re-read for the whole process
every few seconds): a page opens with the last hour and then receives only the new looks. What the feed
does not hold is read for this page alone, off its event loop, and only when a person asks for it or
when something new arrived: a feature's distribution when the feature is chosen and at most once per
batch of new looks, the report list when the page opens and when the audit log shows a new report.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import panel as pn
import param
from panel.io.state import set_curdoc

from workbench.client import Client
from workbench.errors import WorkbenchError
from workbench.records.endpoints import EndpointRecord
from workbench.records.monitoring import MonitorRecord, ReportRecord
from workbench.ui.feed import Snapshot, Update
from workbench.ui.files import report_url
from workbench.ui.models.base import PageModel
from workbench.ui.plans import Preview, endpoint_routes, split_label
from workbench.ui.session import NOTEBOOK_LOCK

log = logging.getLogger("workbench.ui")

#: The model's output, offered beside the features when the reference was scored.
PREDICTION = "prediction"
#: Monitor-wide series drawn as lines (key ``all``): drift of the output and of the dataset, then
#: performance measured from labels beside its estimate without labels, how many rows were labelled, and
#: for an endpoint that looks its features up, the oldest feature served and the lookup's p95.
LINE_SERIES = (
    "prediction_drift",
    "drift_share",
    "dataset_drift",
    "accuracy",
    "estimated_accuracy",
    "auc",
    "estimated_auc",
    "labelled",
    "feature_age_max_s",
    "feature_lookup_p95_ms",
)
#: The series only an endpoint with a feature lookup has: their chart is drawn for such an endpoint alone.
FEATURE_SERIES = ("feature_age_max_s", "feature_lookup_p95_ms")
#: A look this much later than the monitor's interval after the previous one starts a gap: blank looks
#: are drawn over it rather than stretching the cells either side across the silence.
GAP_FACTOR = 2.5
DEFAULT_THRESHOLD = 0.1  # Evidently's default for every method the monitors use
_READERS = 4

_pool: ThreadPoolExecutor | None = None


def _readers() -> ThreadPoolExecutor:
    """A few threads shared by every open page, for the reads a page makes outside the feed."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=_READERS, thread_name_prefix="drift-page")
    return _pool


# ----------------------------------------------------------------------------------- pure data shaping
def pick_monitor(monitors: Sequence[MonitorRecord], name: str | None, endpoint: str | None) -> str:
    """The named monitor (even one not listed yet), else the first watching ``endpoint``, else the first."""
    if name:
        return name
    if endpoint:
        mine = [m.spec.name for m in monitors if m.spec.endpoint == endpoint]
        if mine:
            return mine[0]
    return monitors[0].spec.name if monitors else ""


def column_order(record: MonitorRecord | None, keys: Sequence[str]) -> list[str]:
    """The heatmap's rows: the columns the monitor names, else those with scores (the store's order)."""
    named = list(record.spec.drift.columns or ()) if record is not None else []
    return named + [k for k in keys if k not in named]


def thresholds_of(record: MonitorRecord | None, columns: Sequence[str]) -> dict[str, float]:
    chosen = dict(record.spec.drift.thresholds) if record is not None else {}
    return {c: float(chosen.get(c, DEFAULT_THRESHOLD)) for c in columns}


def _blank_looks(previous: float | None, first: float, every_s: float) -> list[float]:
    """Blank looks just after ``previous`` and just before ``first`` when a gap lies between them."""
    if previous is None or first - previous <= GAP_FACTOR * every_s:
        return []
    return [previous + every_s, first - every_s]


def heatmap_rows(
    drift: Mapping[str, Mapping[str, Sequence[float]]],
    columns: Sequence[str],
    thresholds: Mapping[str, float],
    *,
    every_s: float,
    after: float | None = None,
) -> dict[str, list[Any]]:
    """One row per look and watched column, look after look (what a heatmap streams: a new look is rows at
    the end): ``time`` (epoch ms), ``column``, ``score`` and ``ratio`` (score over the column's threshold:
    1 or more drifts, whatever the method). NaN where a look has no score for a column; blank looks over
    gaps in the looks (and between ``after``, the last look already drawn, and these)."""
    by_time: dict[float, dict[str, float]] = {}
    for column in columns:
        points = drift.get(column)
        if not points:
            continue
        for ts, value in zip(points.get("ts", ()), points.get("value", ()), strict=False):
            if after is None or ts > after:
                by_time.setdefault(float(ts), {})[column] = float(value)
    rows: dict[str, list[Any]] = {"time": [], "column": [], "score": [], "ratio": []}
    previous = after
    for ts in sorted(by_time):
        blank: dict[str, float] = {}
        looks = [(t, blank) for t in _blank_looks(previous, ts, every_s)] + [(ts, by_time[ts])]
        for at, scores in looks:
            for column in columns:
                score = scores.get(column, math.nan)
                rows["time"].append(at * 1000.0)
                rows["column"].append(column)
                rows["score"].append(score)
                rows["ratio"].append(score / thresholds.get(column, DEFAULT_THRESHOLD))
        previous = ts
    return rows


def last_look(rows: Mapping[str, Sequence[Any]]) -> float | None:
    """Epoch seconds of the newest look in heatmap rows (None when there is none)."""
    times = rows.get("time") or ()
    return float(times[-1]) / 1000.0 if times else None


def line_points(
    series: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]],
) -> dict[str, dict[str, list[float]]]:
    """``{series: {"x": epoch ms, "y": values}}`` for the drawn series that have points (key ``all``)."""
    out: dict[str, dict[str, list[float]]] = {}
    for name in LINE_SERIES:
        points = series.get(name, {}).get("all")
        if points and points.get("ts"):
            out[name] = {
                "x": [float(t) * 1000.0 for t in points["ts"]],
                "y": [float(v) for v in points.get("value", ())],
            }
    return out


def shows_feature_store(endpoint: EndpointRecord | None, lines: Mapping[str, Any]) -> bool:
    """Whether the page draws the feature-store chart: the endpoint looks features up, or it did (its
    series have points: the lookup may have been removed since, or the endpoint deleted)."""
    looks_up = endpoint is not None and endpoint.spec.features is not None
    return looks_up or any(name in lines for name in FEATURE_SERIES)


def value_label(value: float) -> str:
    """A discrete value as people write it: ``3`` rather than ``3.0``."""
    return f"{value:g}"


def distribution_bars(answer: Mapping[str, Any]) -> list[tuple[str, str, float]]:
    """``(value, side, share)`` rows for grouped bars, from a ``kind == "values"`` answer: every reference
    row, then every current one (HoloViews colours grouped bars by row order, and draws them side-major)."""
    labels = [value_label(float(v)) for v in answer.get("values", ())]
    return [
        (label, side, float(share))
        for side, key in (("reference", "reference"), ("current window", "current"))
        for label, share in zip(labels, answer.get(key, ()), strict=False)
    ]


def report_rows(reports: Sequence[ReportRecord]) -> list[dict[str, Any]]:
    """Newest first: when, the window it covered, how much drifted, and where to open it."""
    rows = []
    for report in sorted(reports, key=lambda r: r.at, reverse=True):
        summary = report.summary or {}
        rows.append(
            {
                "id": report.id,
                "at": report.at,
                "window_s": (report.window_end - report.window_start).total_seconds(),
                "window_end": report.window_end,
                "rows": summary.get("rows"),
                "share_drifted": summary.get("share_drifted"),
                "dataset_drifted": summary.get("dataset_drifted"),
                "trigger": report.trigger,
                "url": report_url(report.monitor, report.id),
            }
        )
    return rows


def preview_report(record: MonitorRecord, endpoint: EndpointRecord | None) -> Preview:
    """A report reads logged requests and archives files: the traffic stays as it is."""
    routes = split_label(endpoint_routes(endpoint)) if endpoint is not None else "(no endpoint)"
    return Preview(
        action=f"make a drift report of monitor {record.spec.name}",
        endpoint=record.spec.endpoint,
        routes_before=routes,
        routes_after=routes,
        detail=(
            f"no traffic change: a full Evidently report of the last {record.spec.window_s:g} s of logged "
            "requests against the reference, archived with the monitor's reports (takes seconds)"
        ),
        expected_revision=None,
    )


# ----------------------------------------------------------------------------------------------- model
Deliver = Callable[[Callable[[], None]], None]


def page_deliverer() -> Deliver:
    """Where a result read off the event loop is applied: on the page's document loop when served (a
    Bokeh document may only change there), at once elsewhere (a notebook, a test)."""
    doc = pn.state.curdoc
    if doc is None or getattr(doc, "session_context", None) is None:

        def at_once(apply: Callable[[], None]) -> None:
            with NOTEBOOK_LOCK:
                apply()

        return at_once

    def deliver(apply: Callable[[], None]) -> None:
        def run() -> None:
            with set_curdoc(doc):
                try:
                    apply()
                except Exception:
                    log.exception("drift page: applying a read failed")

        doc.add_next_tick_callback(run)

    return deliver


class DriftModel(PageModel):
    monitor = param.String(default="", doc="the monitor shown")
    endpoint = param.String(default="", doc="?endpoint=: its first monitor is shown when none is named")
    record = param.ClassSelector(class_=MonitorRecord, default=None, allow_None=True)
    columns = param.List(default=[], doc="watched columns with scores: the heatmap's rows, in order")
    thresholds = param.Dict(default={}, doc="column -> drift threshold")
    heatmap = param.Dict(default={}, doc="heatmap rows the page opens with (see heatmap_rows)")
    heatmap_delta = param.Dict(default={}, doc="rows of the new looks only: what the heatmap streams")
    lines = param.Dict(default={}, doc="series -> x/y: what the line charts open with")
    lines_delta = param.Dict(default={}, doc="the new points only")
    feature_store = param.Boolean(default=False, doc="draw the feature-store chart (see shows_feature_store)")
    column = param.String(default="", doc="the feature whose distribution is drawn")
    distribution = param.Dict(
        default={}, doc="the control plane's answer for column (see Client.monitor_distribution)"
    )
    distribution_error = param.String(default="")
    reports = param.List(default=[], doc="archived reports, newest first (see report_rows)")
    reports_error = param.String(default="")

    def __init__(self, *args: Any, background: bool = True, **params: Any) -> None:
        self._background = background
        self._deliver: Deliver = page_deliverer() if background else (lambda apply: apply())
        self._busy: set[str] = set()
        self._again: dict[str, Callable[[], None]] = {}
        self._last_look: float | None = None
        super().__init__(*args, **params)

    # ---------------------------------------------------------------- feed
    def load(self) -> None:
        super().load()
        name = pick_monitor(self.feed.snapshot.monitors, self.monitor, self.endpoint)
        if name != self.monitor:
            self.monitor = name  # _switch opens it
        else:
            self._open()

    @param.depends("monitor", watch=True)
    def _switch(self) -> None:
        self._open()

    def _every_s(self) -> float:
        return self.record.spec.every_s if self.record is not None else 10.0

    def _find(self, monitors: Sequence[MonitorRecord]) -> MonitorRecord | None:
        return next((m for m in monitors if m.spec.name == self.monitor), None)

    def _open(self) -> None:
        """Everything for the current monitor from what the feed holds; then the page's own reads."""
        self.record = self._find(self.snapshot.monitors)
        series = self.feed.monitor_series(self.monitor) if self.monitor else {}
        drift = series.get("drift", {})
        columns = column_order(self.record, list(drift))
        self.thresholds = thresholds_of(self.record, columns)
        rows = heatmap_rows(drift, columns, self.thresholds, every_s=self._every_s())
        self._last_look = last_look(rows)
        self.columns = columns
        self.heatmap = rows
        self.lines = line_points(series)
        self.feature_store = self._feature_store(self.snapshot, self.lines)
        self.distribution, self.distribution_error = {}, ""
        self.reports, self.reports_error = [], ""
        if not self.monitor:
            return
        self.refresh_reports()
        if self.column and (self.column in columns or self.column == PREDICTION):
            self.refresh_distribution()
        else:
            self.column = columns[0] if columns else ""  # _choose reads it (or the first column)

    @param.depends("column", watch=True)
    def _choose(self) -> None:
        self.refresh_distribution()

    def _feature_store(self, snapshot: Snapshot, lines: Mapping[str, Any]) -> bool:
        endpoint = snapshot.endpoint(self.record.spec.endpoint) if self.record is not None else None
        return shows_feature_store(endpoint, lines)

    def apply(self, update: Update) -> None:
        if "state" in update.changed:
            self.record = self._find(update.snapshot.monitors)
            if not self.feature_store:  # a lookup deployed meanwhile; once drawn, the chart stays
                self.feature_store = self._feature_store(update.snapshot, {})
        points = update.monitor_points.get(self.monitor)
        if points:
            drift = points.get("drift", {})
            if set(drift) - set(self.columns):  # a column the heatmap lacks: draw it again from the feed
                self._open()
                return
            rows = heatmap_rows(
                drift, self.columns, self.thresholds, every_s=self._every_s(), after=self._last_look
            )
            if rows["time"]:
                self._last_look = last_look(rows)
                self.heatmap_delta = rows
            fresh = line_points(points)
            if fresh:
                if not self.feature_store and shows_feature_store(None, fresh):
                    self.feature_store = True  # before the points, so that the chart is there to take them
                self.lines_delta = fresh
            self.refresh_distribution()  # new looks: the window moved (once per batch of looks)
        endpoint = self.record.spec.endpoint if self.record is not None else None
        if endpoint and any(
            e.action == "monitor.report" and e.target == f"endpoint:{endpoint}" for e in update.audit
        ):
            self.refresh_reports()

    # --------------------------------------------------------- page reads
    def _read(
        self,
        key: str,
        call: Callable[[Client], Any],
        done: Callable[[Any, str], None],
        again: Callable[[], None],
    ) -> None:
        """``call`` with a client acting as the signed-in user, off the page's loop; ``done(result, error)``
        on it. One read of a kind at a time per page: asked again meanwhile, it runs once more after."""
        if key in self._busy:
            self._again[key] = again
            return
        self._busy.add(key)

        def work() -> None:
            result, error = None, ""
            try:
                with self.desk.client() as client:
                    result = call(client)
            except WorkbenchError as exc:
                error = str(exc)
            except Exception as exc:  # the page says so rather than waiting forever
                log.exception("drift page: a read failed")
                error = f"{type(exc).__name__}: {exc}"
            self._deliver(lambda: finish(result, error))

        def finish(result: Any, error: str) -> None:
            self._busy.discard(key)
            done(result, error)
            retry = self._again.pop(key, None)
            if retry is not None:
                retry()

        if self._background:
            _readers().submit(work)
        else:
            work()

    def refresh_distribution(self) -> None:
        monitor, column = self.monitor, self.column
        if not monitor or not column:
            return

        def done(answer: Any, error: str) -> None:
            if (monitor, column) != (self.monitor, self.column):
                return  # the page moved on meanwhile; its own read follows
            if error:
                self.distribution_error = error
                return
            self.distribution, self.distribution_error = dict(answer), ""

        self._read(
            "distribution",
            lambda client: client.monitor_distribution(monitor, column),
            done,
            self.refresh_distribution,
        )

    def refresh_reports(self) -> None:
        monitor = self.monitor
        if not monitor:
            return

        def done(reports: Any, error: str) -> None:
            if monitor != self.monitor:
                return
            if error:
                self.reports_error = error
                return
            self.reports, self.reports_error = report_rows(reports), ""

        self._read("reports", lambda client: client.drift_reports(monitor), done, self.refresh_reports)

    # ------------------------------------------------------------- actions
    def propose_report(self) -> None:
        record = self.record
        if record is None:
            self.desk.refuse(f"monitor {self.monitor!r} does not exist (any more)")
            return
        preview = preview_report(record, self.snapshot.endpoint(record.spec.endpoint))
        monitor = record.spec.name

        def perform(client: Client, preview: Preview) -> str:
            report = client.drift_report(monitor)
            summary = report.summary or {}
            share = summary.get("share_drifted")
            drifted = f", {share:.0%} of columns drifted" if isinstance(share, int | float) else ""
            return f"report {report.id} of {monitor} archived: {summary.get('rows', '?')} rows{drifted}"

        self.desk.propose(preview, perform)


def window_label(seconds: float) -> str:
    """``300`` → ``5 min``; ``45`` → ``45 s``; ``7200`` → ``2 h``."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"
