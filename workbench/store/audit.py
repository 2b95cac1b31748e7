"""The append-only audit log: who did what to which target, the state before and after, and why.

Writers pass the connection of the transaction that makes the change, so the change and its audit
event commit together: there is no change without its event and no event for a change that failed.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select

from workbench.errors import ValidationError
from workbench.records.audit import AuditEvent
from workbench.store.engine import Database
from workbench.store.schema import audit_events

# The records are defined in workbench.records (the client reads them without storage code).
__all__ = ["AuditEvent", "AuditLog"]

MAX_QUERY_LIMIT = 10_000


def _dump(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS).decode()


def _load(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


def _to_epoch(value: datetime | float | None, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    raise ValidationError(f"{name} must be a datetime or epoch seconds", field=name)


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
        self,
        connection: Connection,
        *,
        actor: str,
        action: str,
        target: str,
        before: Any = None,
        after: Any = None,
        reason: str | None = None,
        link: str | None = None,
        at: float | None = None,
    ) -> int:
        """Append an event inside the caller's transaction; returns its id."""
        result = connection.execute(
            insert(audit_events).values(
                ts=time.time() if at is None else at,
                actor=(actor or "unknown")[:200],
                action=action[:100],
                target=target[:500],
                before=_dump(before),
                after=_dump(after),
                reason=reason,
                link=link,
            )
        )
        primary_key = result.inserted_primary_key
        return int(primary_key[0]) if primary_key else 0

    def append(self, **fields: Any) -> int:
        """Append an event in its own transaction (for changes made outside the state store)."""
        with self._db.write() as connection:
            return self.record(connection, **fields)

    def query(
        self,
        *,
        target: str | None = None,
        target_prefix: str | None = None,
        action: str | None = None,
        actor: str | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        after_id: int | None = None,
        limit: int = 100,
        newest_first: bool = True,
    ) -> list[AuditEvent]:
        """Matching events; ``after_id`` makes the log a cursor: only events recorded after that one."""
        if not 1 <= limit <= MAX_QUERY_LIMIT:
            raise ValidationError(f"limit must be between 1 and {MAX_QUERY_LIMIT}", field="limit")
        start, end = _to_epoch(since, "since"), _to_epoch(until, "until")
        if start is not None and end is not None and start > end:
            raise ValidationError("since is after until", field="since")
        statement = select(audit_events)
        if target is not None:
            statement = statement.where(audit_events.c.target == target)
        if target_prefix is not None:
            escaped = target_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            statement = statement.where(audit_events.c.target.like(f"{escaped}%", escape="\\"))
        if action is not None:
            statement = statement.where(audit_events.c.action == action)
        if actor is not None:
            statement = statement.where(audit_events.c.actor == actor)
        if after_id is not None:
            statement = statement.where(audit_events.c.id > after_id)
        if start is not None:
            statement = statement.where(audit_events.c.ts >= start)
        if end is not None:
            statement = statement.where(audit_events.c.ts <= end)
        order = audit_events.c.id.desc() if newest_first else audit_events.c.id.asc()
        statement = statement.order_by(order).limit(limit)
        with self._db.read() as connection:
            rows = connection.execute(statement).mappings().all()
        return [
            AuditEvent(
                id=row["id"],
                at=datetime.fromtimestamp(row["ts"], tz=UTC),
                actor=row["actor"],
                action=row["action"],
                target=row["target"],
                before=_load(row["before"]),
                after=_load(row["after"]),
                reason=row["reason"],
                link=row["link"],
            )
            for row in rows
        ]

    def count(self) -> int:
        from sqlalchemy import func

        with self._db.read() as connection:
            return int(connection.execute(select(func.count()).select_from(audit_events)).scalar() or 0)
