"""The state store's connection: SQLAlchemy Core on SQLite (WAL) by default, PostgreSQL by URL.

SQLite's Python driver opens transactions lazily and never as writers, so two processes that read and
then write deadlock into "database is locked". We take over BEGIN (SQLAlchemy's documented recipe) and
start write transactions with ``BEGIN IMMEDIATE``: the writer lock is taken up front, waits politely
under ``busy_timeout``, and a transaction either commits whole or leaves nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import NullPool

from workbench.errors import UnavailableError, ValidationError

_WRITE_FLAG = "workbench_write"


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        _ensure_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.info.pop(_WRITE_FLAG, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _ensure_wal(cursor: Any) -> None:
    """Switch the file to WAL once (it is persistent). Switching needs a moment with no other writer and
    does not wait on the busy handler, so several processes opening a fresh database retry briefly."""
    import sqlite3
    import time

    deadline = time.monotonic() + 30
    while True:
        mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() in ("wal", "memory"):
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValidationError(f"invalid state-store URL: {exc}", field="state_url") from None
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            url = str(parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    raise ValidationError(
        f"unsupported state-store backend {parsed.get_backend_name()!r}: use sqlite:/// or postgresql://",
        field="state_url",
    )


class Database:
    """Transactions on the state store: ``write()`` for changes, ``read()`` for queries."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One atomic write transaction: everything inside commits together or not at all."""
        try:
            with self.engine.connect() as connection:
                connection.info[_WRITE_FLAG] = True
                with connection.begin():
                    yield connection
        except OperationalError as exc:
            raise UnavailableError(f"state store unavailable: {exc.orig}") from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as connection, connection.begin():
                yield connection
        except OperationalError as exc:
            raise UnavailableError(f"state store unavailable: {exc.orig}") from exc

    def dispose(self) -> None:
        self.engine.dispose()
