"""Versioned schema migrations, applied in order, each in its own transaction.

Each migration writes its own DDL rather than reusing ``schema.py``: a migration must keep creating the
schema of *its* version even after the current tables change. Concurrent starters are serialised
(``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL), so two control planes starting on one
fresh database apply each migration exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, inspect, text

from workbench.store.engine import Database

_ADVISORY_LOCK_KEY = 0x5742_0001


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    upgrade: Callable[[Connection, str], None]


def _v1_initial(connection: Connection, dialect: str) -> None:
    id_column = "INTEGER PRIMARY KEY AUTOINCREMENT" if dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
    float_type = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"
    connection.execute(
        text(
            f"""
            CREATE TABLE audit_events (
                id {id_column},
                ts {float_type} NOT NULL,
                actor VARCHAR(200) NOT NULL,
                action VARCHAR(100) NOT NULL,
                target VARCHAR(500) NOT NULL,
                before TEXT,
                after TEXT,
                reason TEXT,
                link VARCHAR(1000)
            )"""
        )
    )
    for column in ("ts", "action", "target"):
        connection.execute(text(f"CREATE INDEX ix_audit_events_{column} ON audit_events ({column})"))
    connection.execute(
        text(
            f"""
            CREATE TABLE endpoints (
                name VARCHAR(128) NOT NULL PRIMARY KEY,
                spec TEXT NOT NULL,
                revision INTEGER NOT NULL,
                created_at {float_type} NOT NULL,
                updated_at {float_type} NOT NULL
            )"""
        )
    )
    # The audit log is append-only by construction, not by convention: the database refuses edits.
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            connection.execute(
                text(
                    f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
                    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
                )
            )
    else:
        connection.execute(
            text(
                "CREATE OR REPLACE FUNCTION workbench_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"
            )
        )
        connection.execute(
            text(
                "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
                "FOR EACH ROW EXECUTE FUNCTION workbench_append_only()"
            )
        )
        # Row triggers do not fire on TRUNCATE; a statement trigger closes that door too.
        connection.execute(
            text(
                "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
                "FOR EACH STATEMENT EXECUTE FUNCTION workbench_append_only()"
            )
        )


def _v2_rollouts(connection: Connection, dialect: str) -> None:
    id_column = "INTEGER PRIMARY KEY AUTOINCREMENT" if dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
    float_type = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"
    connection.execute(
        text(
            f"""
            CREATE TABLE rollouts (
                id VARCHAR(32) NOT NULL PRIMARY KEY,
                endpoint VARCHAR(128) NOT NULL,
                strategy VARCHAR(32) NOT NULL,
                spec TEXT NOT NULL,
                phase VARCHAR(32) NOT NULL,
                active INTEGER NOT NULL,
                step_index INTEGER NOT NULL,
                step_started_at {float_type} NOT NULL,
                stable_model VARCHAR(128) NOT NULL,
                stable_version INTEGER NOT NULL,
                candidate_model VARCHAR(128) NOT NULL,
                candidate_version INTEGER NOT NULL,
                actor VARCHAR(200) NOT NULL,
                reason TEXT,
                revision INTEGER NOT NULL,
                created_at {float_type} NOT NULL,
                updated_at {float_type} NOT NULL
            )"""
        )
    )
    connection.execute(text("CREATE INDEX ix_rollouts_endpoint ON rollouts (endpoint)"))
    # One active rollout per endpoint, enforced by the database itself (a partial unique index).
    connection.execute(text("CREATE UNIQUE INDEX ux_rollouts_active ON rollouts (endpoint) WHERE active = 1"))
    connection.execute(
        text(
            f"""
            CREATE TABLE rollout_events (
                id {id_column},
                rollout_id VARCHAR(32) NOT NULL REFERENCES rollouts (id),
                ts {float_type} NOT NULL,
                phase VARCHAR(32) NOT NULL,
                step_index INTEGER NOT NULL,
                kind VARCHAR(32) NOT NULL,
                message TEXT NOT NULL,
                evidence TEXT
            )"""
        )
    )
    connection.execute(text("CREATE INDEX ix_rollout_events_rollout ON rollout_events (rollout_id, id)"))


def _v3_monitoring(connection: Connection, dialect: str) -> None:
    id_column = "INTEGER PRIMARY KEY AUTOINCREMENT" if dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
    float_type = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"
    statements = [
        f"""CREATE TABLE monitors (
            name VARCHAR(64) NOT NULL PRIMARY KEY,
            endpoint VARCHAR(128) NOT NULL,
            spec TEXT NOT NULL,
            created_at {float_type} NOT NULL,
            updated_at {float_type} NOT NULL
        )""",
        "CREATE INDEX ix_monitors_endpoint ON monitors (endpoint)",
        f"""CREATE TABLE alert_rules (
            name VARCHAR(64) NOT NULL PRIMARY KEY,
            monitor VARCHAR(64) NOT NULL REFERENCES monitors (name),
            spec TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at {float_type} NOT NULL,
            updated_at {float_type} NOT NULL
        )""",
        "CREATE INDEX ix_alert_rules_monitor ON alert_rules (monitor)",
        f"""CREATE TABLE alert_events (
            id {id_column},
            ts {float_type} NOT NULL,
            rule VARCHAR(64) NOT NULL,
            monitor VARCHAR(64) NOT NULL,
            endpoint VARCHAR(128) NOT NULL,
            kind VARCHAR(32) NOT NULL,
            severity VARCHAR(16) NOT NULL,
            value {float_type},
            message TEXT NOT NULL,
            details TEXT
        )""",
        "CREATE INDEX ix_alert_events_rule ON alert_events (rule, id)",
        f"""CREATE TABLE feedback (
            endpoint VARCHAR(128) NOT NULL,
            request_id VARCHAR(200) NOT NULL,
            version INTEGER NOT NULL,
            label {float_type} NOT NULL,
            predicted_at {float_type} NOT NULL,
            received_at {float_type} NOT NULL,
            actor VARCHAR(200) NOT NULL,
            PRIMARY KEY (endpoint, request_id)
        )""",
        "CREATE INDEX ix_feedback_predicted ON feedback (endpoint, predicted_at)",
        f"""CREATE TABLE monitor_reports (
            id {id_column},
            monitor VARCHAR(64) NOT NULL,
            ts {float_type} NOT NULL,
            window_start {float_type} NOT NULL,
            window_end {float_type} NOT NULL,
            trigger VARCHAR(32) NOT NULL,
            html_path TEXT NOT NULL,
            json_path TEXT NOT NULL,
            summary TEXT NOT NULL
        )""",
        "CREATE INDEX ix_monitor_reports_monitor ON monitor_reports (monitor, id)",
    ]
    for statement in statements:
        connection.execute(text(statement))


def _v4_runbooks(connection: Connection, dialect: str) -> None:
    float_type = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"
    statements = [
        f"""CREATE TABLE runbook_runs (
            id VARCHAR(40) NOT NULL PRIMARY KEY,
            runbook VARCHAR(128) NOT NULL,
            parameters TEXT NOT NULL,
            trigger TEXT NOT NULL,
            actor VARCHAR(200) NOT NULL,
            endpoint VARCHAR(128),
            status VARCHAR(16) NOT NULL,
            created_at {float_type} NOT NULL,
            started_at {float_type},
            finished_at {float_type},
            timeout_s {float_type} NOT NULL,
            summary TEXT,
            error TEXT,
            failed_cell TEXT,
            archive_dir TEXT NOT NULL,
            owner VARCHAR(200) NOT NULL
        )""",
        "CREATE INDEX ix_runbook_runs_created ON runbook_runs (created_at)",
        "CREATE INDEX ix_runbook_runs_status ON runbook_runs (status)",
        # The row is the lock: the primary key lets exactly one run hold an endpoint, across processes.
        f"""CREATE TABLE endpoint_locks (
            endpoint VARCHAR(128) NOT NULL PRIMARY KEY,
            run_id VARCHAR(40) NOT NULL,
            acquired_at {float_type} NOT NULL
        )""",
        f"""CREATE TABLE runbook_schedules (
            name VARCHAR(64) NOT NULL PRIMARY KEY,
            runbook VARCHAR(128) NOT NULL,
            spec TEXT NOT NULL,
            every_s {float_type} NOT NULL,
            next_at {float_type} NOT NULL,
            enabled INTEGER NOT NULL,
            last_run_id VARCHAR(40),
            created_at {float_type} NOT NULL,
            actor VARCHAR(200) NOT NULL
        )""",
    ]
    for statement in statements:
        connection.execute(text(statement))


def _v5_endpoint_revisions(connection: Connection, dialect: str) -> None:
    float_type = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"
    statements = [
        f"""CREATE TABLE endpoint_revisions (
            endpoint VARCHAR(128) NOT NULL,
            revision INTEGER NOT NULL,
            ts {float_type} NOT NULL,
            cause VARCHAR(32) NOT NULL,
            spec TEXT NOT NULL,
            actor VARCHAR(200) NOT NULL,
            reason TEXT,
            rollout_id VARCHAR(32),
            runbook_run_id VARCHAR(40),
            alert VARCHAR(200),
            restores INTEGER,
            audit_event_id BIGINT,
            PRIMARY KEY (endpoint, revision)
        )""",
        f"""CREATE TABLE endpoint_rejections (
            endpoint VARCHAR(128) NOT NULL,
            model VARCHAR(128) NOT NULL,
            version INTEGER NOT NULL,
            ts {float_type} NOT NULL,
            rollout_id VARCHAR(32),
            actor VARCHAR(200) NOT NULL,
            reason TEXT NOT NULL,
            evidence TEXT,
            PRIMARY KEY (endpoint, model, version)
        )""",
    ]
    for statement in statements:
        connection.execute(text(statement))
    # History is data the rollback target is computed from: immutable like the audit log.
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            connection.execute(
                text(
                    f"CREATE TRIGGER endpoint_revisions_no_{verb.lower()} BEFORE {verb} ON endpoint_revisions "
                    "BEGIN SELECT RAISE(ABORT, 'endpoint_revisions is append-only'); END"
                )
            )
    else:
        connection.execute(
            text(
                "CREATE TRIGGER endpoint_revisions_append_only BEFORE UPDATE OR DELETE ON endpoint_revisions "
                "FOR EACH ROW EXECUTE FUNCTION workbench_append_only()"
            )
        )
    # Endpoints that exist already get their present definition as their first recorded revision.
    rows = connection.execute(text("SELECT name, spec, revision, updated_at FROM endpoints")).all()
    for name, spec, revision, updated_at in rows:
        connection.execute(
            text(
                "INSERT INTO endpoint_revisions (endpoint, revision, ts, cause, spec, actor, reason) "
                "VALUES (:e, :r, :t, 'edit', :s, 'migration', 'definition when history began')"
            ),
            {"e": name, "r": revision, "t": updated_at, "s": spec},
        )


def _v6_monitor_history(connection: Connection, dialect: str) -> None:
    id_column = "INTEGER PRIMARY KEY AUTOINCREMENT" if dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
    float_type = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"
    # SQLite keeps a WITHOUT ROWID table in primary-key order: one series' points are contiguous.
    clustered = " WITHOUT ROWID" if dialect == "sqlite" else ""
    statements = [
        f"""CREATE TABLE monitor_series (
            id {id_column},
            monitor VARCHAR(64) NOT NULL,
            series VARCHAR(64) NOT NULL,
            key VARCHAR(200) NOT NULL
        )""",
        "CREATE UNIQUE INDEX ux_monitor_series ON monitor_series (monitor, series, key)",
        f"""CREATE TABLE monitor_points (
            series_id BIGINT NOT NULL,
            ts {float_type} NOT NULL,
            value {float_type} NOT NULL,
            PRIMARY KEY (series_id, ts)
        ){clustered}""",
        # Per series and minute: count, sum, min and max of its points, kept longer than the points.
        f"""CREATE TABLE monitor_rollups (
            series_id BIGINT NOT NULL,
            ts {float_type} NOT NULL,
            n INTEGER NOT NULL,
            total {float_type} NOT NULL,
            low {float_type} NOT NULL,
            high {float_type} NOT NULL,
            PRIMARY KEY (series_id, ts)
        ){clustered}""",
        # Request id -> prediction, for labels fed back after the in-memory index forgot the request.
        f"""CREATE TABLE request_index (
            endpoint VARCHAR(128) NOT NULL,
            request_id VARCHAR(200) NOT NULL,
            ts {float_type} NOT NULL,
            version INTEGER NOT NULL,
            score {float_type},
            PRIMARY KEY (endpoint, request_id)
        )""",
        "CREATE INDEX ix_request_index_ts ON request_index (endpoint, ts)",
    ]
    for statement in statements:
        connection.execute(text(statement))


def _v7_rollout_analyses(connection: Connection, dialect: str) -> None:
    id_column = "INTEGER PRIMARY KEY AUTOINCREMENT" if dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
    float_type = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"
    # Every tick's analysis (the events table keeps transitions only): how estimates and bounds evolved.
    connection.execute(
        text(
            f"""
            CREATE TABLE rollout_analyses (
                id {id_column},
                rollout_id VARCHAR(32) NOT NULL REFERENCES rollouts (id),
                ts {float_type} NOT NULL,
                step_index INTEGER NOT NULL,
                weight {float_type},
                decision VARCHAR(32) NOT NULL,
                reason TEXT NOT NULL,
                evidence TEXT NOT NULL
            )"""
        )
    )
    connection.execute(text("CREATE INDEX ix_rollout_analyses_rollout ON rollout_analyses (rollout_id, id)"))


def _v8_idempotent_requests(connection: Connection, dialect: str) -> None:
    float_type = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"
    binary_type = "BLOB" if dialect == "sqlite" else "BYTEA"
    # A changing call's idempotency key and its answer, so a repeated copy is answered, not run again.
    connection.execute(
        text(
            f"""
            CREATE TABLE idempotent_requests (
                key VARCHAR(200) PRIMARY KEY,
                actor VARCHAR(200) NOT NULL,
                method VARCHAR(10) NOT NULL,
                path VARCHAR(1000) NOT NULL,
                fingerprint VARCHAR(64) NOT NULL,
                claimed_at {float_type} NOT NULL,
                answered_at {float_type},
                status INTEGER,
                body {binary_type},
                content_type VARCHAR(200)
            )"""
        )
    )
    connection.execute(
        text("CREATE INDEX ix_idempotent_requests_claimed ON idempotent_requests (claimed_at)")
    )


def _v9_experiments(connection: Connection, dialect: str) -> None:
    float_type = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"
    # An experiment, its units (first assignment wins: a unit keeps its variant) and their outcomes (one
    # per unit and metric: an outcome fed back twice is joined once). Per-variant moments are SQL sums.
    connection.execute(
        text(
            f"""
            CREATE TABLE experiments (
                name VARCHAR(63) PRIMARY KEY,
                endpoint VARCHAR(63) NOT NULL,
                spec TEXT NOT NULL,
                state VARCHAR(16) NOT NULL,
                decision TEXT,
                actor VARCHAR(200) NOT NULL,
                created_at {float_type} NOT NULL,
                started_at {float_type},
                ended_at {float_type},
                revision INTEGER NOT NULL
            )"""
        )
    )
    connection.execute(text("CREATE INDEX ix_experiments_endpoint ON experiments (endpoint, state)"))
    connection.execute(
        text(
            f"""
            CREATE TABLE experiment_units (
                experiment VARCHAR(63) NOT NULL REFERENCES experiments (name),
                unit VARCHAR(200) NOT NULL,
                variant VARCHAR(63) NOT NULL,
                assigned_at {float_type} NOT NULL,
                covariate {float_type},
                PRIMARY KEY (experiment, unit)
            )"""
        )
    )
    connection.execute(
        text(
            f"""
            CREATE TABLE experiment_outcomes (
                experiment VARCHAR(63) NOT NULL REFERENCES experiments (name),
                unit VARCHAR(200) NOT NULL,
                metric VARCHAR(63) NOT NULL,
                value {float_type} NOT NULL,
                at {float_type} NOT NULL,
                PRIMARY KEY (experiment, unit, metric)
            )"""
        )
    )


def _v10_experiment_assignment(connection: Connection, dialect: str) -> None:
    float_type = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"
    # The routing key of each indexed request: an outcome fed back by request id finds its unit (a user).
    connection.execute(text("ALTER TABLE request_index ADD COLUMN routing_key VARCHAR(200)"))
    # The endpoint's routes before the experiment took them over, restored when it ends.
    connection.execute(text("ALTER TABLE experiments ADD COLUMN baseline TEXT"))
    # Since when it runs (its latest start or resume): requests from before, or from a pause, assign no unit.
    connection.execute(text(f"ALTER TABLE experiments ADD COLUMN running_since {float_type}"))
    # Every look's decision, so the estimates and their confidence sequences can be drawn over time.
    connection.execute(
        text(
            f"""
            CREATE TABLE experiment_looks (
                experiment VARCHAR(63) NOT NULL REFERENCES experiments (name),
                ts {float_type} NOT NULL,
                units INTEGER NOT NULL,
                verdict VARCHAR(32) NOT NULL,
                decision TEXT NOT NULL,
                PRIMARY KEY (experiment, ts)
            )"""
        )
    )


def _v11_optimizations(connection: Connection, dialect: str) -> None:
    float_type = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"
    # Every optimisation asked for, registered or refused, with what was measured: the comparison table
    # of a version's variants is read from here (a refused variant has no model version to carry it).
    connection.execute(
        text(
            f"""
            CREATE TABLE optimizations (
                id VARCHAR(40) NOT NULL PRIMARY KEY,
                model VARCHAR(256) NOT NULL,
                version INTEGER NOT NULL,
                method VARCHAR(64) NOT NULL,
                status VARCHAR(16) NOT NULL,
                settings TEXT NOT NULL,
                result TEXT,
                verdict TEXT,
                variant_version INTEGER,
                error TEXT,
                actor VARCHAR(200) NOT NULL,
                reason TEXT,
                created_at {float_type} NOT NULL,
                started_at {float_type},
                finished_at {float_type}
            )"""
        )
    )
    connection.execute(text("CREATE INDEX ix_optimizations_parent ON optimizations (model, version)"))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "audit log and endpoint definitions", _v1_initial),
    Migration(2, "rollouts and their event history", _v2_rollouts),
    Migration(3, "monitors, alert rules and events, feedback, drift reports", _v3_monitoring),
    Migration(4, "runbook runs, endpoint locks and runbook schedules", _v4_runbooks),
    Migration(5, "endpoint revision history and rejected versions", _v5_endpoint_revisions),
    Migration(
        6, "monitor history (series points) and the request-id index for feedback", _v6_monitor_history
    ),
    Migration(7, "every tick's rollout analysis (estimates and bounds over time)", _v7_rollout_analyses),
    Migration(8, "idempotency keys of changing calls and their answers", _v8_idempotent_requests),
    Migration(9, "A/B experiments, their units and outcomes", _v9_experiments),
    Migration(
        10, "routing keys in the request index, experiment baselines and looks", _v10_experiment_assignment
    ),
    Migration(
        11, "model optimisations: variants asked for, their measurements and verdicts", _v11_optimizations
    ),
)


def _ensure_version_table(connection: Connection, dialect: str) -> None:
    float_type = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"
    connection.execute(
        text(
            "CREATE TABLE IF NOT EXISTS workbench_schema_version ("
            "version INTEGER PRIMARY KEY, description VARCHAR(200) NOT NULL, "
            f"applied_at {float_type} NOT NULL)"
        )
    )


def current_version(db: Database) -> int:
    with db.read() as connection:
        if not inspect(connection).has_table("workbench_schema_version"):
            return 0
        value = connection.execute(text("SELECT MAX(version) FROM workbench_schema_version")).scalar()
        return int(value or 0)


def migrate(db: Database, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Bring the schema up to date; returns the versions applied by this call."""
    applied: list[int] = []
    for migration in sorted(migrations, key=lambda m: m.version):
        with db.write() as connection:
            if db.dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
            _ensure_version_table(connection, db.dialect)
            done = connection.execute(
                text("SELECT 1 FROM workbench_schema_version WHERE version = :v"), {"v": migration.version}
            ).first()
            if done:
                continue
            migration.upgrade(connection, db.dialect)
            connection.execute(
                text(
                    "INSERT INTO workbench_schema_version (version, description, applied_at) VALUES (:v, :d, :t)"
                ),
                {"v": migration.version, "d": migration.description, "t": time.time()},
            )
            applied.append(migration.version)
    return applied
