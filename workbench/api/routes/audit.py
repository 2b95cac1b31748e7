"""The audit log, queryable by target, action, actor and time range."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query

from workbench.api.deps import control_plane
from workbench.control_plane import ControlPlane
from workbench.store import AuditEvent
from workbench.store.audit import MAX_QUERY_LIMIT

router = APIRouter(tags=["audit"])


@router.get("/audit")
def query_audit(
    target: str | None = Query(default=None, max_length=500),
    target_prefix: str | None = Query(default=None, max_length=500),
    action: str | None = Query(default=None, max_length=100),
    actor: str | None = Query(default=None, max_length=200),
    since: datetime | None = None,
    until: datetime | None = None,
    after_id: int | None = Query(
        default=None,
        ge=0,
        le=2**63 - 1,
        description="only events after this one (a cursor: poll with the last id)",
    ),
    limit: int = Query(default=100, ge=1, le=MAX_QUERY_LIMIT),
    order: str = Query(default="desc", pattern="^(asc|desc)$"),
    plane: ControlPlane = Depends(control_plane),
) -> list[AuditEvent]:
    return plane.audit.query(
        target=target,
        target_prefix=target_prefix,
        action=action,
        actor=actor,
        since=since,
        until=until,
        after_id=after_id,
        limit=limit,
        newest_first=order == "desc",
    )
