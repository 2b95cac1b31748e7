"""The current shape of the state-store tables, used by queries.

Migrations (``migrations.py``) own how the tables came to be; this module only describes what they are
now, so queries stay readable. A test checks the two agree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

schema_version = Table(
    "workbench_schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("description", String(200), nullable=False),
    Column("applied_at", Float, nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False, index=True),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False, index=True),
    Column("target", String(500), nullable=False, index=True),
    Column("before", Text, nullable=True),
    Column("after", Text, nullable=True),
    Column("reason", Text, nullable=True),
    Column("link", String(1000), nullable=True),
)

endpoints = Table(
    "endpoints",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("spec", Text, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

rollouts = Table(
    "rollouts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("endpoint", String(128), nullable=False, index=True),
    Column("strategy", String(32), nullable=False),
    Column("spec", Text, nullable=False),
    Column("phase", String(32), nullable=False),
    Column("active", Integer, nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("step_started_at", Float, nullable=False),
    Column("stable_model", String(128), nullable=False),
    Column("stable_version", Integer, nullable=False),
    Column("candidate_model", String(128), nullable=False),
    Column("candidate_version", Integer, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=True),
    Column("revision", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

rollout_events = Table(
    "rollout_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("rollout_id", String(32), ForeignKey("rollouts.id"), nullable=False),
    Column("ts", Float, nullable=False),
    Column("phase", String(32), nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("message", Text, nullable=False),
    Column("evidence", Text, nullable=True),
    Index("ix_rollout_events_rollout", "rollout_id", "id"),
)

# One row per controller tick of a rollout: the decision and its evidence (every check's estimate and bounds).
rollout_analyses = Table(
    "rollout_analyses",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("rollout_id", String(32), ForeignKey("rollouts.id"), nullable=False),
    Column("ts", Float, nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("weight", Float, nullable=True),
    Column("decision", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("evidence", Text, nullable=False),
    Index("ix_rollout_analyses_rollout", "rollout_id", "id"),
)

idempotent_requests = Table(
    "idempotent_requests",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("actor", String(200), nullable=False),
    Column("method", String(10), nullable=False),
    Column("path", String(1000), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("claimed_at", Float, nullable=False),
    Column("answered_at", Float, nullable=True),
    Column("status", Integer, nullable=True),
    Column("body", LargeBinary, nullable=True),
    Column("content_type", String(200), nullable=True),
    Index("ix_idempotent_requests_claimed", "claimed_at"),
)

experiments = Table(
    "experiments",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("endpoint", String(63), nullable=False),
    Column("spec", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("decision", Text, nullable=True),
    Column("actor", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("ended_at", Float, nullable=True),
    Column("revision", Integer, nullable=False),
    Column("baseline", Text, nullable=True),
    Column("running_since", Float, nullable=True),
    Index("ix_experiments_endpoint", "endpoint", "state"),
)

experiment_looks = Table(
    "experiment_looks",
    metadata,
    Column("experiment", String(63), ForeignKey("experiments.name"), primary_key=True),
    Column("ts", Float, primary_key=True),
    Column("units", Integer, nullable=False),
    Column("verdict", String(32), nullable=False),
    Column("decision", Text, nullable=False),
)

experiment_units = Table(
    "experiment_units",
    metadata,
    Column("experiment", String(63), ForeignKey("experiments.name"), primary_key=True),
    Column("unit", String(200), primary_key=True),
    Column("variant", String(63), nullable=False),
    Column("assigned_at", Float, nullable=False),
    Column("covariate", Float, nullable=True),
)

experiment_outcomes = Table(
    "experiment_outcomes",
    metadata,
    Column("experiment", String(63), ForeignKey("experiments.name"), primary_key=True),
    Column("unit", String(200), primary_key=True),
    Column("metric", String(63), primary_key=True),
    Column("value", Float, nullable=False),
    Column("at", Float, nullable=False),
)

monitors = Table(
    "monitors",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("endpoint", String(128), nullable=False, index=True),
    Column("spec", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("monitor", String(64), ForeignKey("monitors.name"), nullable=False, index=True),
    Column("spec", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

alert_events = Table(
    "alert_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("rule", String(64), nullable=False),
    Column("monitor", String(64), nullable=False),
    Column("endpoint", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("value", Float, nullable=True),
    Column("message", Text, nullable=False),
    Column("details", Text, nullable=True),
    Index("ix_alert_events_rule", "rule", "id"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("endpoint", String(128), primary_key=True),
    Column("request_id", String(200), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("label", Float, nullable=False),
    Column("predicted_at", Float, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("actor", String(200), nullable=False),
    Index("ix_feedback_predicted", "endpoint", "predicted_at"),
)

monitor_reports = Table(
    "monitor_reports",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("monitor", String(64), nullable=False),
    Column("ts", Float, nullable=False),
    Column("window_start", Float, nullable=False),
    Column("window_end", Float, nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("html_path", Text, nullable=False),
    Column("json_path", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Index("ix_monitor_reports_monitor", "monitor", "id"),
)

runbook_runs = Table(
    "runbook_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("runbook", String(128), nullable=False),
    Column("parameters", Text, nullable=False),
    Column("trigger", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("endpoint", String(128), nullable=True),
    Column("status", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("timeout_s", Float, nullable=False),
    Column("summary", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("failed_cell", Text, nullable=True),
    Column("archive_dir", Text, nullable=False),
    Column("owner", String(200), nullable=False),
    Index("ix_runbook_runs_created", "created_at"),
    Index("ix_runbook_runs_status", "status"),
)

endpoint_locks = Table(
    "endpoint_locks",
    metadata,
    Column("endpoint", String(128), primary_key=True),
    Column("run_id", String(40), nullable=False),
    Column("acquired_at", Float, nullable=False),
)

runbook_schedules = Table(
    "runbook_schedules",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("runbook", String(128), nullable=False),
    Column("spec", Text, nullable=False),
    Column("every_s", Float, nullable=False),
    Column("next_at", Float, nullable=False),
    Column("enabled", Integer, nullable=False),
    Column("last_run_id", String(40), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("actor", String(200), nullable=False),
)

# Every traffic change of an endpoint, immutable (the database refuses edits, as for the audit log).
endpoint_revisions = Table(
    "endpoint_revisions",
    metadata,
    Column("endpoint", String(128), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("ts", Float, nullable=False),
    Column("cause", String(32), nullable=False),
    Column("spec", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=True),
    Column("rollout_id", String(32), nullable=True),
    Column("runbook_run_id", String(40), nullable=True),
    Column("alert", String(200), nullable=True),
    Column("restores", Integer, nullable=True),
    Column("audit_event_id", BigInteger, nullable=True),
)

# Versions an analysis rolled back on an endpoint: no rollout or rollback returns to them without force.
endpoint_rejections = Table(
    "endpoint_rejections",
    metadata,
    Column("endpoint", String(128), primary_key=True),
    Column("model", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("ts", Float, nullable=False),
    Column("rollout_id", String(32), nullable=True),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("evidence", Text, nullable=True),
)

# A monitor's series, one row each: key "all" for the monitor as a whole, a version number for
# per-version traffic series, a column for ``drift``, a rule for ``alert_state``.
monitor_series = Table(
    "monitor_series",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("monitor", String(64), nullable=False),
    Column("series", String(64), nullable=False),
    Column("key", String(200), nullable=False),
    Index("ux_monitor_series", "monitor", "series", "key", unique=True),
)

# Every look's value of every series, as computed (WITHOUT ROWID on SQLite: clustered by series, time).
monitor_points = Table(
    "monitor_points",
    metadata,
    Column("series_id", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", Float, primary_key=True),
    Column("value", Float, nullable=False),
    sqlite_with_rowid=False,
)

# Per series and minute (ts = the minute's start): count, sum, min and max of its points.
monitor_rollups = Table(
    "monitor_rollups",
    metadata,
    Column("series_id", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", Float, primary_key=True),
    Column("n", Integer, nullable=False),
    Column("total", Float, nullable=False),
    Column("low", Float, nullable=False),
    Column("high", Float, nullable=False),
    sqlite_with_rowid=False,
)

# Request id -> the prediction it names, so a label fed back days later still joins its request.
request_index = Table(
    "request_index",
    metadata,
    Column("endpoint", String(128), primary_key=True),
    Column("request_id", String(200), primary_key=True),
    Column("ts", Float, nullable=False),
    Column("version", Integer, nullable=False),
    Column("score", Float, nullable=True),
    Column("routing_key", String(200), nullable=True),
    Index("ix_request_index_ts", "endpoint", "ts"),
)

# Optimisations of model versions: each variant asked for, what was measured, registered or refused.
optimizations = Table(
    "optimizations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("model", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("method", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("settings", Text, nullable=False),
    Column("result", Text, nullable=True),
    Column("verdict", Text, nullable=True),
    Column("variant_version", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Index("ix_optimizations_parent", "model", "version"),
)
