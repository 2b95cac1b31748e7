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

from workbench.errors import ConflictError, UnavailableError, ValidationError
from workbench.features.catalog import describe
from workbench.features.lookup import plan_lookup
from workbench.features.online import open_reader
from workbench.features.replica import store_label
from workbench.features.repo import FeatureRepo
from workbench.serving.model import read_mlmodel
from workbench.serving.schema import schema_from_signature

if TYPE_CHECKING:
    from workbench.control_plane import ControlPlane
    from workbench.specs.endpoint import EndpointSpec


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

    def check_lookup(self, spec: EndpointSpec) -> None:
        """Before anything starts: every served version fits the lookup (``ValidationError`` naming what
        does not), and the online store answers (``UnavailableError`` with its reason)."""
        lookup = spec.features
        if lookup is None:
            return
        if not self._registry_exists():
            raise ValidationError(
                f"endpoint {spec.name!r} looks features up, but no feature definitions are applied in "
                f"{self.repo.path}: run `workbench features apply` (and `materialize`) first"
            )
        store = self._feast()
        catalog = describe(store)
        plans = []
        versions = [(r.model, r.version) for r in spec.routes] + [(s.model, s.version) for s in spec.shadows]
        for model, version in versions:
            mlmodel = read_mlmodel(self.plane.registry.model_path(model, version))
            try:
                schema = schema_from_signature(mlmodel.get("signature"))
                plans.append(plan_lookup(lookup, schema, catalog))
            except ValidationError as exc:
                raise ValidationError(
                    f"models:/{model}/{version} on {spec.name!r}: {exc.message}", **exc.details
                ) from None
            except ValueError as exc:
                raise ValidationError(f"models:/{model}/{version}: {exc}") from None
        plan = plans[0]
        label = store_label(store)
        probe: list[Any] = [0] if plan.key_type == "int64" else ["0"]
        for read in plan.reads:
            reader: Any = None
            try:
                reader = open_reader(store, read.view, read.features, plan.join_key, plan.key_type)
                reader.read(probe)
            except Exception as exc:
                raise UnavailableError(
                    f"the online feature store ({label}) cannot be read, so {spec.name!r} was not changed: "
                    f"{type(exc).__name__}: {exc}",
                    store=label,
                ) from None
            finally:
                if hasattr(reader, "close"):
                    reader.close()

    def historical(self, endpoint: str, ids: list[Any], timestamps: list[float]) -> dict[str, Any]:
        """The point-in-time join for an endpoint's lookup: its fetched inputs, per (id, time)."""
        from workbench.features.training import historical_features

        spec = self.plane.get_endpoint(endpoint).spec
        if spec.features is None:
            raise ValidationError(
                f"endpoint {endpoint!r} has no feature lookup: its requests carry the features"
            )
        if len(ids) != len(timestamps):
            raise ValidationError(f"{len(ids)} ids but {len(timestamps)} timestamps: give one time per id")
        route = max(spec.routes, key=lambda r: r.weight)
        mlmodel = read_mlmodel(self.plane.registry.model_path(route.model, route.version))
        store = self._feast()
        plan = plan_lookup(spec.features, schema_from_signature(mlmodel.get("signature")), describe(store))
        try:
            frame = historical_features(store, plan, ids, timestamps)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"the point-in-time join refused the rows: {exc}") from None
        return {
            "columns": {
                name: [None if isinstance(v, float) and v != v else v for v in frame[name].tolist()]
                for name in frame.columns
            },
            "fetched": plan.describe()["fetched"],
        }

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
