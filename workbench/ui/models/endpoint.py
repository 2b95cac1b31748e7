"""One endpoint: its traffic per version over time, its revisions, replicas, and what can be done to it."""

from __future__ import annotations

from typing import Any

import param

from workbench.client import Client
from workbench.errors import WorkbenchError
from workbench.records.endpoints import EndpointRecord
from workbench.records.rollouts import RolloutRecord
from workbench.specs.rollout import Strategy
from workbench.ui.feed import Update
from workbench.ui.models.base import PageModel
from workbench.ui.plans import (
    Preview,
    preview_deploy,
    preview_rollback,
    preview_rollout_action,
    preview_rollout_start,
)

STRATEGIES = ("canary", "blue_green", "shadow")


def parse_steps(text: str) -> list[float]:
    """``"5, 25, 50"`` → ``[5.0, 25.0, 50.0]``: increasing percentages strictly between 0 and 100."""
    try:
        weights = [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"canary steps must be numbers separated by commas, got {text!r}") from None
    if not weights or any(not 0 < w < 100 for w in weights) or weights != sorted(set(weights)):
        raise ValueError("canary steps must be increasing percentages between 0 and 100, e.g. 5, 25, 50")
    return weights


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
        )

    # -------------------------------------------------------------- actions
    def _current(self) -> EndpointRecord | None:
        if self.record is None:
            self.desk.refuse(f"endpoint {self.endpoint!r} does not exist (any more)")
        return self.record

    def propose_rollback(self, to_revision: int | None = None, *, force: bool = False) -> None:
        record = self._current()
        if record is None:
            return
        try:
            with self.desk_client() as client:
                rejected = {(r.model, r.version) for r in client.rejected_versions(record.spec.name)}
            preview = preview_rollback(
                record,
                self.revisions,
                rejected,
                to_revision=to_revision,
                force=force,
                active_rollout=self.rollout,
            )
        except WorkbenchError as exc:
            self.desk.refuse(f"Cannot roll back: {exc}")
            return

        def perform(client: Client, preview: Preview) -> str:
            result = client.rollback(
                preview.endpoint,
                to_revision=to_revision,
                force=force,
                expected_revision=preview.expected_revision,
                reason="rolled back from the dashboard",
            )
            return result.message

        self.desk.propose(preview, perform)

    def propose_deploy(self, model: str, version: int) -> None:
        preview = preview_deploy(self.record, self.endpoint, model, version)

        def perform(client: Client, preview: Preview) -> str:
            options: dict[str, Any] = {}
            if preview.expected_revision is not None:
                options["expected_revision"] = preview.expected_revision
            record = client.deploy(
                preview.endpoint,
                f"models:/{model}/{version}",
                reason="deployed from the dashboard",
                **options,
            )
            return f"{record.spec.name} now serves {model} v{version} (revision {record.revision})"

        self.desk.propose(preview, perform)

    def propose_rollout(self, model: str, version: int, strategy: str, steps: str = "5, 25, 50") -> None:
        record = self._current()
        if record is None:
            return
        if strategy not in STRATEGIES:
            self.desk.refuse(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
            return
        try:
            weights = parse_steps(steps) if strategy == "canary" else []
        except ValueError as exc:
            self.desk.refuse(str(exc))
            return
        preview = preview_rollout_start(
            record, model, version, strategy=Strategy(strategy), step_weights=weights
        )

        def perform(client: Client, preview: Preview) -> str:
            spec: dict[str, Any] = {
                "endpoint": preview.endpoint,
                "candidate": f"models:/{model}/{version}",
                "strategy": strategy,
            }
            if weights:
                spec["steps"] = [{"weight": w} for w in weights]
            started = client.start_rollout(spec, reason="started from the dashboard")
            return f"rollout {started.id} started: {strategy.replace('_', '-')} of {model} v{version}"

        self.desk.propose(preview, perform)

    def propose_rollout_action(self, action: str) -> None:
        record = self._current()
        if record is None:
            return
        rollout = self.rollout
        if rollout is None:
            self.desk.refuse(f"no active rollout on {self.endpoint}")
            return
        preview = preview_rollout_action(record, rollout, action)

        def perform(client: Client, preview: Preview) -> str:
            after = client.rollout_action(rollout.id, action, reason=f"{action} from the dashboard")
            return f"rollout {after.id}: {after.phase.value}"

        self.desk.propose(preview, perform)

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
