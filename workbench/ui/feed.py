"""One watcher of the control plane per dashboard process, fanned out to every open page.

A page never calls the control plane to stay current: the feed polls it once a second for the whole
process (live traffic of every endpoint in one call, the audit log as a cursor) and re-reads the state
(endpoints, rollouts, alert rules, runbook runs, replicas) only when the audit log shows a change, or
every ``refresh_s`` for what changes without an audit event (an alert state, a replica's restart).
The load on the control plane is therefore the same with one page open or fifty.

Listeners receive each :class:`Update` on the feed's thread; the dashboard server hands it to each
session's document on its own event loop (``workbench.ui.session``), a notebook applies it directly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from workbench.client import Client
from workbench.errors import WorkbenchError
from workbench.records.audit import AuditEvent
from workbench.records.experiments import ExperimentRecord, ExperimentState
from workbench.records.rollouts import RolloutAnalysis
from workbench.revisions.model import Revision
from workbench.ui.buffers import BACKFILL_SERIES, KEEP_S, SeriesBuffer, TrafficBuffer, traffic_from_history
from workbench.ui.snapshot import Listener, Snapshot, Update, is_active

__all__ = ["DashboardFeed", "Listener", "Snapshot", "Update", "is_active"]

log = logging.getLogger("workbench.ui")

AUDIT_KEEP = 500
#: Per-tick analyses kept per rollout (a tick every few seconds: hours of a canary).
ANALYSES_KEEP = 5000
#: The monitor series the drift page draws, read for every monitor in one call every HISTORY_EVERY_S.
MONITOR_SERIES = (
    "drift",
    "dataset_drift",
    "drift_share",
    "prediction_drift",
    "accuracy",
    "auc",
    "mae",
    "estimated_accuracy",
    "estimated_auc",
    "labelled",
    "rows",
    "feature_age_max_s",
    "feature_lookup_p95_ms",
)
HISTORY_EVERY_S = 5.0
#: How often the feed polls while no page is open. Its traffic answer costs the control plane (each
#: endpoint's log is read to answer it): a dashboard server nobody looks at took a fifth of the control
#: plane's CPU under load. Nothing is lost between polls (traffic is read from a cursor), and a page
#: that subscribes wakes the feed at once.
IDLE_EVERY_S = 10.0
#: The longest a page waits for a fresh poll after an idle spell (``DashboardFeed.fresh``).
FRESH_WAIT_S = 5.0
#: Looks kept per experiment (one every experiment_look_s: hours of an experiment).
LOOKS_KEEP = 2000
ACTIVE_EXPERIMENT = (ExperimentState.RUNNING, ExperimentState.PAUSED)
#: Monitor points are re-read with this much overlap: a look stamped before the last read may be
#: written just after it; points already held (same series, key and time) are not added twice.
HISTORY_OVERLAP_S = 30.0


class DashboardFeed:
    """Polls one control plane for the whole process; pages subscribe and read its latest state."""

    def __init__(
        self,
        client_factory: Callable[[], Client],
        *,
        every_s: float = 1.0,
        refresh_s: float = 10.0,
        keep_s: int = KEEP_S,
        monitor_history: bool = True,
        idle_every_s: float = IDLE_EVERY_S,
    ) -> None:
        self._client_factory = client_factory
        self.every_s = every_s
        self.idle_every_s = max(every_s, idle_every_s)
        self.refresh_s = refresh_s
        self.keep_s = keep_s
        # Charts need the monitors' persisted series (and an hour of traffic backfilled from them); a
        # sidebar of live numbers needs neither, and saves the control plane those reads.
        self.monitor_history = monitor_history
        self.snapshot = Snapshot()
        self.totals: dict[str, dict[str, dict[str, int]]] = {}
        self.audit: deque[AuditEvent] = deque(maxlen=AUDIT_KEEP)  # newest last
        self.polls = 0
        self.requests = 0  # calls made to the control plane, for the load benchmark
        self._traffic: dict[str, TrafficBuffer] = {}
        self._monitors: dict[str, SeriesBuffer] = {}
        self._history_next: float | None = None
        self._last_history = 0.0
        self._analyses: dict[str, deque[RolloutAnalysis]] = {}
        self._ending: set[str] = set()
        self._traffic_next: float | None = None
        self._audit_cursor: int | None = None
        self._last_refresh = 0.0
        self._seq = 0
        self._listeners: dict[int, Listener] = {}
        self._next_listener = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: Client | None = None
        self.ready = threading.Event()  # set after the first complete poll
        self._polled = threading.Condition()
        self._last_poll_started = -float("inf")  # monotonic start of the last completed poll

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="dashboard-feed", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._client is not None:
            self._client.close()
            self._client = None  # a feed polled again after a stop makes a new client

    def poke(self) -> None:
        """Poll now (after an action), rather than at the next second."""
        self._wake.set()

    def fresh(self, timeout: float = FRESH_WAIT_S, *, newer: bool = False) -> bool:
        """Before a page draws from the feed: if no poll has started within ``every_s`` (no page was open,
        so the feed polled every ``idle_every_s``), wake it and wait for a poll that starts now. A page
        opened for an endpoint deployed a few seconds earlier would otherwise draw a state without it.
        ``newer``: wait for a poll that starts now even if one started within ``every_s``: what was done
        just before the page was asked for is then in what it draws (a deploy takes a fraction of a
        second). False if that poll did not finish within ``timeout`` (the page then draws what the feed
        holds)."""
        asked = time.monotonic()
        with self._polled:
            if self._thread is None or (not newer and asked - self._last_poll_started <= self.every_s):
                return True
        self._wake.set()
        with self._polled:
            return self._polled.wait_for(lambda: self._last_poll_started >= asked, timeout)

    # ---------------------------------------------------------- subscribers
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            token = self._next_listener
            self._next_listener += 1
            self._listeners[token] = listener
        self._wake.set()  # the first page after an idle spell: poll now, not in up to idle_every_s

        def unsubscribe() -> None:
            with self._lock:
                self._listeners.pop(token, None)

        return unsubscribe

    @property
    def interval(self) -> float:
        """Seconds between polls: ``every_s`` while a page is open, ``idle_every_s`` while none is."""
        return self.every_s if self.subscribers else self.idle_every_s

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._listeners)

    # ---------------------------------------------------------------- reads
    def traffic(self, endpoint: str, seconds: float = 900.0) -> dict[str, dict[str, list[Any]]]:
        with self._lock:
            buffer = self._traffic.get(endpoint)
            return buffer.window(seconds, now=time.time()) if buffer is not None else {}

    def monitor_series(self, monitor: str) -> dict[str, dict[str, dict[str, list[float]]]]:
        """The monitor's held series: name -> key (``all``, a column) -> ``{"ts", "value"}``."""
        with self._lock:
            buffer = self._monitors.get(monitor)
            return buffer.copy() if buffer is not None else {}

    def analyses(self, rollout_id: str) -> list[RolloutAnalysis]:
        """Every tick of the rollout the feed holds, oldest first."""
        with self._lock:
            return list(self._analyses.get(rollout_id, ()))

    def recent_audit(self, limit: int = 200) -> list[AuditEvent]:
        """Newest first."""
        with self._lock:
            return list(self.audit)[-limit:][::-1]

    # ----------------------------------------------------------------- poll
    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.poll_once()
            except Exception:  # a poll must never kill the feed: the next one tries again
                log.exception("dashboard feed: poll failed")
            with self._polled:
                self._last_poll_started = started
                self._polled.notify_all()
            self._wake.wait(max(0.0, self.interval - (time.monotonic() - started)))
            self._wake.clear()

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        self.requests += 1
        return getattr(self._client, method)(*args, **kwargs)

    def poll_once(self) -> Update | None:
        """One round: traffic and audit always, the state when something changed; then notify."""
        changed: set[str] = set()
        try:
            traffic = self._call("traffic", since=self._traffic_next)
            fresh_audit = self._poll_audit()
            due = time.monotonic() - self._last_refresh >= self.refresh_s
            if fresh_audit or due or not self.ready.is_set() or self.snapshot.error:
                models_changed = any(e.action.startswith("model.") for e in fresh_audit)
                touched = {
                    e.target.removeprefix("endpoint:")
                    for e in fresh_audit
                    if e.target.startswith("endpoint:")
                }
                snapshot = self._read_state(
                    models=models_changed or not self.snapshot.models, touched=touched
                )
                self._last_refresh = time.monotonic()
                changed.add("state")
            elif self._has_active_rollout():
                # A rollout moves between audit events (each tick's verdict): its record and events only.
                snapshot = self._read_rollouts()
                changed.add("state")
            else:
                snapshot = self.snapshot
            if self._has_running_experiment(snapshot):
                # A running experiment is looked at between audit events: its new looks (and decision).
                looked = self._read_experiments(snapshot)
                if looked is not snapshot:
                    snapshot = looked
                    changed.add("experiments")
        except WorkbenchError as exc:
            snapshot = replace(self.snapshot, error=str(exc))
            with self._lock:
                self.snapshot = snapshot
            self._notify(Update(self._next_seq(), snapshot, frozenset({"error"}), {}, self.totals))
            return None
        if fresh_audit:
            changed.add("audit")
        try:
            new_analyses = self._poll_analyses(snapshot)
            monitor_points = self._poll_history(snapshot) if self.monitor_history else {}
        except WorkbenchError as exc:
            log.warning("dashboard feed: %s", exc)
            new_analyses, monitor_points = {}, {}
        if new_analyses:
            changed.add("analyses")
        if monitor_points:
            changed.add("monitors")
        if not self.ready.is_set() and self.monitor_history:
            self._backfill(traffic, snapshot)
        new_points: dict[str, dict[str, dict[str, list[Any]]]] = {}
        with self._lock:
            for name, answer in traffic.get("endpoints", {}).items():
                # Only seconds newer than held: the cursor below is the oldest over all endpoints.
                points = self._traffic.setdefault(name, TrafficBuffer(self.keep_s)).extend(
                    answer.get("points", {})
                )
                if points:
                    new_points[name] = points
                self.totals[name] = answer.get("totals", {})
            # An endpoint with no traffic yet has sealed nothing (through = -1): it must not pull the
            # shared cursor back to the start, which would re-read every endpoint's whole window.
            nexts = [
                a["next"]
                for a in traffic.get("endpoints", {}).values()
                if a.get("next") is not None and a.get("through", -1) >= 0
            ]
            if nexts:
                self._traffic_next = float(min(nexts))
            for gone in set(self._traffic) - {e.spec.name for e in snapshot.endpoints}:
                if "state" in changed:
                    del self._traffic[gone]
            self.audit.extend(fresh_audit)
            self.snapshot = snapshot
            self.polls += 1
        if new_points:
            changed.add("traffic")
        update = Update(
            self._next_seq(),
            snapshot,
            frozenset(changed),
            new_points,
            dict(self.totals),
            tuple(fresh_audit),
            new_analyses,
            monitor_points,
        )
        self.ready.set()
        self._notify(update)
        return update

    def _next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def _has_active_rollout(self) -> bool:
        return any(is_active(r) for r in self.snapshot.rollouts)

    def _backfill(self, traffic: dict[str, Any], snapshot: Snapshot) -> None:
        """Fill each endpoint's buffer with the hour before what the live fold holds, from the persisted
        monitor series (a point per monitor look), once, before the first live points."""
        firsts = [
            min(column["ts"])
            for answer in traffic.get("endpoints", {}).values()
            for column in answer.get("points", {}).values()
            if column.get("ts")
        ]
        end = min(firsts) if firsts else time.time()
        start = time.time() - self.keep_s
        monitors = {m.spec.name: m.spec.endpoint for m in snapshot.monitors}
        if end - start < 1 or not monitors:
            return
        answer = self._history(list(monitors), series=list(BACKFILL_SERIES), start=start, end=end - 0.001)
        done: set[str] = set()
        with self._lock:
            for monitor, history in answer.items():
                endpoint = monitors.get(monitor)
                if endpoint is None or endpoint in done:  # one monitor's view of an endpoint is enough
                    continue
                done.add(endpoint)
                buffer = self._traffic.setdefault(endpoint, TrafficBuffer(self.keep_s))
                buffer.extend(traffic_from_history(history.get("series", {})))

    def _poll_analyses(self, snapshot: Snapshot) -> dict[str, tuple[RolloutAnalysis, ...]]:
        """New ticks of active rollouts (every poll) and of the five latest (once, when first seen)."""
        fresh: dict[str, tuple[RolloutAnalysis, ...]] = {}
        for rollout in snapshot.rollouts[:5] if snapshot.rollouts else ():
            with self._lock:
                held = self._analyses.get(rollout.id)
            if held is not None and not is_active(rollout) and rollout.id not in self._ending:
                continue
            after = held[-1].id if held else None
            rows: list[RolloutAnalysis] = self._call("rollout_analyses", rollout.id, after_id=after)
            with self._lock:
                target = self._analyses.setdefault(rollout.id, deque(maxlen=ANALYSES_KEEP))
                target.extend(rows)
            if rows:
                fresh[rollout.id] = tuple(rows)
        # A rollout that just ended gets one more read (its last tick), then no more.
        self._ending = {r.id for r in snapshot.rollouts[:5] if is_active(r)}
        with self._lock:
            for stale in set(self._analyses) - {r.id for r in snapshot.rollouts[:5]}:
                del self._analyses[stale]
        return fresh

    def _poll_history(self, snapshot: Snapshot) -> dict[str, dict[str, dict[str, dict[str, list[Any]]]]]:
        """Persisted monitor series: a new monitor's last hour once, then what every monitor gained
        (with overlap), in one call every ``HISTORY_EVERY_S``."""
        if time.monotonic() - self._last_history < HISTORY_EVERY_S:
            return {}
        self._last_history = time.monotonic()
        now = time.time()
        names = [m.spec.name for m in snapshot.monitors]
        with self._lock:
            new = [name for name in names if name not in self._monitors]
            known = [name for name in names if name in self._monitors]
        answers: dict[str, Any] = {}
        if new:
            answers.update(self._history(new, series=list(MONITOR_SERIES), start=now - self.keep_s, end=now))
        if known:
            start = (self._history_next or now) - HISTORY_OVERLAP_S
            answers.update(self._history(known, series=list(MONITOR_SERIES), start=start, end=now))
        self._history_next = now
        fresh: dict[str, dict[str, dict[str, dict[str, list[Any]]]]] = {}
        with self._lock:
            for name, monitor in answers.items():
                buffer = self._monitors.setdefault(name, SeriesBuffer(self.keep_s))
                gained = buffer.merge(monitor.get("series", {}))
                if gained:
                    fresh[name] = gained
        return fresh

    def _history(self, monitors: list[str], *, series: list[str], start: float, end: float) -> dict[str, Any]:
        """``monitor → {"series": ...}`` at one-second steps. One call for all; when the answer would be
        too big for one (an hour of many monitors), one call per monitor; a monitor that cannot be read
        (deleted meanwhile) is left out and logged."""
        try:
            answer = self._call(
                "monitor_history", monitor=monitors, series=series, start=start, end=end, step_s=1.0
            )
            return dict(answer.get("monitors", {}))
        except WorkbenchError as exc:
            if len(monitors) == 1:
                log.warning("dashboard feed: no history of monitor %s: %s", monitors[0], exc)
                return {}
        out: dict[str, Any] = {}
        for name in monitors:
            out.update(self._history([name], series=series, start=start, end=end))
        return out

    def _poll_audit(self) -> list[AuditEvent]:
        if self._audit_cursor is None:  # first poll: the recent past, then follow
            recent: list[AuditEvent] = self._call("audit", limit=AUDIT_KEEP)
            events = sorted(recent, key=lambda e: e.id)
            self._audit_cursor = events[-1].id if events else 0
            return events
        events = self._call("audit", after_id=self._audit_cursor, oldest_first=True, limit=1000)
        if events:
            self._audit_cursor = events[-1].id
        return list(events)

    @staticmethod
    def _has_running_experiment(snapshot: Snapshot) -> bool:
        return any(e.state == ExperimentState.RUNNING for e in snapshot.experiments)

    def _experiment_looks(
        self, experiments: tuple[ExperimentRecord, ...], held: dict[str, tuple[dict[str, Any], ...]]
    ) -> dict[str, tuple[dict[str, Any], ...]]:
        """New looks of the active experiments (and of the five newest, once), read after the last held."""
        wanted = [e for e in experiments if e.state in ACTIVE_EXPERIMENT] + list(experiments[:5])
        looks: dict[str, tuple[dict[str, Any], ...]] = {}
        for record in wanted:
            if record.name in looks:
                continue
            known = held.get(record.name, ())
            if known and record.state not in ACTIVE_EXPERIMENT:
                looks[record.name] = known
                continue
            after = known[-1]["ts"] if known else None
            fresh = self._call("experiment_looks", record.name, limit=LOOKS_KEEP, after=after)
            looks[record.name] = (*known, *fresh)[-LOOKS_KEEP:]
        return looks

    def _read_experiments(self, snapshot: Snapshot) -> Snapshot:
        experiments = tuple(reversed(self._call("experiments")))
        looks = self._experiment_looks(experiments, snapshot.experiment_looks)
        if experiments == snapshot.experiments and all(
            len(looks.get(n, ())) == len(snapshot.experiment_looks.get(n, ())) for n in looks
        ):
            return snapshot
        return replace(snapshot, experiments=experiments, experiment_looks=looks, at=time.time())

    def _read_rollouts(self) -> Snapshot:
        rollouts = tuple(self._call("rollouts"))
        details = dict(self.snapshot.rollout_details)
        for rollout in rollouts:
            if is_active(rollout):
                details[rollout.id] = self._call("rollout", rollout.id)
        return replace(self.snapshot, rollouts=rollouts, rollout_details=details, at=time.time(), error=None)

    def _read_state(self, *, models: bool, touched: set[str]) -> Snapshot:
        """The present state; the model list (MLflow, the slowest read) only when it may have changed."""
        endpoints = tuple(self._call("list_endpoints"))
        rollouts = tuple(self._call("rollouts"))
        details = {r.id: self._call("rollout", r.id) for r in rollouts if is_active(r)}
        for rollout in rollouts[:5]:  # the evidence of a rollout that just ended stays visible
            if rollout.id not in details:
                details[rollout.id] = self.snapshot.rollout_details.get(rollout.id) or self._call(
                    "rollout", rollout.id
                )
        histories: dict[str, tuple[Revision, ...]] = {}
        for record in endpoints:  # revision history: re-read only for endpoints the audit log names
            name = record.spec.name
            known = self.snapshot.histories.get(name)
            if known is None or name in touched or (known and known[0].revision != record.revision):
                try:
                    histories[name] = tuple(self._call("history", name, limit=200))
                except WorkbenchError:
                    continue
            else:
                histories[name] = known
        replicas: dict[str, list[dict[str, Any]]] = {}
        for record in endpoints:
            try:
                replicas[record.spec.name] = self._call("endpoint_status", record.spec.name).get(
                    "replicas", []
                )
            except WorkbenchError:  # deleted between the two calls
                continue
        experiments = tuple(reversed(self._call("experiments")))
        return Snapshot(
            at=time.time(),
            experiments=experiments,
            experiment_looks=self._experiment_looks(experiments, self.snapshot.experiment_looks),
            endpoints=endpoints,
            rollouts=rollouts,
            rollout_details=details,
            rules=tuple(self._call("alert_rules")),
            alerts=tuple(self._call("alerts", limit=100)),
            monitors=tuple(self._call("monitors")),
            runs=tuple(self._call("runbook_runs", limit=50)),
            replicas=replicas,
            histories=histories,
            **(
                self._read_models()
                if models
                else {
                    "models": self.snapshot.models,
                    "model_versions": self.snapshot.model_versions,
                    "optimizations": self.snapshot.optimizations,
                }
            ),
        )

    def _read_models(self) -> dict[str, Any]:
        infos = self._call("list_models")
        choices: dict[str, tuple[tuple[str, int], ...]] = {}
        for info in infos:
            by_version: dict[int, list[str]] = {}
            for alias, version in info.aliases.items():
                by_version.setdefault(version, []).append(alias)
            choices[info.name] = tuple(
                (f"v{v}" + "".join(f" @{a}" for a in sorted(by_version.get(v, []))), v)
                for v in range(info.latest_version or 0, 0, -1)
            )
        return {
            "models": tuple(info.name for info in infos),
            "model_versions": choices,
            # Optimisations change only with model.* audit events, as the model list does.
            "optimizations": tuple(self._call("optimizations", limit=200)),
        }

    def _notify(self, update: Update) -> None:
        with self._lock:
            listeners = list(self._listeners.values())
        for listener in listeners:
            try:
                listener(update)
            except Exception:
                log.exception("dashboard feed: a listener failed")
