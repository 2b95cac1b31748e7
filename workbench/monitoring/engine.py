"""The monitoring engine: per monitor, every scrape interval, read → window → series, drift, performance
→ history → alert rules → actions.

It runs in the control plane's loop thread beside the rollout controller. What a look computes (every
series point, per-column drift, per-version traffic, each rule's state) goes to the history recorder,
which writes all monitors' looks in one batch a second (``recorder.py``), so the history survives a
restart and a promotion; a rule's change of state, its alert event and audit are one transaction.
Alert-rule state changes are compare-and-set in the store, so two looks (or two control planes) that
judged the same state make one transition, never two. The window itself is rebuilt from the prediction
log after a restart: the tail starts one window back.

Locks: one per monitor, held while its window and reference are read or rebuilt, never across a webhook,
a rollback, a runbook start or a report. Those run on a small pool after the look's transaction
committed, so a receiver that hangs delays neither the loop nor another monitor's look or read.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from workbench.errors import NotFoundError, ValidationError, WorkbenchError
from workbench.monitoring.drift import DriftResult, drift
from workbench.monitoring.feed import INDEX_LIMIT, EndpointFeed, RecordObserver
from workbench.monitoring.gauges import MonitoringGauges
from workbench.monitoring.recorder import HistoryRecorder
from workbench.monitoring.reference import MonitorReference, build_reference, primary_version
from workbench.monitoring.rules import AlertState, RuleState, Transition, evaluate
from workbench.monitoring.window import SlidingWindow
from workbench.priority import lower_this_thread
from workbench.specs.monitor import SCALAR_SERIES, AlertRuleSpec, MonitorSpec, RollbackAction, RunbookAction
from workbench.specs.runbook import RunRequest, Trigger, TriggerKind
from workbench.store.history import ALL, HistoryRepository
from workbench.store.monitoring import AlertRuleRecord, MonitoringRepository, ReportRecord
from workbench.telemetry.tail import PredictionLogTail

if TYPE_CHECKING:
    from workbench.monitoring.plane import MonitoringPlane

log = logging.getLogger("workbench.monitoring")
#: Monitor-wide series kept in the history (key ``all``), beside per-column ``drift`` and ``alert_state``.
HISTORY_SERIES = (*SCALAR_SERIES, "dataset_drift", "rows", "requests", "labelled")
#: Traffic series also kept per version (key: the version number).
VERSION_SERIES = (
    "requests",
    "requests_per_s",
    "error_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
)
#: ``alert_state`` points: a rule's state after each look.
STATE_VALUES = {AlertState.OK: 0.0, AlertState.PENDING: 1.0, AlertState.FIRING: 2.0}
FEED_EVERY_S = 1.0
PRUNE_EVERY_S = 300.0
ACTION_WORKERS = 4


@dataclass
class _Live:
    spec: MonitorSpec
    reference: MonitorReference
    window: SlidingWindow
    tail: PredictionLogTail
    last_tick: float = 0.0
    last_report: float = 0.0
    report_running: bool = False
    rule_values: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class _Firing:
    rule: AlertRuleSpec
    event_id: int
    value: float | None
    message: str


class MonitorEngine:
    def __init__(
        self,
        plane: MonitoringPlane,
        *,
        feed_index_limit: int = INDEX_LIMIT,
        action_workers: int = ACTION_WORKERS,
    ) -> None:
        self.plane = plane
        self.repo = MonitoringRepository()
        self.history_repo = HistoryRepository()
        self.recorder = HistoryRecorder(plane.db, self.history_repo)
        self.gauges = MonitoringGauges()
        #: Predictions each endpoint's feed keeps in memory (older ones are looked up in the store).
        self.feed_index_limit = feed_index_limit
        self._feeds: dict[str, EndpointFeed] = {}
        #: Told what each endpoint's prediction log gained (the experiments assign units from it).
        self.record_observers: list[RecordObserver] = []
        self._live: dict[str, _Live] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()  # the dicts above only: never held across I/O or a wait
        self._actions = ThreadPoolExecutor(
            max_workers=action_workers,
            thread_name_prefix="monitor-action",
            initializer=lower_this_thread,
            initargs=(plane.settings.background_nice,),
        )
        self._pending: set[Future[Any]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._upkeep: threading.Thread | None = None

    # ------------------------------------------------------------------ feeds
    def feed(self, endpoint: str) -> EndpointFeed:
        with self._guard:
            found = self._feeds.get(endpoint)
        if found is not None:
            return found
        created = EndpointFeed(
            self.plane.settings.home / "predictions" / endpoint,
            endpoint=endpoint,
            db=self.plane.db,
            observers=self.record_observers,
            since=time.time() - self.plane.settings.feedback_retention_s,
            index_limit=self.feed_index_limit,
        )
        with self._guard:
            return self._feeds.setdefault(endpoint, created)

    # ------------------------------------------------------------ monitors
    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def live(self, name: str) -> _Live:
        with self._guard:
            found = self._live.get(name)
        if found is not None:
            return found
        with self._lock(name):
            return self._ensure(name)

    def _ensure(self, name: str) -> _Live:
        """The monitor's live state, built if needed; the caller holds the monitor's lock."""
        with self._guard:
            found = self._live.get(name)
        if found is not None:
            return found
        with self.plane.db.read() as connection:
            spec = self.repo.get_monitor(connection, name).spec
        reference = build_reference(self.plane, spec)
        window = SlidingWindow(
            window_s=spec.window_s,
            every_s=spec.every_s,
            features=reference.features,
            predictions=reference.predictions,
        )
        # A fresh window (first look, or after a restart) starts one window back in the log.
        directory = self.plane.settings.home / "predictions" / spec.endpoint
        tail = PredictionLogTail(directory, modified_since=time.time() - spec.window_s, lines=True)
        found = _Live(spec=spec, reference=reference, window=window, tail=tail)
        with self._guard:
            self._live[name] = found
        return found

    def forget(self, name: str) -> None:
        with self._guard:
            self._live.pop(name, None)

    def tick(self, name: str, *, now: float | None = None, act: bool = True) -> dict[str, Any]:
        """One look at a monitor: update its window, compute every series; with ``act``, record them in
        the history, evaluate its rules and hand their actions to the action pool (the loop acts; a status
        read only looks)."""
        at = time.time() if now is None else now
        with self._lock(name):  # the loop and API reads share each window
            live = self._ensure(name)
            if primary_version(self.plane, live.spec.endpoint) != (
                live.reference.model,
                live.reference.version,
            ):
                # Another version took the traffic (a promotion, a rollback): judge it by its own reference.
                self.forget(name)
                live = self._ensure(name)
            live.window.add_lines(live.tail.poll(), at)
            values = self._values(live, at)
            self._export(live, values)
            if not act:
                return values
            live.last_tick = at
            report_due = (
                live.spec.reports is not None
                and at - live.last_report >= live.spec.reports.every_s
                and not live.report_running
            )
            if report_due:
                live.last_report = at
                live.report_running = True
        # Outside the monitor's lock: one transaction for the look, then the actions on the pool.
        firings = self._record(live, values, at)
        for firing in firings:
            for action in firing.rule.actions:
                self._submit(
                    self._act, live, firing.rule, action, firing.value, firing.message, firing.event_id
                )
        if report_due:
            self._submit(self._scheduled_report, live)
        return values

    def _values(self, live: _Live, now: float) -> dict[str, Any]:
        series = live.window.series(now)
        values: dict[str, Any] = {"ts": now, "window_start": live.window.start, **asdict(series)}
        options = live.spec.drift
        features = live.window.feature_histogram()
        result: DriftResult | None = None
        if features.rows >= options.min_rows:
            result = drift(
                features,
                methods=dict(options.methods),
                thresholds=dict(options.thresholds),
                drift_share=options.drift_share,
            )
        values["rows"] = features.rows
        values["drift"] = result.to_dict() if result is not None else None
        values["drift_share"] = result.share_drifted if result is not None else None
        values["dataset_drift"] = float(result.dataset_drifted) if result is not None else None
        for column in result.columns if result is not None else ():
            values[f"drift:{column.column}"] = column.score
        predictions = live.window.prediction_histogram()
        values["prediction_drift"] = None
        if predictions is not None and predictions.rows >= options.min_rows:
            scored = drift(predictions).columns
            values["prediction_drift"] = scored[0].score if scored else None
        values.update(self._performance(live, now))
        values.update(live.window.lookup_series())
        values["versions"] = live.window.versions()
        values["by_version"] = {str(v): asdict(s) for v, s in live.window.series_by_version(now).items()}
        return values

    def _performance(self, live: _Live, now: float) -> dict[str, Any]:
        from workbench.monitoring.performance import compare, estimate_performance, labelled_metrics

        scored = live.window.scored()
        out: dict[str, Any] = {
            "accuracy": None,
            "auc": None,
            "mae": None,
            "estimated_accuracy": None,
            "estimated_auc": None,
            "accuracy_drop": None,
            "auc_drop": None,
            "estimated_accuracy_drop": None,
            "labelled": 0,
        }
        if not scored:
            return out
        scores = [score for _, score in scored]
        if live.reference.task == "binary":
            estimated = estimate_performance(scores)
            out["estimated_accuracy"] = estimated.accuracy
            out["estimated_auc"] = estimated.roc_auc
        start = live.window.start or now - live.spec.window_s
        with self.plane.db.read() as connection:
            labels = {
                f.request_id: f.label for f in self.repo.feedback_since(connection, live.spec.endpoint, start)
            }
        joined = [(score, labels[rid]) for rid, score in scored if rid in labels]
        out["labelled"] = len(joined)
        if joined and live.reference.task is not None:
            metrics = labelled_metrics(live.reference.task, [s for s, _ in joined], [y for _, y in joined])
            measured = metrics.to_dict()
            out["accuracy"] = measured.get("accuracy")
            out["auc"] = measured.get("roc_auc")
            out["mae"] = measured.get("mae")
        baseline = live.reference.baseline or {}
        out["accuracy_drop"] = compare(out["accuracy"], baseline.get("accuracy"))
        out["auc_drop"] = compare(out["auc"], baseline.get("roc_auc"))
        out["estimated_accuracy_drop"] = compare(out["estimated_accuracy"], baseline.get("accuracy"))
        return out

    def _export(self, live: _Live, values: dict[str, Any]) -> None:
        name, endpoint = live.spec.name, live.spec.endpoint
        for series in (*SCALAR_SERIES, "dataset_drift"):  # every series an alert rule can name has a gauge
            value = values.get(series)
            if value is not None and math.isfinite(float(value)):
                self.gauges.value.labels(name, endpoint, series).set(float(value))
        for column in (values.get("drift") or {}).get("columns", []):
            self.gauges.drift.labels(name, endpoint, column["column"], column["method"]).set(column["score"])

    # ---------------------------------------------------------- recording
    def _points(
        self, live: _Live, values: dict[str, Any], at: float
    ) -> list[tuple[str, str, str, float, float]]:
        name = live.spec.name
        points: list[tuple[str, str, str, float, float]] = []

        def add(series: str, key: str, raw: Any) -> None:
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                points.append((name, series, key, at, float(raw)))

        for series in HISTORY_SERIES:
            add(series, ALL, values.get(series))
        for column in (values.get("drift") or {}).get("columns", []):
            add("drift", str(column["column"]), column.get("score"))
        for version, traffic in (values.get("by_version") or {}).items():
            for series in VERSION_SERIES:
                add(series, version, traffic.get(series))
        return points

    def _record(self, live: _Live, values: dict[str, Any], at: float) -> list[_Firing]:
        """Judge the rules; a change of state is one transaction (states, events, audit); the look's
        points go to the recorder, written with other looks' in one batch."""
        points = self._points(live, values, at)
        with self.plane.db.read() as connection:
            rules = self.repo.list_rules(connection, monitor=live.spec.name)
        judged = [(record, *self._judge(live, record, values, at)) for record in rules]
        firings: list[_Firing] = []
        if any(changed for _, _, _, _, changed in judged):
            with self.plane.db.write() as connection:
                for record, state, transition, value, changed in judged:
                    if not changed:
                        continue
                    # Only if the stored state is still the one judged: of two looks, one transition wins.
                    if not self.repo.save_rule_state(
                        connection, record.spec.name, asdict(state), expected=record.state
                    ):
                        continue
                    if transition is not None:
                        firing = self._transition(
                            connection, live, record.spec, transition, value, values, at
                        )
                        if firing is not None:
                            firings.append(firing)
        for record, state, _, _, _ in judged:
            self.gauges.firing.labels(record.spec.name, record.spec.monitor, record.spec.severity.value).set(
                1.0 if state.state == AlertState.FIRING else 0.0
            )
            points.append((live.spec.name, "alert_state", record.spec.name, at, STATE_VALUES[state.state]))
        self.recorder.add(points)
        return firings

    # ------------------------------------------------------------ alerting
    def _judge(
        self, live: _Live, record: AlertRuleRecord, values: dict[str, Any], now: float
    ) -> tuple[RuleState, Transition | None, float | None, bool]:
        """The rule's new state and transition (pure), and whether its stored state changes."""
        rule = record.spec
        state = RuleState(
            state=AlertState(record.state.get("state", "ok")),
            since=record.state.get("since"),
            last_fired_at=record.state.get("last_fired_at"),
            value=record.state.get("value"),
        )
        raw = values.get(rule.series)
        value = float(raw) if isinstance(raw, int | float) and math.isfinite(float(raw)) else None
        new_state, transition = evaluate(rule, state, value, now)
        live.rule_values[rule.name] = value
        # Only a change of state is a write: the value moves every look and is kept in memory.
        persisted = {k: v for k, v in asdict(new_state).items() if k != "value"}
        changed = persisted != {k: v for k, v in record.state.items() if k != "value"}
        return new_state, transition, value, changed

    def _transition(
        self,
        connection: Connection,
        live: _Live,
        rule: AlertRuleSpec,
        transition: Transition,
        value: float | None,
        values: dict[str, Any],
        now: float,
    ) -> _Firing | None:
        """Record a firing or a resolution (alert event + audit) in the caller's transaction."""
        message = (
            f"{rule.series} = {value:.4g} {rule.op} {rule.threshold:g}"
            + (f" for {rule.for_s:g}s" if rule.for_s else "")
            if transition == Transition.FIRING
            else f"{rule.series} = {value:.4g}: back within {rule.op} {rule.threshold:g}"
        )
        details = {"window_start": values.get("window_start"), "rows": values.get("rows")}
        event_id = self.repo.add_event(
            connection,
            rule=rule,
            endpoint=live.spec.endpoint,
            kind=transition.value,
            value=value,
            message=message,
            details=details,
            at=now,
        )
        self.plane.audit.record(
            connection,
            actor=f"alert:{rule.name}",
            action=f"alert.{transition.value}",
            target=f"endpoint:{live.spec.endpoint}",
            after={
                "rule": rule.name,
                "series": rule.series,
                "value": value,
                "severity": rule.severity.value,
            },
            reason=message,
            link=f"alert-event:{event_id}",
        )
        if transition != Transition.FIRING:
            return None
        return _Firing(rule=rule, event_id=event_id, value=value, message=message)

    def _submit(self, fn: Callable[..., Any], *args: Any) -> None:
        future = self._actions.submit(fn, *args)
        with self._guard:
            self._pending.add(future)

        def done(finished: Future[Any]) -> None:
            with self._guard:
                self._pending.discard(finished)

        future.add_done_callback(done)

    def wait_actions(self, timeout: float | None = None) -> bool:
        """Wait until the actions and scheduled reports handed out so far have run (tests, shutdown)."""
        with self._guard:
            pending = list(self._pending)
        return not wait_futures(pending, timeout=timeout).not_done

    def _act(
        self, live: _Live, rule: AlertRuleSpec, action: Any, value: float | None, message: str, event_id: int
    ) -> None:
        from workbench.monitoring.actions import notify

        endpoint = live.spec.endpoint
        outcome: dict[str, Any] = {"action": action.kind}
        try:
            if isinstance(action, RollbackAction):
                from workbench.revisions import RollbackRequest

                result = self.plane.rollback(
                    endpoint,
                    RollbackRequest(reason=f"alert {rule.name}: {message}"),
                    actor=f"alert:{rule.name}",
                )
                outcome["routes"] = [r.model_dump() for r in result.endpoint.spec.routes]
                outcome.update(
                    ok=True, changed=result.changed, message=result.message, revision=result.revision
                )
            elif isinstance(action, RunbookAction):
                # What the alert knows fills the parameters the rule left out: the runbook acts on
                # this monitor's endpoint, never on whatever endpoint its notebook defaults to.
                declared = {p.name for p in self.plane.runbooks.runbook(action.runbook).parameters}
                parameters = dict(action.parameters)
                for name, known in (
                    ("endpoint", endpoint),
                    ("monitor", live.spec.name),
                    ("reason", f"alert {rule.name}: {message}"),
                ):
                    if name in declared:
                        parameters.setdefault(name, known)
                run = self.plane.runbooks.start(
                    RunRequest(
                        runbook=action.runbook,
                        parameters=parameters,
                        reason=f"alert {rule.name}: {message}",
                    ),
                    actor=f"alert:{rule.name}",
                    trigger=Trigger(
                        kind=TriggerKind.ALERT, rule=rule.name, alert_event=event_id, detail=message
                    ),
                )
                outcome.update(ok=True, run=run.id, runbook=action.runbook)
            else:
                outcome.update(notify(action, rule=rule, endpoint=endpoint, value=value, message=message))
        except WorkbenchError as exc:
            outcome.update(ok=False, error=exc.message)
        except Exception as exc:  # an action that breaks must not stop the other rules of this look
            log.exception("alert %s: action %s failed", rule.name, action.kind)
            outcome.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        with self.plane.db.write() as connection:
            self.repo.add_event(
                connection,
                rule=rule,
                endpoint=endpoint,
                kind=f"action.{action.kind}",
                value=value,
                message=("done" if outcome.get("ok") else f"failed: {outcome.get('error')}"),
                details=outcome,
            )

    # -------------------------------------------------------------- reports
    def report(
        self,
        name: str,
        *,
        trigger: str = "manual",
        window_s: float | None = None,
        until: float | None = None,
        actor: str | None = None,
    ) -> ReportRecord:
        """A full Evidently drift report of any window (the monitor's, ending now, by default), archived."""
        from workbench.monitoring.reports import archive_report

        live = self.live(name)  # the monitor's lock is not held while Evidently runs
        return archive_report(
            self.plane,
            live.spec,
            live.reference,
            trigger=trigger,
            window_s=window_s,
            until=until,
            actor=actor,
        )

    def _scheduled_report(self, live: _Live) -> None:
        try:
            self.report(live.spec.name, trigger="schedule")
        except WorkbenchError as exc:
            log.info("monitor %s: scheduled report skipped: %s", live.spec.name, exc.message)
        except Exception:
            log.exception("monitor %s: scheduled report failed", live.spec.name)
        finally:
            live.report_running = False

    # ------------------------------------------------------------------ loop
    def start_loop(self, every: float = 0.25) -> None:
        """The monitors' looks on one thread; the feedback index and the retention on another, so a
        large log backlog or a long prune never delays a look."""
        self._thread = threading.Thread(target=self._loop, args=(every,), name="monitoring", daemon=True)
        self._thread.start()
        self._upkeep = threading.Thread(target=self._upkeep_loop, name="monitoring-upkeep", daemon=True)
        self._upkeep.start()

    def stop_loop(self) -> None:
        self._stop.set()
        for thread in (self._thread, self._upkeep):
            if thread is not None:
                thread.join(timeout=10)
        self._actions.shutdown(wait=True)
        self.recorder.close()

    def _loop(self, every: float) -> None:
        lower_this_thread(self.plane.settings.background_nice)
        while not self._stop.wait(every):
            self._tick_due(time.time())

    def _upkeep_loop(self) -> None:
        lower_this_thread(self.plane.settings.background_nice)
        last_prune = 0.0
        while not self._stop.wait(FEED_EVERY_S):
            self.poll_feeds()
            now = time.time()
            if now - last_prune >= PRUNE_EVERY_S:
                last_prune = now
                self.prune(now)

    def _tick_due(self, now: float) -> None:
        try:
            with self.plane.db.read() as connection:
                monitors = self.repo.list_monitors(connection)
        except Exception:
            log.exception("monitoring: cannot list monitors")
            return
        for record in monitors:
            name = record.spec.name
            with self._guard:
                live = self._live.get(name)
            if live is not None and now - live.last_tick < record.spec.every_s:
                self._ingest(live, now)
                continue
            try:
                self.tick(name, now=now)
            except (NotFoundError, ValidationError) as exc:
                log.warning("monitor %s: %s", name, exc)
                if live is None:  # no reference yet, or no endpoint: look again next interval
                    self.forget(name)
            except Exception:  # one broken monitor must not stop the others
                log.exception("monitor %s: tick failed", name)

    def _ingest(self, live: _Live, now: float) -> None:
        """Fold what the log gained since the last look, between looks.

        A look every ``every_s`` that first folds ``every_s`` of log (5 s of a busy endpoint: tens of
        thousands of requests) took a core for a few hundred milliseconds at once, and requests waiting
        behind it were the router's p99 on a two-core machine. Folding at every turn of the loop spreads
        the same work into slices; the look itself then computes from a window already up to date."""
        try:
            with self._lock(live.spec.name):
                with self._guard:
                    if self._live.get(live.spec.name) is not live:
                        return  # forgotten meanwhile: the next look rebuilds it
                live.window.add_lines(live.tail.poll(), now)
        except Exception:
            log.exception("monitor %s: folding the log failed", live.spec.name)

    def poll_feeds(self) -> None:
        """Index what every endpoint's prediction log gained, so feedback finds requests of any age."""
        root = self.plane.settings.home / "predictions"
        try:
            endpoints = sorted(p.name for p in root.iterdir() if p.is_dir())
        except OSError:
            return
        for endpoint in endpoints:
            try:
                self.feed(endpoint).poll()
            except Exception:
                log.exception("feedback index of %s: poll failed", endpoint)

    def prune(self, now: float) -> None:
        """Apply the retention settings: old history points and old request-id index entries."""
        settings = self.plane.settings
        try:
            with self.plane.db.write() as connection:
                removed = self.history_repo.prune(
                    connection,
                    now - settings.history_retention_s,
                    rollups_before=now - max(settings.rollup_retention_s, settings.history_retention_s),
                )
            if removed:
                log.info("monitor history: pruned %d points older than the retention", removed)
            with self._guard:
                feeds = list(self._feeds.values())
            for feed in feeds:
                feed.prune(now - settings.feedback_retention_s)
        except Exception:
            log.exception("monitoring: prune failed")

    # ---------------------------------------------------------------- reads
    def history(self, name: str, limit: int = 500) -> list[dict[str, Any]]:
        """The monitor's last ``limit`` looks (monitor-wide series), from the store."""
        self.recorder.flush()
        with self.plane.db.read() as connection:
            looks = self.history_repo.recent(connection, name, limit)
        # Every monitor-wide series in every look, None where the look had no value (as computed).
        return [{"ts": look["ts"], **{s: look.get(s) for s in HISTORY_SERIES}} for look in looks]
