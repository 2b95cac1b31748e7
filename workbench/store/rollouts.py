"""Rollouts in the state store: the current phase and step, every event that led there, and every tick's
analysis (the decision with each check's estimate and bounds, kept apart from the events).

A rollout's state survives a control-plane restart because it lives here, not in memory: the controller
re-reads it each tick. Each transition is checked against the state machine and applied with an
optimistic revision check, in the same transaction as its event, so two controllers (or a controller and
a person pressing "abort") can never both win.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from workbench.errors import ConflictError, NotFoundError, ValidationError
from workbench.records.rollouts import RolloutAnalysis, RolloutEvent, RolloutRecord
from workbench.rollouts.phases import Phase, check_transition
from workbench.store.schema import rollout_analyses, rollout_events, rollouts

# The records are defined in workbench.records (the client reads them without storage code).
__all__ = ["MAX_ANALYSES", "RolloutAnalysis", "RolloutEvent", "RolloutRecord", "RolloutRepository"]

#: The most analyses one read returns: a dashboard pages through a long rollout with ``after_id``.
MAX_ANALYSES = 10_000


def _record(row: Any) -> RolloutRecord:
    return RolloutRecord(
        id=row["id"],
        endpoint=row["endpoint"],
        strategy=row["strategy"],
        spec=orjson.loads(row["spec"]),
        phase=Phase(row["phase"]),
        step_index=row["step_index"],
        step_started_at=row["step_started_at"],
        stable_model=row["stable_model"],
        stable_version=row["stable_version"],
        candidate_model=row["candidate_model"],
        candidate_version=row["candidate_version"],
        actor=row["actor"],
        reason=row["reason"],
        revision=row["revision"],
        created_at=datetime.fromtimestamp(row["created_at"], tz=UTC),
        updated_at=datetime.fromtimestamp(row["updated_at"], tz=UTC),
    )


def _analysis(row: Any) -> RolloutAnalysis:
    return RolloutAnalysis(
        id=row["id"],
        rollout_id=row["rollout_id"],
        at=datetime.fromtimestamp(row["ts"], tz=UTC),
        step_index=row["step_index"],
        weight=row["weight"],
        decision=row["decision"],
        reason=row["reason"],
        evidence=orjson.loads(row["evidence"]),
    )


class RolloutRepository:
    def create(
        self,
        connection: Connection,
        *,
        endpoint: str,
        strategy: str,
        spec: dict[str, Any],
        stable: tuple[str, int],
        candidate: tuple[str, int],
        actor: str,
        reason: str | None,
        now: float | None = None,
    ) -> RolloutRecord:
        """A new pending rollout; refused while the endpoint has another active one."""
        at = time.time() if now is None else now
        rollout_id = uuid.uuid4().hex
        try:
            with connection.begin_nested():
                connection.execute(
                    insert(rollouts).values(
                        id=rollout_id,
                        endpoint=endpoint,
                        strategy=strategy,
                        spec=orjson.dumps(spec).decode(),
                        phase=Phase.PENDING.value,
                        active=1,
                        step_index=0,
                        step_started_at=at,
                        stable_model=stable[0],
                        stable_version=stable[1],
                        candidate_model=candidate[0],
                        candidate_version=candidate[1],
                        actor=actor,
                        reason=reason,
                        revision=1,
                        created_at=at,
                        updated_at=at,
                    )
                )
        except IntegrityError:
            active = self.active_for(connection, endpoint)
            raise ConflictError(
                f"endpoint {endpoint!r} already has an active rollout"
                + (f" ({active.id}, {active.phase.value})" if active else ""),
                endpoint=endpoint,
                rollout=active.id if active else None,
            ) from None
        self.add_event(
            connection, rollout_id, Phase.PENDING, 0, "created", f"{strategy} rollout created", at=at
        )
        return self.get(connection, rollout_id)

    def get(self, connection: Connection, rollout_id: str) -> RolloutRecord:
        row = connection.execute(select(rollouts).where(rollouts.c.id == rollout_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"rollout {rollout_id!r} does not exist", rollout=rollout_id)
        return _record(row)

    def active_for(self, connection: Connection, endpoint: str) -> RolloutRecord | None:
        row = (
            connection.execute(
                select(rollouts).where(rollouts.c.endpoint == endpoint, rollouts.c.active == 1)
            )
            .mappings()
            .first()
        )
        return _record(row) if row is not None else None

    def find(
        self,
        connection: Connection,
        *,
        endpoint: str | None = None,
        active_only: bool = False,
        limit: int = 100,
    ) -> list[RolloutRecord]:
        statement = select(rollouts)
        if endpoint is not None:
            statement = statement.where(rollouts.c.endpoint == endpoint)
        if active_only:
            statement = statement.where(rollouts.c.active == 1)
        rows = connection.execute(statement.order_by(rollouts.c.created_at.desc()).limit(limit)).mappings()
        return [_record(row) for row in rows]

    def transition(
        self,
        connection: Connection,
        current: RolloutRecord,
        phase: Phase,
        *,
        message: str,
        step_index: int | None = None,
        evidence: Any = None,
        kind: str = "transition",
        now: float | None = None,
    ) -> RolloutRecord:
        """Move ``current`` to ``phase`` (and step), if nobody else moved it since it was read."""
        check_transition(current.phase, phase)
        at = time.time() if now is None else now
        step = current.step_index if step_index is None else step_index
        values: dict[str, Any] = {
            "phase": phase.value,
            "active": 0 if phase.is_terminal else 1,
            "step_index": step,
            "revision": current.revision + 1,
            "updated_at": at,
        }
        if step != current.step_index or phase != current.phase:
            values["step_started_at"] = at
        result = connection.execute(
            update(rollouts)
            .where(rollouts.c.id == current.id, rollouts.c.revision == current.revision)
            .values(**values)
        )
        if result.rowcount != 1:
            raise ConflictError(
                f"rollout {current.id} changed meanwhile (revision {current.revision}); re-read and retry",
                rollout=current.id,
            )
        self.add_event(connection, current.id, phase, step, kind, message, evidence=evidence, at=at)
        return self.get(connection, current.id)

    def hold(self, connection: Connection, current: RolloutRecord) -> RolloutRecord:
        """Bump ``current``'s revision (no phase change, no event) if nobody moved it since it was read.

        A change made on the rollout's behalf outside this table (its traffic) calls this in its own
        transaction: whoever read the rollout before then can no longer change it, and the change is
        refused if somebody did meanwhile. The row is locked until commit on PostgreSQL.
        """
        result = connection.execute(
            update(rollouts)
            .where(rollouts.c.id == current.id, rollouts.c.revision == current.revision)
            .values(revision=current.revision + 1, updated_at=time.time())
        )
        if result.rowcount != 1:
            raise ConflictError(
                f"rollout {current.id} changed meanwhile (revision {current.revision}); re-read and retry",
                rollout=current.id,
            )
        return self.get(connection, current.id)

    def add_event(
        self,
        connection: Connection,
        rollout_id: str,
        phase: Phase,
        step_index: int,
        kind: str,
        message: str,
        *,
        evidence: Any = None,
        at: float | None = None,
    ) -> None:
        connection.execute(
            insert(rollout_events).values(
                rollout_id=rollout_id,
                ts=time.time() if at is None else at,
                phase=phase.value,
                step_index=step_index,
                kind=kind,
                message=message,
                evidence=None if evidence is None else orjson.dumps(evidence, default=str).decode(),
            )
        )

    def events(self, connection: Connection, rollout_id: str) -> list[RolloutEvent]:
        rows = connection.execute(
            select(rollout_events)
            .where(rollout_events.c.rollout_id == rollout_id)
            .order_by(rollout_events.c.id)
        ).mappings()
        return [
            RolloutEvent(
                id=row["id"],
                rollout_id=row["rollout_id"],
                at=datetime.fromtimestamp(row["ts"], tz=UTC),
                phase=Phase(row["phase"]),
                step_index=row["step_index"],
                kind=row["kind"],
                message=row["message"],
                evidence=None if row["evidence"] is None else orjson.loads(row["evidence"]),
            )
            for row in rows
        ]

    def add_analysis(
        self,
        connection: Connection,
        rollout_id: str,
        *,
        at: float,
        step_index: int,
        weight: float | None,
        decision: str,
        reason: str,
        evidence: dict[str, Any],
    ) -> int:
        """Record one tick's analysis; returns its id (increasing: the cursor of :meth:`analyses`)."""
        result = connection.execute(
            insert(rollout_analyses).values(
                rollout_id=rollout_id,
                ts=at,
                step_index=step_index,
                weight=weight,
                decision=decision,
                reason=reason,
                # orjson writes NaN and infinite bounds as null: the stored evidence is valid JSON.
                evidence=orjson.dumps(evidence, default=str).decode(),
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def analyses(
        self, connection: Connection, rollout_id: str, *, after_id: int | None = None, limit: int = 1000
    ) -> list[RolloutAnalysis]:
        """A rollout's analyses, oldest first: at most ``limit``, only those after ``after_id`` if given."""
        if not 1 <= limit <= MAX_ANALYSES:
            raise ValidationError(f"limit must be between 1 and {MAX_ANALYSES}, not {limit}", limit=limit)
        statement = select(rollout_analyses).where(rollout_analyses.c.rollout_id == rollout_id)
        if after_id is not None:
            statement = statement.where(rollout_analyses.c.id > after_id)
        rows = connection.execute(statement.order_by(rollout_analyses.c.id).limit(limit)).mappings()
        return [_analysis(row) for row in rows]

    def latest_analysis(self, connection: Connection, rollout_id: str) -> RolloutAnalysis | None:
        row = (
            connection.execute(
                select(rollout_analyses)
                .where(rollout_analyses.c.rollout_id == rollout_id)
                .order_by(rollout_analyses.c.id.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
        return _analysis(row) if row is not None else None
