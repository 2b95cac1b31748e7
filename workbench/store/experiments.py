"""A/B experiments in the state store: the spec and lifecycle, each unit's variant, each outcome.

Why the units and outcomes are rows and the statistics are SQL sums: outcomes arrive long after the
requests (a purchase days later), from any number of callers, and possibly twice (a retried webhook).
The primary keys make the join exact: a unit keeps the variant it was first assigned, and one outcome per
unit and metric is kept, so a repeat is recognised rather than counted. Every look then reads n, Σy, Σy²
(and the covariate's sums) per variant in one grouped query, the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from workbench.errors import ConflictError, NotFoundError, ValidationError
from workbench.experiments.statistics import Moments
from workbench.records.experiments import ExperimentRecord, ExperimentState
from workbench.specs.experiment import ExperimentSpec
from workbench.store.history import _insert_ignore
from workbench.store.schema import experiment_looks, experiment_outcomes, experiment_units, experiments

#: Which lifecycle moves are allowed: a concluded experiment stays concluded.
TRANSITIONS: dict[ExperimentState, frozenset[ExperimentState]] = {
    ExperimentState.DRAFT: frozenset({ExperimentState.RUNNING, ExperimentState.CONCLUDED}),
    ExperimentState.RUNNING: frozenset({ExperimentState.PAUSED, ExperimentState.CONCLUDED}),
    ExperimentState.PAUSED: frozenset({ExperimentState.RUNNING, ExperimentState.CONCLUDED}),
    ExperimentState.CONCLUDED: frozenset(),
}


@dataclass(frozen=True)
class Outcome:
    unit: str
    metric: str
    value: float
    covariate: float | None = None


@dataclass(frozen=True)
class OutcomeResult:
    joined: int  # new outcomes of assigned units
    repeated: int  # an outcome for that unit and metric was already kept
    unassigned: list[str]  # units the experiment never assigned: not joined


def _record(row: Any) -> ExperimentRecord:
    def when(value: float | None) -> datetime | None:
        return None if value is None else datetime.fromtimestamp(value, tz=UTC)

    return ExperimentRecord(
        name=row["name"],
        endpoint=row["endpoint"],
        spec=ExperimentSpec.model_validate(orjson.loads(row["spec"])),
        state=ExperimentState(row["state"]),
        decision=orjson.loads(row["decision"]) if row["decision"] else None,
        actor=row["actor"],
        created_at=datetime.fromtimestamp(row["created_at"], tz=UTC),
        started_at=when(row["started_at"]),
        ended_at=when(row["ended_at"]),
        revision=row["revision"],
        baseline=orjson.loads(row["baseline"]) if row["baseline"] else None,
        running_since=when(row["running_since"]),
    )


class ExperimentStore:
    """Queries on a caller's connection, so a change and its audit event share one transaction."""

    # --- the experiment ----------------------------------------------------------------------------------

    def create(self, connection: Connection, spec: ExperimentSpec, *, actor: str) -> ExperimentRecord:
        try:
            with connection.begin_nested():
                connection.execute(
                    insert(experiments).values(
                        name=spec.name,
                        endpoint=spec.endpoint,
                        spec=orjson.dumps(spec.model_dump(mode="json")).decode(),
                        state=ExperimentState.DRAFT.value,
                        decision=None,
                        actor=actor,
                        created_at=time.time(),
                        started_at=None,
                        ended_at=None,
                        revision=1,
                        baseline=None,
                        running_since=None,
                    )
                )
        except IntegrityError:
            raise ConflictError(f"experiment {spec.name!r} already exists") from None
        return self.get(connection, spec.name)

    def get(self, connection: Connection, name: str) -> ExperimentRecord:
        row = connection.execute(select(experiments).where(experiments.c.name == name)).mappings().first()
        if row is None:
            raise NotFoundError(f"no experiment named {name!r}")
        return _record(row)

    def find(
        self, connection: Connection, *, endpoint: str | None = None, state: ExperimentState | None = None
    ) -> list[ExperimentRecord]:
        query = select(experiments).order_by(experiments.c.created_at)
        if endpoint is not None:
            query = query.where(experiments.c.endpoint == endpoint)
        if state is not None:
            query = query.where(experiments.c.state == state.value)
        return [_record(row) for row in connection.execute(query).mappings()]

    def move(
        self,
        connection: Connection,
        name: str,
        to: ExperimentState,
        *,
        expected_revision: int | None = None,
        decision: dict[str, Any] | None = None,
        baseline: list[dict[str, Any]] | None = None,
    ) -> ExperimentRecord:
        """A lifecycle move, refused if not allowed from the current state or if the record moved on.

        ``baseline``: the endpoint's routes before the experiment took them over (kept from the first
        start; restored when it pauses or ends)."""
        current = self.get(connection, name)
        if to not in TRANSITIONS[current.state]:
            raise ConflictError(
                f"experiment {name!r} is {current.state.value}: it cannot be {to.value}",
                state=current.state.value,
            )
        if expected_revision is not None and expected_revision != current.revision:
            raise ConflictError(
                f"experiment {name!r} changed since it was read (revision {current.revision}, "
                f"not {expected_revision})",
                revision=current.revision,
            )
        now = time.time()
        values: dict[str, Any] = {"state": to.value, "revision": current.revision + 1}
        if to == ExperimentState.RUNNING:
            values["running_since"] = now
            if current.started_at is None:
                values["started_at"] = now
        else:
            values["running_since"] = None
        if to == ExperimentState.CONCLUDED:
            values["ended_at"] = now
        if decision is not None:
            values["decision"] = orjson.dumps(decision).decode()
        if baseline is not None and current.baseline is None:
            values["baseline"] = orjson.dumps(baseline).decode()
        moved = connection.execute(
            update(experiments)
            .where(and_(experiments.c.name == name, experiments.c.revision == current.revision))
            .values(**values)
        )
        if moved.rowcount != 1:
            raise ConflictError(f"experiment {name!r} changed meanwhile; read it again")
        return self.get(connection, name)

    def save_decision(self, connection: Connection, name: str, decision: dict[str, Any]) -> None:
        """The latest look's decision, kept for readers (the evidence of a stop is kept by ``move``)."""
        connection.execute(
            update(experiments)
            .where(experiments.c.name == name)
            .values(decision=orjson.dumps(decision).decode())
        )

    def add_look(
        self, connection: Connection, name: str, *, ts: float, units: int, decision: dict[str, Any]
    ) -> None:
        """One look's decision, for the estimates-over-time view (a look at the same instant is kept once)."""
        try:
            with connection.begin_nested():
                connection.execute(
                    insert(experiment_looks).values(
                        experiment=name,
                        ts=ts,
                        units=units,
                        verdict=str(decision.get("verdict", "")),
                        decision=orjson.dumps(decision).decode(),
                    )
                )
        except IntegrityError:
            pass

    def looks(
        self, connection: Connection, name: str, *, limit: int = 500, after: float | None = None
    ) -> list[dict[str, Any]]:
        """The last ``limit`` looks (only those after ``after``: a reader's cursor), oldest first."""
        query = select(experiment_looks.c.ts, experiment_looks.c.units, experiment_looks.c.decision).where(
            experiment_looks.c.experiment == name
        )
        if after is not None:
            query = query.where(experiment_looks.c.ts > after)
        rows = connection.execute(query.order_by(experiment_looks.c.ts.desc()).limit(limit)).all()
        return [
            {"ts": ts, "units": units, "decision": orjson.loads(decision)}
            for ts, units, decision in reversed(rows)
        ]

    # --- units and outcomes ------------------------------------------------------------------------------

    def assign(
        self, connection: Connection, name: str, units: Iterable[tuple[str, str, float]]
    ) -> dict[str, str]:
        """Record ``(unit, variant, at)`` assignments; a unit seen before keeps its first variant.

        Returns each unit's variant as stored (the first assignment's)."""
        pairs = list(units)
        if not pairs:
            return {}
        keys = list({unit for unit, _, _ in pairs})
        stored = self._variants(connection, name, keys)
        fresh: dict[str, tuple[str, float]] = {}
        for unit, variant, at in pairs:
            if unit not in stored and unit not in fresh:
                fresh[unit] = (variant, at)
        if fresh:
            # One statement for the batch; a unit another writer assigned meanwhile keeps theirs.
            connection.execute(
                _insert_ignore(connection, experiment_units),
                [
                    {
                        "experiment": name,
                        "unit": unit,
                        "variant": variant,
                        "assigned_at": at,
                        "covariate": None,
                    }
                    for unit, (variant, at) in fresh.items()
                ],
            )
            stored.update(self._variants(connection, name, list(fresh)))
        return {unit: stored[unit] for unit in keys}

    def _variants(self, connection: Connection, name: str, units: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(units), 500):
            chunk = units[start : start + 500]
            rows = connection.execute(
                select(experiment_units.c.unit, experiment_units.c.variant).where(
                    and_(experiment_units.c.experiment == name, experiment_units.c.unit.in_(chunk))
                )
            )
            found.update({row.unit: row.variant for row in rows})
        return found

    def add_outcomes(
        self, connection: Connection, record: ExperimentRecord, outcomes: Sequence[Outcome]
    ) -> OutcomeResult:
        metrics = {record.spec.primary.name, *(g.name for g in record.spec.guardrails)}
        unknown = sorted({o.metric for o in outcomes} - metrics)
        if unknown:
            raise ValidationError(
                f"experiment {record.name!r} has no metric {', '.join(map(repr, unknown))}; "
                f"its metrics are {', '.join(sorted(metrics))}"
            )
        if any(o.covariate is not None for o in outcomes) and not record.spec.covariate:
            raise ValidationError(f"experiment {record.name!r} was not created with a covariate")
        assigned = self._variants(connection, record.name, list({o.unit for o in outcomes}))
        now = time.time()
        joined = repeated = 0
        unassigned: list[str] = []
        for outcome in outcomes:
            if outcome.unit not in assigned:
                unassigned.append(outcome.unit)
                continue
            if outcome.covariate is not None:
                connection.execute(
                    update(experiment_units)
                    .where(
                        and_(
                            experiment_units.c.experiment == record.name,
                            experiment_units.c.unit == outcome.unit,
                            experiment_units.c.covariate.is_(None),
                        )
                    )
                    .values(covariate=outcome.covariate)
                )
            try:
                with connection.begin_nested():
                    connection.execute(
                        insert(experiment_outcomes).values(
                            experiment=record.name,
                            unit=outcome.unit,
                            metric=outcome.metric,
                            value=outcome.value,
                            at=now,
                        )
                    )
                joined += 1
            except IntegrityError:
                repeated += 1
        return OutcomeResult(joined, repeated, unassigned)

    def assigned_counts(
        self, connection: Connection, name: str, *, until: float | None = None
    ) -> dict[str, int]:
        """Units per variant; with ``until``, only those whose first request came before it."""
        query = select(experiment_units.c.variant, func.count()).where(experiment_units.c.experiment == name)
        if until is not None:
            query = query.where(experiment_units.c.assigned_at <= until)
        rows = connection.execute(query.group_by(experiment_units.c.variant))
        return {row[0]: int(row[1]) for row in rows}

    def moments(self, connection: Connection, name: str, metric: str) -> dict[str, Moments]:
        """Per variant, the sums of the metric over units with an outcome (with their covariate's; a unit
        without a covariate counts as 0 there, so use covariates for all units or none)."""
        y = experiment_outcomes.c.value
        x = func.coalesce(experiment_units.c.covariate, 0.0)
        query = (
            select(
                experiment_units.c.variant,
                func.count(),
                func.sum(y),
                func.sum(y * y),
                func.sum(x),
                func.sum(x * x),
                func.sum(x * y),
            )
            .select_from(
                experiment_outcomes.join(
                    experiment_units,
                    and_(
                        experiment_units.c.experiment == experiment_outcomes.c.experiment,
                        experiment_units.c.unit == experiment_outcomes.c.unit,
                    ),
                )
            )
            .where(and_(experiment_outcomes.c.experiment == name, experiment_outcomes.c.metric == metric))
            .group_by(experiment_units.c.variant)
        )
        return {
            row[0]: Moments(
                int(row[1]), float(row[2]), float(row[3]), float(row[4]), float(row[5]), float(row[6])
            )
            for row in connection.execute(query)
        }
