"""One rollout: where it is, what each check estimated at every tick, what was decided, and controls."""

from __future__ import annotations

from typing import Any

import param

from workbench.client import Client
from workbench.errors import WorkbenchError
from workbench.records.endpoints import EndpointRecord
from workbench.records.rollouts import RolloutAnalysis, RolloutRecord
from workbench.ui import intents
from workbench.ui.feed import Snapshot, Update, is_active
from workbench.ui.models.base import PageModel
from workbench.ui.plans import Preview

#: A check's columns per tick, as the rollout page's chart sources hold them.
CHECK_COLUMNS = ("x", "estimate", "low", "high", "threshold", "verdict", "color", "decision", "reason", "n")
VERDICT_COLORS = {"pass": "#10b981", "fail": "#ef4444", "inconclusive": "#94a3b8"}


def choose_rollout(snapshot: Snapshot, rollout_id: str | None, endpoint: str | None) -> RolloutRecord | None:
    """The asked rollout; else the endpoint's active or latest; else the latest active, else the latest."""
    rollouts = snapshot.rollouts
    if rollout_id:
        return next((r for r in rollouts if r.id == rollout_id), None)
    if endpoint:
        mine = [r for r in rollouts if r.endpoint == endpoint]
        return next((r for r in mine if is_active(r)), mine[0] if mine else None)
    return next((r for r in rollouts if is_active(r)), rollouts[0] if rollouts else None)


def check_rows(analyses: list[RolloutAnalysis]) -> dict[str, dict[str, list[Any]]]:
    """Per check: a row per tick with its estimate, bounds, tolerance, verdict and the tick's decision."""
    rows: dict[str, dict[str, list[Any]]] = {}
    for tick in analyses:
        for metric in (tick.evidence or {}).get("metrics", []):
            name = str(metric.get("name"))
            column = rows.setdefault(
                name,
                {k: [] for k in CHECK_COLUMNS},
            )
            column["x"].append(tick.at.timestamp() * 1000.0)
            for key in ("estimate", "low", "high", "threshold"):
                value = metric.get(key)
                column[key].append(float("nan") if value is None else float(value))
            verdict = str(metric.get("verdict"))
            column["verdict"].append(verdict)
            column["color"].append(VERDICT_COLORS.get(verdict, "#94a3b8"))
            column["decision"].append(tick.decision)
            column["reason"].append(str(metric.get("reason", ""))[:300])
            samples = metric.get("samples") or []
            column["n"].append(" / ".join(str(s) for s in samples))
    return rows


class RolloutModel(PageModel):
    rollout_id = param.String(default="", doc="the rollout shown")
    endpoint_name = param.String(default="", doc="the endpoint asked for, when no rollout id was")
    record = param.ClassSelector(class_=RolloutRecord, default=None, allow_None=True)
    endpoint_record = param.ClassSelector(class_=EndpointRecord, default=None, allow_None=True)
    events = param.List(default=[], doc="transitions, gates and their evidence, oldest first")
    checks = param.Dict(default={}, doc="check -> columns over every tick: what the charts open with")
    delta = param.Dict(default={}, doc="check -> columns of the newest ticks only: what the charts stream")
    latest = param.Dict(default={}, doc="the latest analysis: every check's verdict and bounds")

    def asks_for_unseen(self, snapshot: Snapshot) -> bool:
        return bool(self.rollout_id) and all(r.id != self.rollout_id for r in snapshot.rollouts)

    def load(self) -> None:
        super().load()
        self._state(self.feed.snapshot)
        self.checks = check_rows(self.feed.analyses(self.rollout_id)) if self.rollout_id else {}

    def apply(self, update: Update) -> None:
        if "state" in update.changed:
            self._state(update.snapshot)
        new = update.analyses.get(self.rollout_id)
        if new:
            self.delta = check_rows(list(new))

    def _state(self, snapshot: Snapshot) -> None:
        chosen = choose_rollout(snapshot, self.rollout_id or None, self.endpoint_name or None)
        if chosen is not None and not self.rollout_id:
            self.rollout_id = chosen.id
        detail = snapshot.rollout_details.get(self.rollout_id) or {}
        self.set_if_changed(
            record=chosen,
            endpoint_record=snapshot.endpoint(chosen.endpoint) if chosen is not None else None,
            events=list(detail.get("events", [])),
            latest=dict(detail.get("analysis") or {}),
        )

    # -------------------------------------------------------------- actions
    def propose(self, action: str) -> None:
        record, endpoint = self.record, self.endpoint_record
        if record is None or endpoint is None:
            self.desk.refuse("this rollout or its endpoint no longer exists")
            return
        name = endpoint.spec.name
        active = record if is_active(record) else None
        try:
            if action == "rollback":
                with self.desk.client() as client:
                    view = intents.EndpointView(
                        record=endpoint,
                        rollout=active,
                        history=client.history(name),
                        rejected={(r.model, r.version) for r in client.rejected_versions(name)},
                    )
                intent: intents.Intent = intents.Rollback(name)
            else:
                view = intents.EndpointView(record=endpoint, rollout=active)
                intent = intents.RolloutAction(name, action)
            preview = intents.preview(intent, view)
        except WorkbenchError as exc:
            self.desk.refuse(str(exc))
            return

        def perform(client: Client, preview: Preview) -> str:
            return intents.perform(client, intent, preview, reason="from the dashboard").message

        self.desk.propose(preview, perform)
