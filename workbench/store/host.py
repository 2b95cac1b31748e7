"""What every subsystem needs from whoever hosts it: the settings, the state store and the audit log.

The rollout controller, the monitors and the runbook engine each extend this with the few calls of the
control plane they make, so none of them depends on the whole ``ControlPlane``.
"""

from __future__ import annotations

from typing import Protocol

from workbench.settings import Settings
from workbench.store.audit import AuditLog
from workbench.store.engine import Database


class StoreHost(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def db(self) -> Database: ...

    @property
    def audit(self) -> AuditLog: ...
