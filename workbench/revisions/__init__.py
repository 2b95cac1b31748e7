"""Endpoint revision history: every traffic change as an immutable row, and rollback planned from it."""

from workbench.revisions.model import (
    Change,
    Rejection,
    Revision,
    RevisionCause,
    RollbackRequest,
    RollbackResult,
    live_routes,
    routes_label,
)
from workbench.revisions.plan import RollbackPlan, plan_rollback

__all__ = [
    "Change",
    "Rejection",
    "Revision",
    "RevisionCause",
    "RollbackPlan",
    "RollbackRequest",
    "RollbackResult",
    "live_routes",
    "plan_rollback",
    "routes_label",
]
