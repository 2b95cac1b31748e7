"""Endpoint revisions and rejected versions in the state store.

Methods take the caller's connection: a revision commits in the same transaction as the endpoint change
and its audit event, so history can never disagree with what was applied.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, insert, select

from workbench.revisions.model import Rejection, Revision, RevisionCause
from workbench.specs.endpoint import EndpointSpec
from workbench.store.schema import endpoint_rejections, endpoint_revisions

MAX_HISTORY = 10_000


def _revision(row: Any) -> Revision:
    return Revision(
        endpoint=row["endpoint"],
        revision=int(row["revision"]),
        at=datetime.fromtimestamp(float(row["ts"]), tz=UTC),
        cause=RevisionCause(row["cause"]),
        spec=EndpointSpec.model_validate_json(str(row["spec"])),
        actor=row["actor"],
        reason=row["reason"],
        rollout_id=row["rollout_id"],
        runbook_run_id=row["runbook_run_id"],
        alert=row["alert"],
        restores=row["restores"],
        audit_event_id=row["audit_event_id"],
    )


class RevisionRepository:
    def append(
        self,
        connection: Connection,
        *,
        spec: EndpointSpec,
        revision: int,
        cause: RevisionCause,
        actor: str,
        reason: str | None,
        rollout_id: str | None = None,
        runbook_run_id: str | None = None,
        alert: str | None = None,
        restores: int | None = None,
        audit_event_id: int | None = None,
        at: float | None = None,
    ) -> Revision:
        values = {
            "endpoint": spec.name,
            "revision": revision,
            "ts": time.time() if at is None else at,
            "cause": cause.value,
            "spec": spec.model_dump_json(),
            "actor": (actor or "unknown")[:200],
            "reason": reason,
            "rollout_id": rollout_id,
            "runbook_run_id": runbook_run_id,
            "alert": alert[:200] if alert else None,
            "restores": restores,
            "audit_event_id": audit_event_id,
        }
        connection.execute(insert(endpoint_revisions).values(**values))
        return _revision(values)

    def history(self, connection: Connection, endpoint: str, *, limit: int = MAX_HISTORY) -> list[Revision]:
        """The newest ``limit`` revisions of ``endpoint``, oldest first."""
        rows = (
            connection.execute(
                select(endpoint_revisions)
                .where(endpoint_revisions.c.endpoint == endpoint)
                .order_by(endpoint_revisions.c.revision.desc())
                .limit(limit)
            )
            .mappings()
            .all()
        )
        return [_revision(row) for row in reversed(rows)]

    def latest_number(self, connection: Connection, endpoint: str) -> int:
        """The highest revision ever recorded for the name (0 if none): a re-created endpoint goes on."""
        value = connection.execute(
            select(func.max(endpoint_revisions.c.revision)).where(endpoint_revisions.c.endpoint == endpoint)
        ).scalar()
        return int(value or 0)


def _rejection(row: Any) -> Rejection:
    return Rejection(
        endpoint=row["endpoint"],
        model=row["model"],
        version=int(row["version"]),
        at=datetime.fromtimestamp(float(row["ts"]), tz=UTC),
        rollout_id=row["rollout_id"],
        actor=row["actor"],
        reason=row["reason"],
        evidence=None if row["evidence"] is None else orjson.loads(row["evidence"]),
    )


class RejectionRepository:
    def mark(
        self,
        connection: Connection,
        *,
        endpoint: str,
        model: str,
        version: int,
        rollout_id: str | None,
        actor: str,
        reason: str,
        evidence: Any = None,
    ) -> Rejection:
        """Record (or refresh, keeping the newest evidence) that ``version`` was rejected on ``endpoint``."""
        self.clear(connection, endpoint=endpoint, model=model, version=version)
        values = {
            "endpoint": endpoint,
            "model": model,
            "version": version,
            "ts": time.time(),
            "rollout_id": rollout_id,
            "actor": actor[:200],
            "reason": reason,
            "evidence": None if evidence is None else orjson.dumps(evidence, default=str).decode(),
        }
        connection.execute(insert(endpoint_rejections).values(**values))
        return _rejection(values)

    def clear(self, connection: Connection, *, endpoint: str, model: str, version: int) -> bool:
        result = connection.execute(
            delete(endpoint_rejections).where(
                endpoint_rejections.c.endpoint == endpoint,
                endpoint_rejections.c.model == model,
                endpoint_rejections.c.version == version,
            )
        )
        return bool(result.rowcount)

    def list(self, connection: Connection, endpoint: str) -> list[Rejection]:
        rows = (
            connection.execute(
                select(endpoint_rejections)
                .where(endpoint_rejections.c.endpoint == endpoint)
                .order_by(endpoint_rejections.c.ts)
            )
            .mappings()
            .all()
        )
        return [_rejection(row) for row in rows]

    def get(self, connection: Connection, endpoint: str, model: str, version: int) -> Rejection | None:
        row = (
            connection.execute(
                select(endpoint_rejections).where(
                    endpoint_rejections.c.endpoint == endpoint,
                    endpoint_rejections.c.model == model,
                    endpoint_rejections.c.version == version,
                )
            )
            .mappings()
            .first()
        )
        return None if row is None else _rejection(row)
