"""The current shape of the state-store tables, used by queries.

Migrations (``migrations.py``) own how the tables came to be; this module only describes what they are
now, so queries stay readable. A test checks the two agree.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Integer, MetaData, String, Table, Text

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
