"""Where each widget's controls sit: boxes only, no behaviour (that lives in the widget's methods)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets  # type: ignore[import-untyped]

from workbench.ui.widgets._confirm import Confirmation

if TYPE_CHECKING:
    from workbench.ui.widgets.card import EndpointCard
    from workbench.ui.widgets.deploy import DeployWidget
    from workbench.ui.widgets.rollout import RolloutControl

WIDTH = "520px"


def _confirmation(confirmation: Confirmation) -> list[Any]:
    return [confirmation.preview_html, confirmation.buttons, confirmation.outcome]


def title(text: str) -> Any:
    return widgets.HTML(f"<b>{text}</b>")


def deploy(w: DeployWidget) -> Any:
    for control in (w.model, w.version, w.endpoint, w.strategy, w.reason):
        control.layout.width = "250px"
        control.style.description_width = "70px"
    w.reason.layout.width = "505px"
    return widgets.VBox(
        [
            title("Deploy a model version"),
            widgets.HBox([w.model, w.version]),
            widgets.HBox([w.endpoint, w.strategy]),
            w.reason,
            w.start_button,
            *_confirmation(w.confirmation),
        ],
        layout=widgets.Layout(width=WIDTH),
    )


def rollout(w: RolloutControl) -> Any:
    w.progress.layout.width = "100%"
    w.reason.layout.width = "100%"
    return widgets.VBox(
        [
            w.heading,
            w.status,
            w.progress,
            widgets.HBox(list(w.buttons.values())),
            w.reason,
            *_confirmation(w.confirmation),
        ],
        layout=widgets.Layout(width=WIDTH),
    )


def card(w: EndpointCard) -> Any:
    return widgets.VBox(
        [w.heading, w.routes, w.health, w.latency],
        layout=widgets.Layout(width=WIDTH, border="1px solid #ddd", padding="6px"),
    )
