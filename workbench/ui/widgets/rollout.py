"""``RolloutControl``: an endpoint's rollout as it stands, and the buttons a person steers it with."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import ipywidgets as widgets  # type: ignore[import-untyped]

from workbench.client import Client
from workbench.errors import NotFoundError, WorkbenchError
from workbench.records.endpoints import EndpointRecord
from workbench.records.rollouts import RolloutRecord
from workbench.rollouts.phases import TRANSITIONS, Phase
from workbench.specs.rollout import DEFAULT_STEPS, Strategy
from workbench.ui import intents
from workbench.ui.plans import Preview, endpoint_routes, split_label
from workbench.ui.widgets import _layout
from workbench.ui.widgets import _render as render
from workbench.ui.widgets._confirm import Confirmation
from workbench.ui.widgets._viewer import Viewer

ROLLBACK = "rollback"
LABELS = {"promote": "Promote", "pause": "Pause", "resume": "Resume", "abort": "Abort", ROLLBACK: "Roll back"}
ICONS = {"promote": "check", "pause": "pause", "resume": "play", "abort": "stop", ROLLBACK: "undo"}

# The phase each rollout action moves to: its button is enabled only where the state machine
# (workbench.rollouts.phases) allows that move, so the widget never offers what the API would refuse.
TARGETS = {
    "promote": Phase.PROMOTING,
    "pause": Phase.PAUSED,
    "resume": Phase.PROGRESSING,
    "abort": Phase.ROLLED_BACK,
}


def allowed(action: str, phase: Phase) -> bool:
    target = TARGETS[action]
    if target not in TRANSITIONS[phase] or target == phase:
        return False
    # Resuming is for a rollout waiting for a person, not one the controller is still starting.
    return action != "resume" or phase.is_settled


@dataclass(frozen=True)
class Progress:
    step: int  # 1-based; 0 before the first step
    steps: int
    label: str


def progress_of(rollout: RolloutRecord) -> Progress:
    """Where a rollout is among its strategy's steps (see workbench.rollouts.controller)."""
    index = rollout.step_index
    strategy = Strategy(rollout.strategy)
    if strategy == Strategy.CANARY:
        weights = [float(s["weight"]) for s in rollout.spec.get("steps", [])] or [
            s.weight for s in DEFAULT_STEPS
        ]
        weights.append(100.0)  # promotion
        total = len(weights)
        if rollout.phase == Phase.SUCCEEDED:
            return Progress(total, total, "promoted: 100%")
        at = min(index, total - 1)
        return Progress(at + 1, total, f"candidate {weights[at]:g}%")
    if strategy == Strategy.BLUE_GREEN:
        if rollout.phase == Phase.SUCCEEDED:
            return Progress(2, 2, "switched; old version released")
        return Progress(
            min(index, 1) + 1, 2, ("warming at 0%", "switched to 100%, old version warm")[min(index, 1)]
        )
    if rollout.phase == Phase.SUCCEEDED:
        return Progress(1, 1, "shadow passed; live traffic unchanged")
    return Progress(1, 1, "mirroring live traffic")


