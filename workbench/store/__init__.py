"""Workbench's own state (audit log, endpoints, and later rollouts and monitors) in SQL."""

from workbench.store.audit import AuditEvent, AuditLog
from workbench.store.endpoints import EndpointRecord, EndpointRepository
from workbench.store.engine import Database
from workbench.store.migrations import current_version, migrate

__all__ = [
    "AuditEvent",
    "AuditLog",
    "Database",
    "EndpointRecord",
    "EndpointRepository",
    "current_version",
    "migrate",
]
