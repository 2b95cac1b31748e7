"""One endpoint: its traffic per version over time, its revisions, replicas, and what can be done to it."""

from __future__ import annotations

from typing import Any

import param

from workbench.client import Client
from workbench.errors import WorkbenchError
from workbench.optimize.table import comparison
from workbench.records.endpoints import EndpointRecord
from workbench.records.optimizations import OptimizationRecord
from workbench.records.rollouts import RolloutRecord
from workbench.specs.features import FeatureLookup
from workbench.ui import intents
from workbench.ui.feed import Snapshot, Update
from workbench.ui.models.base import PageModel
from workbench.ui.plans import Preview

STRATEGIES = intents.STRATEGIES
#: Why, in the audit log, for what is done from a dashboard page.
REASON = "from the dashboard"


def lookup_summary(lookup: FeatureLookup) -> str:
    """How an endpoint with a feature lookup is called, as plain text (the page escapes it): ``called with
    customer_id, features from feature service churn_features, missing: refuse``."""
    called = lookup.entity
    if lookup.join_key is not None and lookup.join_key != lookup.entity:
        called += f" (Feast join key {lookup.join_key})"
    if lookup.service is not None:
        source = f"feature service {lookup.service}"
    else:
        views = list(dict.fromkeys(ref.split(":", 1)[0] for ref in lookup.features))
        count = len(lookup.features)
        source = (
            f"{count} feature{'s' if count != 1 else ''} of view{'s' if len(views) != 1 else ''} "
            + ", ".join(views)
        )
    return f"called with {called}, features from {source}, missing: {lookup.missing}"


def variant_tables(
    record: EndpointRecord | None, optimizations: tuple[OptimizationRecord, ...]
) -> dict[str, list[dict[str, Any]]]:
    """The comparison table of each version the endpoint serves that has had variants asked of it."""
    if record is None:
        return {}
    tables: dict[str, list[dict[str, Any]]] = {}
    for route in record.spec.routes:
        asked = [o for o in optimizations if o.model == route.model and o.version == route.version]
        if asked:
            tables[f"models:/{route.model}/{route.version}"] = comparison(asked)
    return tables


class EndpointModel(PageModel):
    endpoint = param.String(default="", doc="the endpoint shown")
    window_s = param.Integer(default=900, bounds=(60, 3600), doc="seconds of history drawn")
    points = param.Dict(default={}, doc="key (all, a version) -> columns: what the charts open with")
    delta = param.Dict(default={}, doc="the newest points only: what the charts stream")
    record = param.ClassSelector(class_=EndpointRecord, default=None, allow_None=True)
    rollout = param.ClassSelector(class_=RolloutRecord, default=None, allow_None=True)
    revisions = param.List(default=[], doc="revision history, newest first")
    replicas = param.List(default=[], doc="replica processes: state, device, pid, restarts")
    models = param.List(default=[], doc="registered model names, for the deploy form")
    endpoint_names = param.List(default=[], doc="every endpoint, for the page's chooser")
    variants = param.Dict(default={}, doc="served version (models:/NAME/V) -> its comparison table rows")

    def asks_for_unseen(self, snapshot: Snapshot) -> bool:
        return bool(self.endpoint) and snapshot.endpoint(self.endpoint) is None

    def load(self) -> None:
        super().load()
        self._state()
        self.points = self.feed.traffic(self.endpoint, self.window_s) if self.endpoint else {}

    @param.depends("endpoint", watch=True)
    def _switch(self) -> None:
        self.load()

    def apply(self, update: Update) -> None:
        new = update.traffic.get(self.endpoint)
        if new:
            self.delta = new
        if "state" in update.changed:
            self._state(update)

    def _state(self, update: Update | None = None) -> None:
        snapshot = update.snapshot if update is not None else self.feed.snapshot
        if not self.endpoint and snapshot.endpoints:
            self.endpoint = snapshot.endpoints[0].spec.name
        self.set_if_changed(
            record=snapshot.endpoint(self.endpoint),
            rollout=snapshot.active_rollout(self.endpoint),
            revisions=list(snapshot.histories.get(self.endpoint, ())),
            replicas=list(snapshot.replicas.get(self.endpoint, [])),
            models=list(snapshot.models),
            endpoint_names=[e.spec.name for e in snapshot.endpoints],
            variants=variant_tables(snapshot.endpoint(self.endpoint), snapshot.optimizations),
        )

    # -------------------------------------------------------------- actions
    def _view(self, *, rejected: bool = False) -> intents.EndpointView:
        """What this page shows of the endpoint: the preview is made from it, as the person saw it."""
        seen: set[tuple[str, int]] = set()
        if rejected and self.record is not None:
            with self.desk_client() as client:
                seen = {(r.model, r.version) for r in client.rejected_versions(self.record.spec.name)}
        return intents.EndpointView(
            record=self.record, rollout=self.rollout, history=self.revisions, rejected=seen
        )

    def _propose(self, intent: intents.Intent, *, rejected: bool = False) -> None:
        try:
            view = self._view(rejected=rejected)
            preview = intents.preview(intent, view)
        except WorkbenchError as exc:
            self.desk.refuse(str(exc))
            return

        def perform(client: Client, preview: Preview) -> str:
            return intents.perform(client, intent, preview, reason=REASON).message

        self.desk.propose(preview, perform)

    def propose_rollback(self, to_revision: int | None = None, *, force: bool = False) -> None:
        self._propose(intents.Rollback(self.endpoint, to_revision, force), rejected=True)

    def propose_deploy(self, model: str, version: int) -> None:
        self._propose(intents.Deploy(self.endpoint, model, version))

    def propose_rollout(self, model: str, version: int, strategy: str, steps: str = "5, 25, 50") -> None:
        try:
            weights = intents.parse_steps(steps) if strategy == "canary" else ()
        except WorkbenchError as exc:
            self.desk.refuse(str(exc))
            return
        self._propose(intents.StartRollout(self.endpoint, model, version, strategy, weights))

    def propose_rollout_action(self, action: str) -> None:
        self._propose(intents.RolloutAction(self.endpoint, action))

    def versions_of(self, model: str) -> list[tuple[str, int]]:
        """(label, version) choices for the forms, newest first, aliases named: from the feed, so a page
        opens without asking the control plane; read as the user only for a model the feed has not seen."""
        known = self.feed.snapshot.model_versions.get(model)
        if known is not None:
            return list(known)
        with self.desk_client() as client:
            versions = client.list_versions(model)
        return [
            (f"v{info.version}" + "".join(f" @{a}" for a in sorted(info.aliases)), info.version)
            for info in sorted(versions, key=lambda v: -v.version)
        ]

    def desk_client(self) -> Client:
        """A read-only helper call for a form (versions, rejected versions), as the signed-in user."""
        return self.desk.client()