class RolloutControl(Viewer):
    """Promote, pause, resume, abort or roll back an endpoint's rollout, each after a preview.

    It shows the newest rollout of the endpoint (the active one if there is one); buttons the state
    machine would refuse in the current phase are disabled, and every action re-reads the state
    after it runs. ``auto_refresh`` keeps it current from a background thread that ``close`` stops.
    """

    def __init__(self, client: Client, endpoint: str) -> None:
        self.client = client
        self.endpoint = endpoint
        self.record: EndpointRecord | None = None
        self.rollout: RolloutRecord | None = None
        self.last_message = ""
        self._lock = threading.RLock()  # a refresh and an action never interleave their reads
        self._busy_now = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.heading = _layout.title(f"Rollout on {render.text(endpoint)}")
        self.status = widgets.HTML()
        self.progress = widgets.IntProgress(value=0, min=0, max=1, bar_style="info")
        self.reason = widgets.Text(placeholder="reason (kept in the audit log)")
        self.buttons = {
            action: widgets.Button(description=LABELS[action], icon=ICONS[action], disabled=True)
            for action in ("promote", "pause", "resume", "abort", ROLLBACK)
        }
        self.buttons["abort"].button_style = "danger"
        self.buttons[ROLLBACK].button_style = "warning"
        for action, button in self.buttons.items():
            button.on_click(lambda _, action=action: self.ask(action))
        self.confirmation = Confirmation(self._busy)
        self.view = _layout.rollout(self)
        self.refresh()

    @property
    def active(self) -> RolloutRecord | None:
        return self.rollout if self.rollout is not None and self.rollout.phase.is_active else None

    # ------------------------------------------------------------------ reads
    def refresh(self) -> None:
        """Re-read the endpoint, its newest rollout and that rollout's last event."""
        with self._lock:
            try:
                self._read()
            except WorkbenchError as exc:
                self.status.value = render.failure(render.error_text(exc))
                self.record = self.rollout = None
            self._render()

    def _read(self) -> None:
        try:
            self.record = self.client.get_endpoint(self.endpoint)
        except NotFoundError:
            self.record, self.rollout, self.last_message = None, None, ""
            self.status.value = render.message(f"endpoint {self.endpoint!r} does not exist")
            return
        rollouts = self.client.rollouts(endpoint=self.endpoint)  # newest first
        self.rollout = next((r for r in rollouts if r.phase.is_active), rollouts[0] if rollouts else None)
        self.last_message = ""
        if self.rollout is not None:
            events = self.client.rollout(self.rollout.id).get("events", [])
            self.last_message = str(events[-1]["message"]) if events else ""
        self.status.value = self._status_html()

    def _status_html(self) -> str:
        routes = render.split_bar(endpoint_routes(self.record))
        rollout = self.rollout
        if rollout is None:
            return render.message("no active rollout") + routes
        progress = progress_of(rollout)
        head = "" if rollout.phase.is_active else render.message("no active rollout; the last one:")
        lines = [
            f"<b>{render.text(rollout.strategy.replace('_', '-'))}</b> {render.text(rollout.id)}: "
            f"{render.text(rollout.stable_model)} v{rollout.stable_version} → "
            f"{render.text(rollout.candidate_model)} v{rollout.candidate_version}",
            f"phase <b>{render.text(rollout.phase.value)}</b>, step {progress.step}/{progress.steps} "
            f"({render.text(progress.label)})",
            f"weights: {render.text(split_label(endpoint_routes(self.record)))}",
        ]
        if self.last_message:
            lines.append(f"last: {render.text(self.last_message)}")
        return head + "<div>" + "<br>".join(lines) + "</div>" + routes

    def _render(self) -> None:
        rollout = self.rollout
        if rollout is None:
            self.progress.max, self.progress.value, self.progress.bar_style = 1, 0, "info"
        else:
            progress = progress_of(rollout)
            self.progress.max, self.progress.value = progress.steps, progress.step
            self.progress.bar_style = {
                Phase.SUCCEEDED: "success",
                Phase.ROLLED_BACK: "danger",
                Phase.FAILED: "danger",
                Phase.ERROR: "danger",
                Phase.PAUSED: "warning",
                Phase.INCONCLUSIVE: "warning",
            }.get(rollout.phase, "info")
        self._enable()

    def _enable(self) -> None:
        phase = self.active.phase if self.active is not None else None
        for action, button in self.buttons.items():
            if self._busy_now:
                button.disabled = True
            elif action == ROLLBACK:
                button.disabled = self.record is None
            else:
                button.disabled = phase is None or not allowed(action, phase)

    # ---------------------------------------------------------------- actions
    def ask(self, action: str) -> Preview | None:
        """Preview ``action`` on the state just re-read; nothing changes until Confirm."""
        with self._lock:
            self.refresh()
            try:
                intent, view = self._intent(action)
                preview = intents.preview(intent, view)
            except WorkbenchError as exc:
                self.confirmation.fail(render.error_text(exc))
                return None
            self.confirmation.ask(preview, lambda p: self._run(intent, p))
            return preview

    def _intent(self, action: str) -> tuple[intents.Intent, intents.EndpointView]:
        if self.record is None:
            raise NotFoundError(f"endpoint {self.endpoint!r} does not exist")
        if action == ROLLBACK:
            view = intents.EndpointView(
                record=self.record,
                rollout=self.active,
                history=self.client.history(self.endpoint),
                rejected={(r.model, r.version) for r in self.client.rejected_versions(self.endpoint)},
            )
            return intents.Rollback(self.endpoint), view
        return intents.RolloutAction(self.endpoint, action), intents.EndpointView(self.record, self.active)

    def _run(self, intent: intents.Intent, preview: Preview) -> str:
        """Act on what was previewed: the rollout shown then, even if a refresh has moved on since."""
        reason = str(self.reason.value).strip() or None
        try:
            return intents.perform(self.client, intent, preview, reason=reason).message
        finally:
            self.refresh()

    def _busy(self, busy: bool) -> None:
        self._busy_now = busy
        self._enable()

    # ------------------------------------------------------------ auto-refresh
    def auto_refresh(self, every_s: float = 2.0) -> None:
        """Re-read every ``every_s`` seconds from one background thread, until ``stop`` or ``close``."""
        if not every_s > 0:
            raise ValueError(f"every_s must be positive, got {every_s!r}")
        self.stop()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._poll,
            args=(every_s, self._stop),
            name=f"workbench-rollout-{self.endpoint}",
            daemon=True,
        )
        self._thread.start()

    @property
    def refreshing(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _poll(self, every_s: float, stop: threading.Event) -> None:
        while not stop.wait(every_s):
            self.refresh()  # shows its own errors: an unreachable control plane is a state too

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def close(self) -> None:
        self.stop()
        super().close()
