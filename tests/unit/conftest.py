"""Fixtures the unit tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from workbench.store import Database, migrate


@pytest.fixture
def db(state_url: str) -> Iterator[Database]:
    """A migrated state store of each kind the product supports (SQLite and PostgreSQL)."""
    database = Database(state_url)
    migrate(database)
    yield database
    database.dispose()
