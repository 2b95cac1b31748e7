"""The feature store as the control plane offers it: apply definitions, materialise, report; audited.

Every change goes through Feast's own commands (:mod:`workbench.features.repo`); this adds what an
operations tool owes its users: one command at a time, a clear refusal when there is nothing to do
(materialising before anything was applied), the registry's state after each change, and an audit event
naming who did it.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from workbench.errors import ConflictError, ValidationError
from workbench.features.catalog import describe
from workbench.features.repo import FeatureRepo

if TYPE_CHECKING:
    from workbench.control_plane import ControlPlane


class FeatureStoreService:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        settings = plane.settings
        self.repo = FeatureRepo(settings.feature_repo_path, settings.feature_online_store)
        self._store: Any = None
        self._lock = threading.Lock()

    def _feast(self) -> Any:
        with self._lock:
            if self._store is None:
                self._store = self.repo.store()
            return self._store

    def status(self) -> dict[str, Any]:
        """Where the repository is, what it defines, and how far each view was materialised."""
        self.repo.ensure()
        described = describe(self._feast()) if self._registry_exists() else _empty()
        return {
            "repo": str(self.repo.path),
            "owned": self.repo.owned,
            "online_store": self.repo.online_store if self.repo.owned else "as feature_store.yaml says",
            "definitions": [p.name for p in self.repo.definition_files()],
            **described,
        }

    def apply(self, *, actor: str, reason: str | None = None) -> dict[str, Any]:
        """``feast apply``: register or update the repository's entities, views and services."""
        output = self.repo.apply()
        status = self.status()
        self._audit("features.apply", status, actor=actor, reason=reason)
        return {"status": status, "output": output}

    def materialize(
        self,
        *,
        actor: str,
        end: datetime | None = None,
        start: datetime | None = None,
        views: list[str] | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Load the offline store's latest values into the online store, up to ``end`` (now by default)."""
        before = self.status()
        known = {v["name"] for v in before["feature_views"]}
        if not known:
            raise ConflictError("no feature view is applied yet: run `workbench features apply` first")
        unknown = sorted(set(views or []) - known)
        if unknown:
            raise ValidationError(
                f"no feature view named {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}",
                known=sorted(known),
            )
        end = end or datetime.now(UTC)
        if start is not None and start >= end:
            raise ValidationError(f"start ({start.isoformat()}) must be before end ({end.isoformat()})")
        output = self.repo.materialize(
            end.isoformat(), start=start.isoformat() if start else None, views=views
        )
        status = self.status()
        self._audit("features.materialize", status, actor=actor, reason=reason, until=end.isoformat())
        return {"status": status, "output": output}

    def _registry_exists(self) -> bool:
        return not self.repo.owned or (self.repo.path / "data" / "registry.db").exists()

    def _audit(
        self, action: str, status: dict[str, Any], *, actor: str, reason: str | None, **extra: Any
    ) -> None:
        with self.plane.db.write() as connection:
            self.plane.audit.record(
                connection,
                actor=actor,
                action=action,
                target="features:" + str(self.repo.path),
                after={
                    "feature_views": {v["name"]: v["materialized_until"] for v in status["feature_views"]},
                    "feature_services": [s["name"] for s in status["feature_services"]],
                    **extra,
                },
                reason=reason,
            )


def _empty() -> dict[str, Any]:
    return {"entities": [], "feature_views": [], "feature_services": []}
