"""The optimisations table: one row per variant asked for, updated as its worker runs and ends."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select, update

from workbench.errors import NotFoundError
from workbench.records.optimizations import OptimizationRecord, OptimizationStatus
from workbench.store.schema import optimizations


def _at(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


def _json(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


def _record(row: Any) -> OptimizationRecord:
    return OptimizationRecord(
        id=row["id"],
        model=row["model"],
        version=row["version"],
        method=row["method"],
        status=OptimizationStatus(row["status"]),
        settings=orjson.loads(row["settings"]),
        result=_json(row["result"]),
        verdict=_json(row["verdict"]),
        variant_version=row["variant_version"],
        error=row["error"],
        actor=row["actor"],
        reason=row["reason"],
        created_at=_at(row["created_at"]),
        started_at=_at(row["started_at"]),
        finished_at=_at(row["finished_at"]),
    )


class OptimizationRepository:
    def create(
        self,
        connection: Connection,
        *,
        optimization_id: str,
        model: str,
        version: int,
        method: str,
        settings: dict[str, Any],
        actor: str,
        reason: str | None,
    ) -> OptimizationRecord:
        connection.execute(
            insert(optimizations).values(
                id=optimization_id,
                model=model,
                version=version,
                method=method,
                status=OptimizationStatus.QUEUED.value,
                settings=orjson.dumps(settings).decode(),
                actor=actor[:200],
                reason=reason,
                created_at=time.time(),
            )
        )
        return self.get(connection, optimization_id)

    def get(self, connection: Connection, optimization_id: str) -> OptimizationRecord:
        row = (
            connection.execute(select(optimizations).where(optimizations.c.id == optimization_id))
            .mappings()
            .first()
        )
        if row is None:
            raise NotFoundError(
                f"optimization {optimization_id!r} does not exist", optimization=optimization_id
            )
        return _record(row)

    def list(
        self,
        connection: Connection,
        *,
        model: str | None = None,
        version: int | None = None,
        status: OptimizationStatus | None = None,
        limit: int = 100,
    ) -> list[OptimizationRecord]:
        statement = select(optimizations).order_by(optimizations.c.created_at.desc()).limit(limit)
        if model is not None:
            statement = statement.where(optimizations.c.model == model)
        if version is not None:
            statement = statement.where(optimizations.c.version == version)
        if status is not None:
            statement = statement.where(optimizations.c.status == status.value)
        return [_record(row) for row in connection.execute(statement).mappings().all()]

    def start(self, connection: Connection, optimization_id: str, settings: dict[str, Any]) -> None:
        connection.execute(
            update(optimizations)
            .where(optimizations.c.id == optimization_id)
            .values(
                status=OptimizationStatus.RUNNING.value,
                started_at=time.time(),
                settings=orjson.dumps(settings).decode(),
            )
        )

    def finish(
        self,
        connection: Connection,
        optimization_id: str,
        *,
        status: OptimizationStatus,
        result: dict[str, Any] | None = None,
        verdict: dict[str, Any] | None = None,
        variant_version: int | None = None,
        error: str | None = None,
    ) -> None:
        connection.execute(
            update(optimizations)
            .where(optimizations.c.id == optimization_id)
            .values(
                status=status.value,
                result=None
                if result is None
                else orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY).decode(),
                verdict=None if verdict is None else orjson.dumps(verdict).decode(),
                variant_version=variant_version,
                error=error,
                finished_at=time.time(),
            )
        )
