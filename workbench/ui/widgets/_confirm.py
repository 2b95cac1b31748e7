"""The step between a button and its action: what will change, then Confirm or Cancel.

Nothing runs until Confirm, and Confirm runs what was previewed, with the revision the preview was
computed from where the API takes one, so a person never changes a state other than the one shown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import ipywidgets as widgets  # type: ignore[import-untyped]

from workbench.errors import WorkbenchError
from workbench.ui.plans import Preview
from workbench.ui.widgets import _render as render

Action = Callable[[Preview], str]
"""Runs a confirmed preview through the client and says what it did."""


@dataclass(frozen=True)
class _Pending:
    preview: Preview
    action: Action


class Confirmation:
    """One pending action at a time, shown as an HTML box with Confirm / Cancel, and its outcome.

    ``on_busy`` is told when an action starts and ends, so the owner can block its own buttons too:
    a second click while a deploy waits for its replicas would act on a state nobody previewed.
    """

    def __init__(self, on_busy: Callable[[bool], None]) -> None:
        self._on_busy = on_busy
        self._pending: _Pending | None = None
        self.last_outcome = ""  # the outcome as plain text, for code that drives the widget
        self.failed = False
        self.preview_html = widgets.HTML()
        self.confirm_button = widgets.Button(description="Confirm", button_style="warning", icon="check")
        self.cancel_button = widgets.Button(description="Cancel", icon="times")
        self.outcome = widgets.HTML()
        self.buttons = widgets.HBox([self.confirm_button, self.cancel_button])
        self.confirm_button.on_click(lambda _: self.confirm())
        self.cancel_button.on_click(lambda _: self.cancel())
        self._show(False)

    @property
    def pending(self) -> Preview | None:
        return self._pending.preview if self._pending is not None else None

    def ask(self, preview: Preview, action: Action) -> None:
        self._pending = _Pending(preview, action)
        self.preview_html.value = render.preview_box(preview)
        self._tell("", "")
        self._show(True)

    def confirm(self) -> bool:
        """Run the pending action; its refusal is shown as a message, never raised into the frontend."""
        pending, self._pending = self._pending, None
        if pending is None:
            return False
        self._set_busy(True)
        try:
            done = pending.action(pending.preview)
        except WorkbenchError as exc:
            self.fail(render.error_text(exc))
            return False
        finally:
            self._set_busy(False)
            self._show(False)
        self._tell(done, render.success(done), failed=False)
        return True

    def cancel(self) -> None:
        self._pending = None
        self._show(False)
        self._tell("cancelled: nothing was changed", render.message("cancelled: nothing was changed"))

    def fail(self, text: str) -> None:
        self._tell(text, render.failure(text), failed=True)

    def _tell(self, text: str, html: str, *, failed: bool = False) -> None:
        self.last_outcome, self.failed = text, failed
        self.outcome.value = html

    def _set_busy(self, busy: bool) -> None:
        self.confirm_button.disabled = busy
        self.cancel_button.disabled = busy
        self._on_busy(busy)

    def _show(self, visible: bool) -> None:
        display = None if visible else "none"
        self.preview_html.layout.display = display
        self.buttons.layout.display = display

    def close(self) -> None:
        for widget in (
            self.preview_html,
            self.confirm_button,
            self.cancel_button,
            self.outcome,
            self.buttons,
        ):
            widget.close()
