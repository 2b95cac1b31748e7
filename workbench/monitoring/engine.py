"""The monitoring engine: per monitor, every scrape interval, read → window → series, drift, performance
→ alert rules → actions.

It runs in the control plane's loop thread beside the rollout controller. Everything a monitor knows
that is not in the state store (its window) is rebuilt from the prediction log after a restart: the
feed starts one window back. Alert-rule state (pending since, last firing) is in the store, so a
restart neither re-fires an alert nor forgets a pending one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Gauge

from workbench.errors import NotFoundError, ValidationError, WorkbenchError
from workbench.monitoring.drift import DriftResult, drift
from workbench.monitoring.feed import EndpointFeed
from workbench.monitoring.reference import MonitorReference, build_reference, primary_version
from workbench.monitoring.rules import AlertState, RuleState, Transition, evaluate
from workbench.monitoring.window import SlidingWindow
from workbench.specs.monitor import SCALAR_SERIES, AlertRuleSpec, MonitorSpec, RollbackAction, RunbookAction
from workbench.specs.runbook import RunRequest, Trigger, TriggerKind
from workbench.store.monitoring import AlertRuleRecord, MonitoringRepository, ReportRecord
from workbench.telemetry.tail import PredictionLogTail

if TYPE_CHECKING:
    from workbench.control_plane import ControlPlane

log = logging.getLogger("workbench.monitoring")
HISTORY = 2000
FEEDBACK_LOOKBACK_S = 86_400.0


@dataclass
class _Live:
    spec: MonitorSpec
    reference: MonitorReference
    window: SlidingWindow
    tail: PredictionLogTail
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    last_tick: float = 0.0
    last_report: float = 0.0
    rule_values: dict[str, float | None] = field(default_factory=dict)


class MonitoringGauges:
    """Drift, performance and alert state as Prometheus gauges on the control plane's ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.value = Gauge(
            "workbench_monitor_value",
            "Latest value of a monitor's series over its window",
            ["monitor", "endpoint", "series"],
            registry=self.registry,
        )
        self.drift = Gauge(
            "workbench_drift_score",
            "Drift score of a feature (or the prediction) over the monitor's window",
            ["monitor", "endpoint", "column", "method"],
            registry=self.registry,
        )
        self.firing = Gauge(
            "workbench_alert_firing",
            "1 while an alert rule fires",
            ["rule", "monitor", "severity"],
            registry=self.registry,
        )


