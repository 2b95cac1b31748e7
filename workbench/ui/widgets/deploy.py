"""``DeployWidget``: choose a model version and an endpoint, preview the traffic change, then act."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as widgets  # type: ignore[import-untyped]

from workbench.client import Client
from workbench.errors import (
    ValidationError,
    WorkbenchError,
)
from workbench.records.endpoints import EndpointRecord
from workbench.records.rollouts import RolloutRecord
from workbench.specs.endpoint import check_endpoint_name
from workbench.specs.rollout import Strategy
from workbench.ui import intents
from workbench.ui.plans import Preview
from workbench.ui.widgets import _layout
from workbench.ui.widgets import _render as render
from workbench.ui.widgets._confirm import Action, Confirmation
from workbench.ui.widgets._viewer import Viewer

DEPLOY = "deploy"
STRATEGIES = (
    ("deploy now", DEPLOY),
    ("canary", Strategy.CANARY.value),
    ("blue-green", Strategy.BLUE_GREEN.value),
    ("shadow", Strategy.SHADOW.value),
)

Result = EndpointRecord | RolloutRecord


class DeployWidget(Viewer):
    """Serve a registered version on an endpoint at once, or start a rollout of it.

    The controls only choose; reads and writes go through ``client``, so the change is made (and
    audited) as the client's actor, exactly as the CLI would make it. An alias is resolved to its
    version when the preview is made, and that version is what Confirm sends: an alias moved
    meanwhile cannot swap the version under the preview.

    ``rollout_options`` are further rollout spec fields (``steps``, ``analysis``, ``tick_s``...) for
    the rollouts started here; they are validated when Start is clicked.
    """

    def __init__(
        self,
        client: Client,
        endpoint: str | None = None,
        *,
        rollout_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.rollout_options = dict(rollout_options or {})
        self.last_result: Result | None = None
        self._listeners: list[Callable[[Result], None]] = []
        self._aliases: dict[str, int] = {}
        self.model = widgets.Dropdown(description="model", options=[])
        self.version = widgets.Dropdown(description="version", options=[])
        self.endpoint = widgets.Combobox(
            description="endpoint", placeholder="existing or new name", ensure_option=False
        )
        self.strategy = widgets.Dropdown(description="strategy", options=STRATEGIES, value=DEPLOY)
        self.reason = widgets.Text(description="reason", placeholder="why (kept in the audit log)")
        self.start_button = widgets.Button(description="Start", button_style="primary", icon="play")
        self.confirmation = Confirmation(self._busy)
        self._settling = False
        self.model.observe(lambda _: None if self._settling else self._load_versions(), names="value")
        self.start_button.on_click(lambda _: self.start())
        self.refresh()
        if endpoint:
            self.endpoint.value = endpoint
        self.view = _layout.deploy(self)

    # ------------------------------------------------------------------ reads
    def refresh(self) -> None:
        """Re-read the registered models and the endpoints (the choices), keeping what is chosen."""
        try:
            models = sorted(m.name for m in self.client.list_models())
            endpoints = sorted(e.spec.name for e in self.client.list_endpoints())
        except WorkbenchError as exc:
            self.confirmation.fail(render.error_text(exc))
            return
        chosen = self.model.value
        self.endpoint.options = endpoints
        # New options reset a Dropdown's value to the first one: put the choice back before the
        # versions are (re)loaded, once.
        self._settling = True
        try:
            self.model.options = models
            self.model.value = chosen if chosen in models else (models[0] if models else None)
        finally:
            self._settling = False
        self._load_versions()

    def _load_versions(self) -> None:
        name = self.model.value
        if not name:
            self.version.options = []
            return
        try:
            versions = sorted(self.client.list_versions(name), key=lambda v: -v.version)
        except WorkbenchError as exc:
            self.confirmation.fail(render.error_text(exc))
            return
        self._aliases = {alias: v.version for v in versions for alias in v.aliases}
        chosen = self.version.value
        options = [(f"@{alias} (v{number})", f"@{alias}") for alias, number in sorted(self._aliases.items())]
        options += [(f"v{v.version}", str(v.version)) for v in versions]
        self.version.options = options
        values = [value for _, value in options]
        if chosen in values:
            self.version.value = chosen
        elif values:
            self.version.value = "@champion" if "@champion" in values else str(versions[0].version)

    def on_change(self, listener: Callable[[Result], None]) -> None:
        """Call ``listener`` with the endpoint or rollout record after each change this widget makes
        (e.g. a ``RolloutControl``'s refresh, so it shows the rollout just started)."""
        self._listeners.append(listener)

    # ----------------------------------------------------------------- action
    def start(self) -> Preview | None:
        """Show what the chosen change would do; nothing changes until Confirm."""
        try:
            preview, action = self._plan()
        except WorkbenchError as exc:
            self.confirmation.fail(render.error_text(exc))
            return None
        self.confirmation.ask(preview, action)
        return preview

    def _plan(self) -> tuple[Preview, Action]:
        model, version = self._chosen_version()
        name = self._endpoint_name()
        strategy = str(self.strategy.value)
        view = intents.read_view(self.client, name, for_rollback=False)
        if strategy == DEPLOY:
            intent: intents.Intent = intents.Deploy(name, model, version)
        else:
            if view.record is None:
                raise ValidationError(
                    f"endpoint {name!r} does not exist: a rollout changes a served endpoint; deploy first"
                )
            intent = intents.StartRollout(name, model, version, strategy, options=self.rollout_options)
        preview = intents.preview(intent, view)
        return preview, lambda p: self._act(intent, p)

    def _chosen_version(self) -> tuple[str, int]:
        model, choice = self.model.value, self.version.value
        if not model or not choice:
            raise ValidationError("choose a model and a version or alias")
        if choice.startswith("@"):
            if choice[1:] not in self._aliases:
                raise ValidationError(f"alias {choice} of {model} is gone; refresh")
            return model, self._aliases[choice[1:]]
        return model, int(choice)

    def _endpoint_name(self) -> str:
        name = str(self.endpoint.value).strip()
        if not name:
            raise ValidationError("name an endpoint: an existing one, or a new name to create it")
        try:
            return check_endpoint_name(name)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def _act(self, intent: intents.Intent, preview: Preview) -> str:
        outcome = intents.perform(self.client, intent, preview, reason=self._reason())
        if outcome.record is not None:
            self._done(outcome.record)
        return outcome.message

    def _reason(self) -> str | None:
        return str(self.reason.value).strip() or None

    def _done(self, result: Result) -> None:
        self.last_result = result
        self.refresh()
        for listener in self._listeners:
            listener(result)

    def _busy(self, busy: bool) -> None:
        for control in (self.start_button, self.model, self.version, self.endpoint, self.strategy):
            control.disabled = busy
