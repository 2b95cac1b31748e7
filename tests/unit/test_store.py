"""The state store on both supported backends: migrations, the audit log, endpoint definitions."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Integer, String, inspect, text
from sqlalchemy.exc import DBAPIError

from tests._servers import PostgresCluster
from workbench.errors import ConflictError, NotFoundError, ValidationError
from workbench.specs.endpoint import EndpointSpec
from workbench.store import AuditLog, Database, EndpointRepository, current_version, migrate
from workbench.store.migrations import MIGRATIONS, Migration
from workbench.store.schema import metadata

T0 = 1_700_000_000.0


@pytest.fixture
def fresh_db(state_url: str) -> Iterator[Database]:
    db = Database(state_url)
    yield db
    db.dispose()


@pytest.fixture
def db(fresh_db: Database) -> Database:
    migrate(fresh_db)
    return fresh_db


@pytest.fixture
def audit(db: Database) -> AuditLog:
    return AuditLog(db)


def _spec(name: str = "fraud", version: int = 1, **fields: Any) -> EndpointSpec:
    return EndpointSpec(
        name=name, routes=[{"model": "fraud-model", "version": version, "weight": 100}], **fields
    )


# --- migrations ---------------------------------------------------------------------------------------------


def test_migrate_applies_every_version_once_in_order(fresh_db: Database) -> None:
    versions = [m.version for m in MIGRATIONS]
    assert versions == list(range(1, len(versions) + 1))
    assert current_version(fresh_db) == 0
    assert migrate(fresh_db) == versions
    assert current_version(fresh_db) == versions[-1]
    assert migrate(fresh_db) == []
    with fresh_db.read() as connection:
        rows = connection.execute(text("SELECT version FROM workbench_schema_version ORDER BY version")).all()
    assert [row[0] for row in rows] == versions


def test_a_store_at_version_1_is_upgraded_in_place(fresh_db: Database) -> None:
    """An existing installation keeps its data when a later migration adds tables."""
    migrate(fresh_db, MIGRATIONS[:1])
    AuditLog(fresh_db).append(actor="a", action="model.register", target="models:/m/1")
    assert migrate(fresh_db) == [m.version for m in MIGRATIONS[1:]]
    assert [e.target for e in AuditLog(fresh_db).query()] == ["models:/m/1"]


def test_migrated_tables_match_schema_module(db: Database) -> None:
    """schema.py describes what the migrations create: same tables, columns, types, keys and indexes."""
    with db.read() as connection:
        inspector = inspect(connection)
        tables = set(inspector.get_table_names()) - {"sqlite_sequence"}
        assert tables == set(metadata.tables)
        for table in metadata.sorted_tables:
            reflected = {column["name"]: column for column in inspector.get_columns(table.name)}
            assert list(reflected) == [column.name for column in table.columns], table.name
            for column in table.columns:
                found = reflected[column.name]
                where = f"{table.name}.{column.name}"
                if not (column.primary_key and connection.dialect.name == "sqlite"):
                    # SQLite reports every PRIMARY KEY column as nullable unless declared NOT NULL.
                    assert found["nullable"] == column.nullable, where
                assert found["type"]._type_affinity is column.type._type_affinity, where
                if column.type._type_affinity is String:
                    assert getattr(found["type"], "length", None) == getattr(column.type, "length", None), (
                        where
                    )
                if column.type._type_affinity is Integer:
                    expected = column.type.compile(dialect=connection.dialect)
                    assert found["type"].compile(dialect=connection.dialect) == expected, where
            primary_key = inspector.get_pk_constraint(table.name)["constrained_columns"]
            assert primary_key == [column.name for column in table.primary_key.columns], table.name
            indexed = {tuple(index["column_names"]) for index in inspector.get_indexes(table.name)}
            expected_indexed = {tuple(column.name for column in index.columns) for index in table.indexes}
            assert indexed == expected_indexed, table.name


def _v2_probe(connection: Connection, _dialect: str) -> None:
    connection.execute(text("CREATE TABLE migration_probe (n INTEGER NOT NULL)"))
    connection.execute(text("INSERT INTO migration_probe (n) VALUES (1)"))


def test_concurrent_migrate_applies_each_migration_exactly_once(state_url: str) -> None:
    probe_version = MIGRATIONS[-1].version + 1
    migrations = (*MIGRATIONS, Migration(probe_version, "probe", _v2_probe))
    workers = 4
    barrier = threading.Barrier(workers)
    applied: list[list[int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        db = Database(state_url)
        try:
            barrier.wait(timeout=60)
            result = migrate(db, migrations)
            with lock:
                applied.append(result)
        except BaseException as exc:
            with lock:
                errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert len(applied) == workers
    assert sorted(v for result in applied for v in result) == list(range(1, probe_version + 1))
    check = Database(state_url)
    try:
        assert current_version(check) == probe_version
        with check.read() as connection:
            versions = connection.execute(text("SELECT version FROM workbench_schema_version")).all()
            probes = connection.execute(text("SELECT COUNT(*) FROM migration_probe")).scalar()
        assert sorted(row[0] for row in versions) == list(range(1, probe_version + 1))
        assert probes == 1
    finally:
        check.dispose()


# --- audit log ----------------------------------------------------------------------------------------------


def test_append_and_record_return_increasing_ids(db: Database, audit: AuditLog) -> None:
    first = audit.append(actor="alice", action="model.register", target="models:/a/1")
    with db.write() as connection:
        second = audit.record(connection, actor="bob", action="model.alias", target="models:/a/2")
        third = audit.record(connection, actor="bob", action="model.alias", target="models:/a/3")
    fourth = audit.append(actor="carol", action="endpoint.create", target="endpoint:fraud")
    assert first < second < third < fourth
    assert audit.count() == 4
    assert [event.id for event in audit.query(newest_first=False)] == [first, second, third, fourth]


@pytest.fixture
def populated(audit: AuditLog) -> dict[str, int]:
    rows = [
        ("alice", "model.register", "models:/fraud/1", T0),
        ("alice", "model.alias", "models:/fraud/1", T0 + 10),
        ("bob", "model.register", "models:/fraud/2", T0 + 20),
        ("bob", "endpoint.create", "endpoint:fraud", T0 + 30),
        ("carol", "model.register", "models:/churn/1", T0 + 40),
        ("carol", "model.register", "lit%eral/1", T0 + 50),
        ("carol", "model.register", "litXeral/1", T0 + 60),
        ("carol", "model.register", "under_score/1", T0 + 70),
        ("carol", "model.register", "underXscore/1", T0 + 80),
        ("carol", "model.register", "back\\slash/1", T0 + 90),
    ]
    return {
        f"{target}@{at}": audit.append(actor=actor, action=action, target=target, at=at)
        for actor, action, target, at in rows
    }


def _targets(events: list[Any]) -> list[str]:
    return [event.target for event in events]


@pytest.mark.usefixtures("populated")
def test_query_filters(audit: AuditLog) -> None:
    assert _targets(audit.query(target="models:/fraud/1", newest_first=False)) == ["models:/fraud/1"] * 2
    assert _targets(audit.query(target_prefix="models:/fraud/", newest_first=False)) == [
        "models:/fraud/1",
        "models:/fraud/1",
        "models:/fraud/2",
    ]
    assert {e.action for e in audit.query(action="model.register")} == {"model.register"}
    assert len(audit.query(action="model.register")) == 8
    assert {e.actor for e in audit.query(actor="bob")} == {"bob"}
    assert len(audit.query(actor="bob")) == 2
    both = audit.query(actor="alice", action="model.alias")
    assert [(e.actor, e.action, e.target) for e in both] == [("alice", "model.alias", "models:/fraud/1")]
    assert audit.query(target="nothing-here") == []


@pytest.mark.usefixtures("populated")
def test_target_prefix_matches_wildcards_literally(audit: AuditLog) -> None:
    cases = {
        "lit%": ["lit%eral/1"],
        "under_": ["under_score/1"],
        "back\\": ["back\\slash/1"],
        "%": [],
        "_": [],
    }
    found = {prefix: _targets(audit.query(target_prefix=prefix)) for prefix in cases}
    assert found == cases


@pytest.mark.usefixtures("populated")
def test_query_time_window_with_epochs_and_datetimes(audit: AuditLog) -> None:
    by_epoch = audit.query(since=T0 + 5, until=T0 + 35, newest_first=False)
    assert [e.at.timestamp() for e in by_epoch] == [T0 + 10, T0 + 20, T0 + 30]
    since = datetime.fromtimestamp(T0 + 5, tz=UTC)
    until = datetime.fromtimestamp(T0 + 35, tz=UTC)
    assert audit.query(since=since, until=until, newest_first=False) == by_epoch
    naive = audit.query(
        since=since.replace(tzinfo=None), until=until.replace(tzinfo=None), newest_first=False
    )
    assert naive == by_epoch, "naive datetimes are read as UTC"
    assert len(audit.query(since=T0 + 85)) == 1
    assert len(audit.query(until=T0 + 5)) == 1
    assert audit.query(since=T0 + 1000) == []
    assert all(event.at.tzinfo is not None for event in by_epoch)


@pytest.mark.usefixtures("populated")
def test_query_limit_and_order(audit: AuditLog) -> None:
    newest = audit.query(limit=3)
    oldest = audit.query(limit=3, newest_first=False)
    assert [e.at.timestamp() for e in newest] == [T0 + 90, T0 + 80, T0 + 70]
    assert [e.at.timestamp() for e in oldest] == [T0, T0 + 10, T0 + 20]
    everything = audit.query(limit=1000)
    assert len(everything) == 10
    assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True)


def test_query_rejects_bad_arguments(tmp_path: Path) -> None:
    """Arguments are checked before the database is touched, so one backend is enough."""
    db = Database(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        migrate(db)
        audit = AuditLog(db)
        bad: list[dict[str, Any]] = [
            {"since": T0 + 10, "until": T0},
            {"since": datetime.fromtimestamp(T0 + 10, tz=UTC), "until": datetime.fromtimestamp(T0, tz=UTC)},
            {"since": datetime.fromtimestamp(T0 + 10, tz=UTC), "until": T0},
            {"limit": 0},
            {"limit": -1},
            {"limit": 10_001},
            {"since": "yesterday"},
        ]
        for kwargs in bad:
            with pytest.raises(ValidationError):
                audit.query(**kwargs)
        assert audit.query(since=T0, until=T0, limit=10_000) == []
    finally:
        db.dispose()


def test_before_and_after_round_trip_as_json(audit: AuditLog) -> None:
    before: dict[str, Any] = {
        "routes": [{"model": "m", "version": 1, "weight": 100.0}],
        "tags": {"a": None, "b": [1, 2.5]},
    }
    after: list[Any] = [None, True, "ünïcødé", {"nested": {"deeper": [[], {}]}}]
    audit.append(actor="a", action="x", target="t/1", before=before, after=after, reason="why", link="run:7")
    audit.append(actor="a", action="x", target="t/2")
    first, second = audit.query(newest_first=False)
    assert first.before == before
    assert first.after == after
    assert (first.reason, first.link) == ("why", "run:7")
    assert (second.before, second.after, second.reason, second.link) == (None, None, None, None)


def test_audit_log_is_append_only_in_the_database(db: Database, audit: AuditLog) -> None:
    audit.append(actor="alice", action="model.register", target="models:/a/1", after={"v": 1})
    audit.append(actor="bob", action="model.alias", target="models:/a/1")
    before = audit.query(newest_first=False)
    statements = [
        "UPDATE audit_events SET actor = 'mallory'",
        "DELETE FROM audit_events",
        "DELETE FROM audit_events WHERE id > 0",
    ]
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"), db.write() as connection:
            connection.execute(text(statement))
        assert audit.query(newest_first=False) == before, statement


def test_audit_log_refuses_truncate_on_postgresql(postgres: PostgresCluster) -> None:
    """Row-level triggers do not fire on TRUNCATE: without a statement trigger the log can be emptied."""
    db = Database(postgres.create_database(f"t_{uuid.uuid4().hex[:12]}"))
    try:
        migrate(db)
        audit = AuditLog(db)
        audit.append(actor="alice", action="model.register", target="models:/a/1")
        with pytest.raises(DBAPIError), db.write() as connection:
            connection.execute(text("TRUNCATE audit_events"))
        assert audit.count() == 1
    finally:
        db.dispose()


class _BoomError(Exception):
    pass


def test_failed_write_transaction_leaves_nothing(db: Database, audit: AuditLog) -> None:
    repository = EndpointRepository()
    kept = audit.append(actor="alice", action="before", target="t")

    def change_then_fail() -> None:
        with db.write() as connection:
            repository.create(connection, _spec("doomed"))
            audit.record(connection, actor="alice", action="endpoint.create", target="endpoint:doomed")
            assert repository.get(connection, "doomed").revision == 1
            raise _BoomError

    with pytest.raises(_BoomError):
        change_then_fail()
    with db.read() as connection:
        assert repository.list(connection) == []
        with pytest.raises(NotFoundError):
            repository.get(connection, "doomed")
    assert [event.id for event in audit.query()] == [kept]
    assert audit.query(target="endpoint:doomed") == []


# --- endpoints ----------------------------------------------------------------------------------------------


def test_endpoint_create_get_list(db: Database) -> None:
    repository = EndpointRepository()
    with db.write() as connection:
        created = repository.create(connection, _spec("fraud"))
        repository.create(connection, _spec("churn", device="cpu", replicas=2))
    assert created.spec == _spec("fraud")
    assert created.revision == 1
    assert created.created_at == created.updated_at
    assert created.created_at.tzinfo is not None
    with db.read() as connection:
        fetched = repository.get(connection, "fraud")
        listed = repository.list(connection)
    assert fetched == created
    assert [record.spec.name for record in listed] == ["churn", "fraud"]
    assert listed[0].spec == _spec("churn", device="cpu", replicas=2)


def test_endpoint_create_duplicate_conflicts(db: Database) -> None:
    repository = EndpointRepository()
    with db.write() as connection:
        repository.create(connection, _spec("fraud"))
    with pytest.raises(ConflictError), db.write() as connection:
        repository.create(connection, _spec("fraud", version=2))
    with db.read() as connection:
        assert repository.get(connection, "fraud").spec == _spec("fraud")


def test_endpoint_unknown_is_not_found(db: Database) -> None:
    repository = EndpointRepository()
    calls: dict[str, Callable[[Connection], object]] = {
        "get": lambda connection: repository.get(connection, "ghost"),
        "delete": lambda connection: repository.delete(connection, "ghost"),
        "replace": lambda connection: repository.replace(connection, _spec("ghost")),
    }
    for operation, call in calls.items():
        with pytest.raises(NotFoundError) as caught, db.write() as connection:
            call(connection)
        assert caught.value.details == {"endpoint": "ghost"}, operation


def test_endpoint_replace_increments_revision(db: Database) -> None:
    repository = EndpointRepository()
    with db.write() as connection:
        created = repository.create(connection, _spec("fraud"))
    with db.write() as connection:
        second = repository.replace(connection, _spec("fraud", version=2), expected_revision=1)
    with db.write() as connection:
        third = repository.replace(connection, _spec("fraud", version=3))
    assert (second.revision, third.revision) == (2, 3)
    assert third.spec == _spec("fraud", version=3)
    assert third.created_at == created.created_at
    with db.read() as connection:
        assert repository.get(connection, "fraud") == third


def test_endpoint_replace_with_stale_revision_changes_nothing(db: Database) -> None:
    repository = EndpointRepository()
    with db.write() as connection:
        repository.create(connection, _spec("fraud"))
        current = repository.replace(connection, _spec("fraud", version=2))
    with pytest.raises(ConflictError) as caught, db.write() as connection:
        repository.replace(connection, _spec("fraud", version=9), expected_revision=1)
    assert caught.value.details["revision"] == 2
    with db.read() as connection:
        assert repository.get(connection, "fraud") == current


def test_endpoint_delete_returns_old_record(db: Database) -> None:
    repository = EndpointRepository()
    with db.write() as connection:
        repository.create(connection, _spec("fraud"))
        current = repository.replace(connection, _spec("fraud", version=2))
        repository.create(connection, _spec("churn"))
    with db.write() as connection:
        deleted = repository.delete(connection, "fraud")
    assert deleted == current
    with db.read() as connection:
        assert [record.spec.name for record in repository.list(connection)] == ["churn"]
        with pytest.raises(NotFoundError):
            repository.get(connection, "fraud")


# --- configuration ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["mysql://x", "oracle://u@h/db", "not a url", "", "://", "sqlite"])
def test_unsupported_or_garbage_url_is_a_validation_error(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Database(url)
    assert caught.value.details == {"field": "state_url"}
