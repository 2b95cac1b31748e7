"""The monitoring domain facade: monitors, alert rules, feedback, reports; every change audited.

The API, client and CLI call this; it validates eagerly (an unknown series, a window shorter than the
scrape interval, a reference dataset that does not match the signature are refused at creation, before
anything is stored) and leaves the periodic work to :class:`~workbench.monitoring.engine.MonitorEngine`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workbench.errors import ConflictError, NotFoundError, ValidationError
from workbench.experiments.service import OutcomeItem
from workbench.monitoring.engine import MonitorEngine
from workbench.monitoring.reference import build_reference
from workbench.specs.monitor import AlertRuleSpec, MonitorSpec, RunbookAction
from workbench.store.monitoring import (
    AlertEvent,
    AlertRuleRecord,
    FeedbackItem,
    MonitoringRepository,
    MonitorRecord,
    ReportRecord,
)

if TYPE_CHECKING:
    from workbench.monitoring.plane import MonitoringPlane

MAX_FEEDBACK_BATCH = 10_000


class Label(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: str = Field(min_length=1, max_length=200)
    label: float = Field(allow_inf_nan=False, description="the ground truth: 0/1 for a classifier")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str
    labels: list[Label] = Field(default_factory=list, max_length=MAX_FEEDBACK_BATCH)
    #: Business outcomes for the endpoint's running (or paused) A/B experiment, by unit or request id.
    outcomes: list[OutcomeItem] = Field(default_factory=list, max_length=MAX_FEEDBACK_BATCH)

    @model_validator(mode="after")
    def _something(self) -> FeedbackRequest:
        if not self.labels and not self.outcomes:
            raise ValueError("feedback carries labels, outcomes or both")
        return self


class MonitoringService:
    def __init__(self, plane: MonitoringPlane) -> None:
        self.plane = plane
        self.repo = MonitoringRepository()
        self.engine = MonitorEngine(plane)

    # ------------------------------------------------------------ monitors
    def create_monitor(self, spec: MonitorSpec, *, actor: str, reason: str | None = None) -> MonitorRecord:
        self.plane.get_endpoint(spec.endpoint)  # 404 for an unknown endpoint
        with self.plane.db.read() as connection:
            try:
                self.repo.get_monitor(connection, spec.name)
            except NotFoundError:
                pass
            else:
                raise ConflictError(f"monitor {spec.name!r} already exists", monitor=spec.name)
        build_reference(self.plane, spec)  # refuses a reference that does not match, before storing
        with self.plane.db.write() as connection:
            record = self.repo.create_monitor(connection, spec)
            self.plane.audit.record(
                connection,
                actor=actor,
                action="monitor.create",
                target=f"endpoint:{spec.endpoint}",
                after=spec.model_dump(mode="json"),
                reason=reason,
                link=f"monitor:{spec.name}",
            )
        return record

    def monitors(self, *, endpoint: str | None = None) -> list[MonitorRecord]:
        with self.plane.db.read() as connection:
            return self.repo.list_monitors(connection, endpoint=endpoint)

    def monitor(self, name: str) -> MonitorRecord:
        with self.plane.db.read() as connection:
            return self.repo.get_monitor(connection, name)

    def delete_monitor(self, name: str, *, actor: str, reason: str | None = None) -> MonitorRecord:
        with self.plane.db.write() as connection:
            record = self.repo.delete_monitor(connection, name)
            self.plane.audit.record(
                connection,
                actor=actor,
                action="monitor.delete",
                target=f"endpoint:{record.spec.endpoint}",
                before=record.spec.model_dump(mode="json"),
                reason=reason,
                link=f"monitor:{name}",
            )
        self.engine.forget(name)
        return record

    def status(self, name: str, *, history: int = 0) -> dict[str, Any]:
        """The monitor, its latest values (computed now), its rules' states, and optionally history."""
        record = self.monitor(name)
        values = self.engine.tick(name, act=False)
        with self.plane.db.read() as connection:
            rules = self.repo.list_rules(connection, monitor=name)
        out: dict[str, Any] = {
            "monitor": record.model_dump(mode="json"),
            "reference": {
                "model": (live := self.engine.live(name)).reference.model,
                "version": live.reference.version,
                "rows": len(live.reference.frame),
                "task": live.reference.task,
                "columns": list(live.reference.columns),
                "predictions": live.reference.predictions is not None,
                "scoring_error": live.reference.scoring_error,
                "baseline": live.reference.baseline,
            },
            "values": values,
            "rules": [
                {**dumped, "state": {**dumped["state"], "value": live.rule_values.get(r.spec.name)}}
                for r in rules
                if (dumped := r.model_dump(mode="json"))
            ],
        }
        if history:
            out["history"] = self.engine.history(name, history)
        return out

    # --------------------------------------------------------- alert rules
    def create_rule(self, spec: AlertRuleSpec, *, actor: str, reason: str | None = None) -> AlertRuleRecord:
        monitor = self.monitor(spec.monitor).spec
        if spec.series.startswith("drift:"):
            column = spec.series.removeprefix("drift:")
            watched = self.engine.live(spec.monitor).reference.columns
            if column not in watched:
                raise ValidationError(
                    f"series {spec.series!r}: monitor {spec.monitor!r} does not watch column {column!r}",
                    watched=list(watched),
                )
        if spec.for_s and spec.for_s < monitor.every_s:
            raise ValidationError(
                f"for_s ({spec.for_s:g}s) is shorter than the monitor's scrape interval ({monitor.every_s:g}s)"
            )
        for action in spec.actions:
            if isinstance(action, RunbookAction):
                # A runbook that does not exist, or a misspelt parameter, is refused now, not at 3 a.m.
                self.plane.runbooks.runbook(action.runbook).check_parameters(action.parameters)
        with self.plane.db.write() as connection:
            record = self.repo.create_rule(connection, spec)
            self.plane.audit.record(
                connection,
                actor=actor,
                action="alert_rule.create",
                target=f"endpoint:{monitor.endpoint}",
                after=spec.model_dump(mode="json"),
                reason=reason,
                link=f"alert-rule:{spec.name}",
            )
        return record

    def rules(self, *, monitor: str | None = None) -> list[AlertRuleRecord]:
        with self.plane.db.read() as connection:
            return self.repo.list_rules(connection, monitor=monitor)

    def delete_rule(self, name: str, *, actor: str, reason: str | None = None) -> AlertRuleRecord:
        with self.plane.db.write() as connection:
            record = self.repo.delete_rule(connection, name)
            self.plane.audit.record(
                connection,
                actor=actor,
                action="alert_rule.delete",
                target=f"monitor:{record.spec.monitor}",
                before=record.spec.model_dump(mode="json"),
                reason=reason,
            )
        return record

    def alerts(
        self,
        *,
        rule: str | None = None,
        monitor: str | None = None,
        endpoint: str | None = None,
        limit: int = 200,
    ) -> list[AlertEvent]:
        with self.plane.db.read() as connection:
            return self.repo.events(connection, rule=rule, monitor=monitor, endpoint=endpoint, limit=limit)

    # ------------------------------------------------------------ feedback
    def feedback(self, request: FeedbackRequest, *, actor: str) -> dict[str, Any]:
        """Record ground truth by request id: all or nothing; unknown ids and duplicates are refused.

        Outcomes go to the endpoint's experiment, after the labels (checked first: no experiment there
        refuses the whole call before any label is kept)."""
        self.plane.get_endpoint(request.endpoint)
        experiments = self.plane.experiments
        if request.outcomes and experiments.active_on(request.endpoint) is None:
            raise ConflictError(
                f"endpoint {request.endpoint!r} has no running or paused experiment for these outcomes",
                endpoint=request.endpoint,
            )
        answer: dict[str, Any] = {"endpoint": request.endpoint, "accepted": 0}
        if request.labels:
            answer.update(self._labels(request, actor=actor))
        if request.outcomes:
            answer["outcomes"] = experiments.add_endpoint_outcomes(
                request.endpoint, request.outcomes, actor=actor
            )
        return answer

    def _labels(self, request: FeedbackRequest, *, actor: str) -> dict[str, Any]:
        ids = [label.request_id for label in request.labels]
        repeated = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
        if repeated:
            raise ValidationError(
                f"{len(repeated)} request id(s) appear more than once in this batch", repeated=repeated[:50]
            )
        known = self.engine.feed(request.endpoint).lookup(ids)
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise NotFoundError(
                f"{len(unknown)} request id(s) are not in the prediction log of {request.endpoint!r} "
                "(unknown, or older than the feedback window)",
                unknown=unknown[:50],
            )
        with self.plane.db.write() as connection:
            duplicates = self.repo.known_feedback(connection, request.endpoint, ids)
            if duplicates:
                raise ConflictError(
                    f"{len(duplicates)} request id(s) already have feedback; a label is never counted twice",
                    duplicates=sorted(duplicates)[:50],
                )
            now = time.time()
            items = [
                FeedbackItem(
                    endpoint=request.endpoint,
                    request_id=label.request_id,
                    version=known[label.request_id].version,
                    label=label.label,
                    predicted_at=known[label.request_id].ts,
                    received_at=now,
                )
                for label in request.labels
            ]
            self.repo.add_feedback(connection, items, actor=actor)
            self.plane.audit.record(
                connection,
                actor=actor,
                action="feedback.add",
                target=f"endpoint:{request.endpoint}",
                after={"labels": len(items)},
            )
        return {"endpoint": request.endpoint, "accepted": len(items)}

    # ------------------------------------------------------- labelled data
    def labelled(self, endpoint: str, *, since: float, until: float | None = None) -> dict[str, Any]:
        """Logged requests in [since, until] that have fed-back labels: the data retraining learns from."""
        from workbench.monitoring.labelled import labelled_rows

        self.plane.get_endpoint(endpoint)
        end = time.time() if until is None else until
        with self.plane.db.read() as connection:
            labels = self.repo.feedback_since(connection, endpoint, since)
        directory = self.plane.settings.home / "predictions" / endpoint
        result = labelled_rows(directory, labels, since=since, until=end)
        result["endpoint"] = endpoint
        return result

    # -------------------------------------------------------------- series
    def traffic(self, endpoints: list[str] | None = None, *, since: float | None = None) -> dict[str, Any]:
        """Per-second points since ``since`` and running totals, per endpoint, from memory.

        One call answers for every endpoint (or those named), so a dashboard's single poller costs the
        control plane one request a second whatever the number of endpoints or open pages. Each feed is
        polled first: a request the replica's writer has flushed is counted in this answer.
        """
        names = [e.spec.name for e in self.plane.list_endpoints()]
        if endpoints:
            unknown = sorted(set(endpoints) - set(names))
            if unknown:
                raise NotFoundError(f"no endpoint named {', '.join(map(repr, unknown))}")
            names = [n for n in names if n in set(endpoints)]
        answer: dict[str, Any] = {}
        for name in names:
            feed = self.engine.feed(name)
            feed.poll()
            answer[name] = feed.live.since(since, now=time.time())
        return {"now": time.time(), "since": since, "endpoints": answer}

    def series(self, endpoint: str, *, window_s: float = 300.0, step_s: float = 10.0) -> dict[str, Any]:
        """Requests/s, error rate, p50/p95/p99 per step over the last ``window_s``, per version and all."""
        from workbench.monitoring.series import check_steps, series_from_records
        from workbench.telemetry import read_records

        check_steps(window_s, step_s)
        self.plane.get_endpoint(endpoint)
        end = time.time()
        start = end - window_s
        records = read_records(self.plane.settings.home / "predictions" / endpoint, since=start, until=end)
        return {
            "endpoint": endpoint,
            "start": start,
            "end": end,
            "step_s": step_s,
            "series": series_from_records(records, start=start, end=end, step_s=step_s),
        }

    # ------------------------------------------------------------- history
    def history(
        self,
        *,
        monitors: list[str] | None = None,
        endpoint: str | None = None,
        series: list[str] | None = None,
        keys: list[str] | None = None,
        start: float | None = None,
        end: float | None = None,
        step_s: float | None = None,
    ) -> dict[str, Any]:
        """Persisted series of monitors over ``[start, end]``, aggregated per ``step_s``.

        Without ``series``, the monitor-wide series (key ``all``); ``series=["drift"]`` gives one
        series per watched column (a heatmap's rows); a traffic series without ``keys`` gives ``all``
        and each version. Monitors default to every monitor (of ``endpoint``, when given).
        """
        from workbench.monitoring.history import AGGREGATIONS, check_names, check_size, plan
        from workbench.store.history import ALL

        query = plan(start=start, end=end, step_s=step_s, now=time.time())
        self.engine.recorder.flush()  # what this process computed so far is readable at once
        monitors = check_names("monitor", monitors)
        series = check_names("series", series)
        keys = check_names("key", keys)
        if series is None and keys is None:
            keys = [ALL]
        with self.plane.db.read() as connection:
            known = {m.spec.name: m.spec.endpoint for m in self.repo.list_monitors(connection)}
            if endpoint is not None:
                mine = {name for name, watched in known.items() if watched == endpoint}
                monitors = sorted(mine if monitors is None else mine & set(monitors))
            rows = self.engine.history_repo.find(connection, monitors=monitors, series=series, keys=keys)
            check_size(query, len(rows))
            found = self.engine.history_repo.aggregate(
                connection, [r.id for r in rows], start=query.start, end=query.end, step_s=query.step_s
            )
        out: dict[str, dict[str, Any]] = {}
        for name in monitors or []:
            if name in known:
                out[name] = {"endpoint": known[name], "series": {}}
        for row in rows:
            entry = out.setdefault(row.monitor, {"endpoint": known.get(row.monitor), "series": {}})
            points = found.get(row.id)
            if points is not None:
                entry["series"].setdefault(row.series, {})[row.key] = points.to_dict()
        return {
            "start": query.start,
            "end": query.end,
            "step_s": query.step_s,
            "aggregations": list(AGGREGATIONS),
            "monitors": out,
        }

    # ------------------------------------------------------------- reports
    def report(
        self,
        name: str,
        *,
        window_s: float | None = None,
        until: float | None = None,
        actor: str | None = None,
    ) -> ReportRecord:
        if window_s is not None and window_s <= 0:
            raise ValidationError("window_s must be > 0")
        if until is not None and until > time.time() + 1:
            raise ValidationError("until is in the future: a report covers logged traffic")
        return self.engine.report(name, trigger="manual", window_s=window_s, until=until, actor=actor)

    def reports(self, name: str) -> list[ReportRecord]:
        self.monitor(name)
        with self.plane.db.read() as connection:
            return self.repo.reports(connection, monitor=name)
