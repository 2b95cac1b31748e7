"""What the runbook engine needs from the control plane: its settings, the state store, the audit log.

A seam, not the whole :class:`~workbench.control_plane.ControlPlane`: runs change endpoints through the
API like everybody (see ``docs/architecture.md``), so the engine itself only records runs and audits them.
"""

from __future__ import annotations

from typing import Protocol

from workbench.settings import Settings
from workbench.store import AuditLog, Database


class RunbookHost(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def db(self) -> Database: ...

    @property
    def audit(self) -> AuditLog: ...
