"""What the runbook engine needs from the control plane: its settings, the state store, the audit log.

A seam, not the whole :class:`~workbench.control_plane.ControlPlane`: runs change endpoints through the
API like everybody (see ``docs/architecture.md``), so the engine itself only records runs and audits them.
"""

from __future__ import annotations

from typing import Protocol

from workbench.store.host import StoreHost


class RunbookHost(StoreHost, Protocol):
    """Nothing beyond the store host: the engine records runs and audits them."""
