"""Monitors, alert rules (with their live state), alert events, fed-back labels and archived reports.

Methods take the caller's connection, so a change and its audit event share one transaction. Feedback
is keyed by (endpoint, request id): the primary key is what makes "never counted twice" hold even when
two clients post the same label at once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from workbench.errors import ConflictError, NotFoundError
from workbench.records.monitoring import (
    AlertEvent,
    AlertRuleRecord,
    FeedbackItem,
    IndexedRequest,
    MonitorRecord,
    ReportRecord,
)
from workbench.specs.monitor import AlertRuleSpec, MonitorSpec
from workbench.store.schema import (
    alert_events,
    alert_rules,
    feedback,
    monitor_reports,
    monitors,
    request_index,
)

# The records are defined in workbench.records (the client reads them without storage code).
__all__ = [
    "AlertEvent",
    "AlertRuleRecord",
    "FeedbackItem",
    "IndexedRequest",
    "MonitorRecord",
    "MonitoringRepository",
    "ReportRecord",
]


def _at(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


#: (request_id, ts, version, score, routing_key): an indexed request as the feed builds it, no model object.
IndexRow = tuple[str, float, int, float | None, str | None]


class MonitoringRepository:
    # ------------------------------------------------------------ monitors
    def create_monitor(self, connection: Connection, spec: MonitorSpec) -> MonitorRecord:
        now = time.time()
        try:
            with connection.begin_nested():
                connection.execute(
                    insert(monitors).values(
                        name=spec.name,
                        endpoint=spec.endpoint,
                        spec=spec.model_dump_json(),
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            raise ConflictError(f"monitor {spec.name!r} already exists", monitor=spec.name) from None
        return self.get_monitor(connection, spec.name)

    def get_monitor(self, connection: Connection, name: str) -> MonitorRecord:
        row = connection.execute(select(monitors).where(monitors.c.name == name)).mappings().first()
        if row is None:
            raise NotFoundError(f"monitor {name!r} does not exist", monitor=name)
        return MonitorRecord(
            spec=MonitorSpec.model_validate_json(row["spec"]),
            created_at=_at(row["created_at"]),
            updated_at=_at(row["updated_at"]),
        )

    def list_monitors(self, connection: Connection, *, endpoint: str | None = None) -> list[MonitorRecord]:
        statement = select(monitors.c.name).order_by(monitors.c.name)
        if endpoint is not None:
            statement = statement.where(monitors.c.endpoint == endpoint)
        return [self.get_monitor(connection, name) for (name,) in connection.execute(statement).all()]

    def delete_monitor(self, connection: Connection, name: str) -> MonitorRecord:
        record = self.get_monitor(connection, name)
        connection.execute(delete(alert_rules).where(alert_rules.c.monitor == name))
        connection.execute(delete(monitors).where(monitors.c.name == name))
        return record

    # --------------------------------------------------------- alert rules
    def create_rule(self, connection: Connection, spec: AlertRuleSpec) -> AlertRuleRecord:
        self.get_monitor(connection, spec.monitor)
        now = time.time()
        try:
            with connection.begin_nested():
                connection.execute(
                    insert(alert_rules).values(
                        name=spec.name,
                        monitor=spec.monitor,
                        spec=spec.model_dump_json(),
                        state=orjson.dumps({"state": "ok"}).decode(),
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            raise ConflictError(f"alert rule {spec.name!r} already exists", rule=spec.name) from None
        return self.get_rule(connection, spec.name)

    def get_rule(self, connection: Connection, name: str) -> AlertRuleRecord:
        row = connection.execute(select(alert_rules).where(alert_rules.c.name == name)).mappings().first()
        if row is None:
            raise NotFoundError(f"alert rule {name!r} does not exist", rule=name)
        return AlertRuleRecord(
            spec=AlertRuleSpec.model_validate_json(row["spec"]),
            state=orjson.loads(row["state"]),
            created_at=_at(row["created_at"]),
            updated_at=_at(row["updated_at"]),
        )

    def list_rules(self, connection: Connection, *, monitor: str | None = None) -> list[AlertRuleRecord]:
        statement = select(alert_rules.c.name).order_by(alert_rules.c.name)
        if monitor is not None:
            statement = statement.where(alert_rules.c.monitor == monitor)
        return [self.get_rule(connection, name) for (name,) in connection.execute(statement).all()]

    def save_rule_state(
        self,
        connection: Connection,
        name: str,
        state: dict[str, Any],
        *,
        expected: dict[str, Any] | None = None,
    ) -> bool:
        """Store a rule's new state; with ``expected``, only if the stored state is still that one
        (compare-and-set: of two looks that judged the same state, one transition wins)."""
        statement = update(alert_rules).where(alert_rules.c.name == name)
        if expected is not None:
            statement = statement.where(alert_rules.c.state == orjson.dumps(expected).decode())
        result = connection.execute(
            statement.values(state=orjson.dumps(state).decode(), updated_at=time.time())
        )
        return bool(result.rowcount)

    def delete_rule(self, connection: Connection, name: str) -> AlertRuleRecord:
        record = self.get_rule(connection, name)
        connection.execute(delete(alert_rules).where(alert_rules.c.name == name))
        return record

    # -------------------------------------------------------- alert events
    def add_event(
        self,
        connection: Connection,
        *,
        rule: AlertRuleSpec,
        endpoint: str,
        kind: str,
        value: float | None,
        message: str,
        details: Any = None,
        at: float | None = None,
    ) -> int:
        result = connection.execute(
            insert(alert_events).values(
                ts=time.time() if at is None else at,
                rule=rule.name,
                monitor=rule.monitor,
                endpoint=endpoint,
                kind=kind,
                severity=rule.severity.value,
                value=value,
                message=message,
                details=None if details is None else orjson.dumps(details, default=str).decode(),
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def events(
        self,
        connection: Connection,
        *,
        rule: str | None = None,
        monitor: str | None = None,
        endpoint: str | None = None,
        limit: int = 200,
    ) -> list[AlertEvent]:
        statement = select(alert_events).order_by(alert_events.c.id.desc()).limit(limit)
        if rule is not None:
            statement = statement.where(alert_events.c.rule == rule)
        if monitor is not None:
            statement = statement.where(alert_events.c.monitor == monitor)
        if endpoint is not None:
            statement = statement.where(alert_events.c.endpoint == endpoint)
        return [
            AlertEvent(
                id=row["id"],
                at=_at(row["ts"]),
                rule=row["rule"],
                monitor=row["monitor"],
                endpoint=row["endpoint"],
                kind=row["kind"],
                severity=row["severity"],
                value=row["value"],
                message=row["message"],
                details=None if row["details"] is None else orjson.loads(row["details"]),
            )
            for row in connection.execute(statement).mappings()
        ]

    # ------------------------------------------------------------ feedback
    def known_feedback(self, connection: Connection, endpoint: str, request_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        ids = list(request_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = connection.execute(
                select(feedback.c.request_id).where(
                    feedback.c.endpoint == endpoint, feedback.c.request_id.in_(chunk)
                )
            ).all()
            found.update(row[0] for row in rows)
        return found

    def add_feedback(self, connection: Connection, items: Sequence[FeedbackItem], *, actor: str) -> None:
        """Insert all or nothing; a duplicate raises (the transaction rolls the others back)."""
        try:
            with connection.begin_nested():
                connection.execute(
                    insert(feedback),
                    [{**item.model_dump(), "actor": actor} for item in items],
                )
        except IntegrityError:
            raise ConflictError("feedback for some of these requests was already recorded") from None

    def feedback_since(self, connection: Connection, endpoint: str, since: float) -> list[FeedbackItem]:
        rows = connection.execute(
            select(feedback)
            .where(feedback.c.endpoint == endpoint, feedback.c.predicted_at >= since)
            .order_by(feedback.c.predicted_at)
        ).mappings()
        return self._items(rows)

    def feedback_received_after(
        self, connection: Connection, endpoint: str, *, predicted_since: float, received_after: float
    ) -> list[FeedbackItem]:
        """Labels of predictions made since ``predicted_since`` that arrived after ``received_after``."""
        rows = connection.execute(
            select(feedback).where(
                feedback.c.endpoint == endpoint,
                feedback.c.predicted_at >= predicted_since,
                feedback.c.received_at > received_after,
            )
        ).mappings()
        return self._items(rows)

    # ------------------------------------------------------- request index
    def index_requests(
        self, connection: Connection, endpoint: str, rows: Sequence[IndexedRequest | IndexRow]
    ) -> None:
        """Remember request id -> prediction; an id already indexed keeps its first prediction.

        Thousands of rows a second under load: one driver-level ``executemany`` of plain tuples (SQLAlchemy's
        per-row parameter building was most of what indexing cost)."""
        if not rows:
            return
        values = [
            (endpoint, *row)
            if isinstance(row, tuple)
            else (endpoint, row.request_id, row.ts, row.version, row.score, row.routing_key)
            for row in rows
        ]
        columns = "endpoint, request_id, ts, version, score, routing_key"
        if connection.dialect.name == "postgresql":
            sql = f"INSERT INTO request_index ({columns}) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
        else:
            sql = f"INSERT OR IGNORE INTO request_index ({columns}) VALUES (?, ?, ?, ?, ?, ?)"
        connection.exec_driver_sql(sql, values)

    def indexed(
        self, connection: Connection, endpoint: str, request_ids: Sequence[str]
    ) -> dict[str, IndexedRequest]:
        found: dict[str, IndexedRequest] = {}
        ids = list(request_ids)
        for start in range(0, len(ids), 500):
            statement = select(
                request_index.c.request_id,
                request_index.c.ts,
                request_index.c.version,
                request_index.c.score,
                request_index.c.routing_key,
            ).where(
                request_index.c.endpoint == endpoint, request_index.c.request_id.in_(ids[start : start + 500])
            )
            for request_id, ts, version, score, key in connection.execute(statement).all():
                found[request_id] = IndexedRequest(
                    request_id=request_id, ts=ts, version=version, score=score, routing_key=key
                )
        return found

    def index_cursor(self, connection: Connection, endpoint: str) -> float | None:
        """The time of the newest indexed prediction of the endpoint: where indexing resumes."""
        value = connection.execute(
            select(func.max(request_index.c.ts)).where(request_index.c.endpoint == endpoint)
        ).scalar()
        return None if value is None else float(value)

    def prune_index(self, connection: Connection, endpoint: str, before: float) -> int:
        """Forget the endpoint's predictions older than ``before`` (an index range)."""
        result = connection.execute(
            delete(request_index).where(request_index.c.endpoint == endpoint, request_index.c.ts < before)
        )
        return int(result.rowcount or 0)

    @staticmethod
    def _items(rows: Any) -> list[FeedbackItem]:
        return [
            FeedbackItem(
                endpoint=row["endpoint"],
                request_id=row["request_id"],
                version=row["version"],
                label=row["label"],
                predicted_at=row["predicted_at"],
                received_at=row["received_at"],
            )
            for row in rows
        ]

    # ------------------------------------------------------------- reports
    def add_report(
        self,
        connection: Connection,
        *,
        monitor: str,
        window: tuple[float, float],
        trigger: str,
        html_path: str,
        json_path: str,
        summary: dict[str, Any],
    ) -> ReportRecord:
        result = connection.execute(
            insert(monitor_reports).values(
                monitor=monitor,
                ts=time.time(),
                window_start=window[0],
                window_end=window[1],
                trigger=trigger,
                html_path=html_path,
                json_path=json_path,
                summary=orjson.dumps(summary, default=str).decode(),
            )
        )
        report_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        return self.reports(connection, monitor=monitor, report_id=report_id)[0]

    def reports(
        self, connection: Connection, *, monitor: str, report_id: int | None = None, limit: int = 50
    ) -> list[ReportRecord]:
        statement = (
            select(monitor_reports)
            .where(monitor_reports.c.monitor == monitor)
            .order_by(monitor_reports.c.id.desc())
            .limit(limit)
        )
        if report_id is not None:
            statement = statement.where(monitor_reports.c.id == report_id)
        return [
            ReportRecord(
                id=row["id"],
                monitor=row["monitor"],
                at=_at(row["ts"]),
                window_start=_at(row["window_start"]),
                window_end=_at(row["window_end"]),
                trigger=row["trigger"],
                html_path=row["html_path"],
                json_path=row["json_path"],
                summary=orjson.loads(row["summary"]),
            )
            for row in connection.execute(statement).mappings()
        ]