class MonitorEngine:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.repo = MonitoringRepository()
        self.gauges = MonitoringGauges()
        self._feeds: dict[str, EndpointFeed] = {}
        self._live: dict[str, _Live] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ feeds
    def feed(self, endpoint: str) -> EndpointFeed:
        with self._lock:
            found = self._feeds.get(endpoint)
            if found is None:
                directory = self.plane.settings.home / "predictions" / endpoint
                found = self._feeds[endpoint] = EndpointFeed(
                    directory, since=time.time() - FEEDBACK_LOOKBACK_S
                )
            return found

    # ------------------------------------------------------------ monitors
    def live(self, name: str) -> _Live:
        with self._lock:
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
            tail = PredictionLogTail(directory, modified_since=time.time() - spec.window_s)
            found = self._live[name] = _Live(spec=spec, reference=reference, window=window, tail=tail)
            return found

    def forget(self, name: str) -> None:
        with self._lock:
            self._live.pop(name, None)

    def tick(self, name: str, *, now: float | None = None, act: bool = True) -> dict[str, Any]:
        """One look at a monitor: update its window, compute every series; with ``act``, evaluate its
        rules and run their actions (the loop acts; a status read only looks)."""
        with self._lock:  # the loop and API reads share each window
            return self._tick(name, now=now, act=act)

    def _tick(self, name: str, *, now: float | None, act: bool) -> dict[str, Any]:
        at = time.time() if now is None else now
        live = self.live(name)
        if primary_version(self.plane, live.spec.endpoint) != (live.reference.model, live.reference.version):
            # Another version took the traffic (a promotion, a rollback): judge it by its own reference.
            self.forget(name)
            live = self.live(name)
        live.window.add(live.tail.poll(), at)
        values = self._values(live, at)
        self._export(live, values)
        if not act:
            return values
        live.history.append(values)
        live.last_tick = at
        with self.plane.db.read() as connection:
            rules = self.repo.list_rules(connection, monitor=name)
        for rule in rules:
            self._evaluate(live, rule, values, at)
        if live.spec.reports is not None and at - live.last_report >= live.spec.reports.every_s:
            live.last_report = at
            with contextlib.suppress(WorkbenchError):
                self.report(name, trigger="schedule")
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
        values["versions"] = live.window.versions()
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
        for series in SCALAR_SERIES:
            value = values.get(series)
            if value is not None and math.isfinite(float(value)):
                self.gauges.value.labels(name, endpoint, series).set(float(value))
        for column in (values.get("drift") or {}).get("columns", []):
            self.gauges.drift.labels(name, endpoint, column["column"], column["method"]).set(column["score"])

    # ------------------------------------------------------------ alerting
    def _evaluate(self, live: _Live, record: AlertRuleRecord, values: dict[str, Any], now: float) -> None:
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
        self.gauges.firing.labels(rule.name, rule.monitor, rule.severity.value).set(
            1.0 if new_state.state == AlertState.FIRING else 0.0
        )
        live.rule_values[rule.name] = value
        persisted = {k: v for k, v in asdict(new_state).items() if k != "value"}
        if persisted != {k: v for k, v in record.state.items() if k != "value"}:
            # Only a change of state is a write: the value moves every look and is kept in memory.
            with self.plane.db.write() as connection:
                self.repo.save_rule_state(connection, rule.name, asdict(new_state))
        if transition is None:
            return
        message = (
            f"{rule.series} = {value:.4g} {rule.op} {rule.threshold:g}"
            + (f" for {rule.for_s:g}s" if rule.for_s else "")
            if transition == Transition.FIRING
            else f"{rule.series} = {value:.4g}: back within {rule.op} {rule.threshold:g}"
        )
        details = {"window_start": values.get("window_start"), "rows": values.get("rows")}
        with self.plane.db.write() as connection:
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
        if transition == Transition.FIRING:
            for action in rule.actions:
                self._act(live, rule, action, value, message, event_id)

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
                    endpoint, RollbackRequest(reason=f"alert {rule.name}: {message}"), actor=f"alert:{rule.name}"
                )
                outcome["routes"] = [r.model_dump() for r in result.endpoint.spec.routes]
                outcome.update(ok=True, changed=result.changed, message=result.message, revision=result.revision)
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
        self, name: str, *, trigger: str = "manual", window_s: float | None = None, until: float | None = None
    ) -> ReportRecord:
        """A full Evidently drift report of any window (the monitor's, ending now, by default), archived."""
        from workbench.monitoring.reports import archive_report

        live = self.live(name)
        return archive_report(
            self.plane, live.spec, live.reference, trigger=trigger, window_s=window_s, until=until
        )

    # ------------------------------------------------------------------ loop
    def start_loop(self, every: float = 0.25) -> None:
        self._thread = threading.Thread(target=self._loop, args=(every,), name="monitoring", daemon=True)
        self._thread.start()

    def stop_loop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                with self.plane.db.read() as connection:
                    monitors = self.repo.list_monitors(connection)
            except Exception:
                log.exception("monitoring: cannot list monitors")
                continue
            now = time.time()
            for record in monitors:
                name = record.spec.name
                live = self._live.get(name)
                if live is not None and now - live.last_tick < record.spec.every_s:
                    continue
                try:
                    self.tick(name, now=now)
                except (NotFoundError, ValidationError) as exc:
                    log.warning("monitor %s: %s", name, exc)
                    if live is None:  # no reference yet, or no endpoint: look again next interval
                        self._live.pop(name, None)
                except Exception:  # one broken monitor must not stop the others
                    log.exception("monitor %s: tick failed", name)

    # ---------------------------------------------------------------- reads
    def history(self, name: str, limit: int = 500) -> list[dict[str, Any]]:
        live = self.live(name)
        return list(live.history)[-limit:]
