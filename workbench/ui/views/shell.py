"""The frame every page shares: navigation, who is signed in, the confirmation box, local styles.

No external assets: the styles are inline and the fonts are the system's, so a page renders on an
air-gapped machine exactly as it does online.
"""

from __future__ import annotations

import html
from typing import Any

import panel as pn
import param
from panel.viewable import Viewer

from workbench.ui.actions import ActionDesk

CSS = """
:host { --wb-ink: #1f2933; --wb-muted: #616e7c; --wb-line: #d9e2ec; --wb-accent: #2563eb; }
.wb-header { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 18px; padding: 8px 14px; background: #102a43;
  color: #f0f4f8; font-family: system-ui, sans-serif; border-radius: 6px; }
.wb-header a { color: #d9e2ec; text-decoration: none; font-size: 14px; white-space: nowrap; }
.wb-header a.wb-current { color: #fff; font-weight: 600; border-bottom: 2px solid #60a5fa; }
.wb-header .wb-brand { font-weight: 700; font-size: 16px; margin-right: 8px; color: #fff; }
.wb-header .wb-user { margin-left: auto; font-size: 13px; color: #bcccdc; white-space: nowrap; }
.wb-card { border: 1px solid #d9e2ec; border-radius: 8px; padding: 10px 14px; margin: 6px 0;
  font-family: system-ui, sans-serif; background: #fff; }
.wb-card h3 { margin: 0 0 6px 0; font-size: 16px; }
.wb-card h3 a { color: #102a43; text-decoration: none; }
.wb-muted { color: #616e7c; font-size: 12px; }
.wb-split { display: flex; height: 18px; border-radius: 4px; overflow: hidden; margin: 6px 0;
  font-size: 11px; color: #fff; }
.wb-split div { display: flex; align-items: center; justify-content: center; white-space: nowrap;
  overflow: hidden; }
.wb-badge { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 12px;
  margin-right: 4px; background: #e5e7eb; color: #1f2933; }
.wb-ok { background: #d1fae5; color: #065f46; }
.wb-warn { background: #fef3c7; color: #92400e; }
.wb-bad { background: #fee2e2; color: #991b1b; }
.wb-info { background: #dbeafe; color: #1e40af; }
.wb-stats { display: flex; gap: 22px; margin-top: 6px; }
.wb-stat b { display: block; font-size: 18px; color: #102a43; }
.wb-stat span { font-size: 12px; color: #616e7c; }
table.wb-table { border-collapse: collapse; width: 100%; font-family: system-ui, sans-serif; font-size: 13px; }
table.wb-table th { text-align: left; color: #486581; border-bottom: 1px solid #d9e2ec; padding: 4px 6px; }
table.wb-table td { border-bottom: 1px solid #f0f4f8; padding: 4px 6px; vertical-align: top; }
.wb-confirm { border: 2px solid #f59e0b; background: #fffbeb; border-radius: 8px; padding: 10px 14px;
  font-family: system-ui, sans-serif; white-space: pre-wrap; }
.wb-outcome-ok { border-left: 4px solid #10b981; background: #ecfdf5; padding: 8px 12px;
  font-family: system-ui, sans-serif; }
.wb-outcome-bad { border-left: 4px solid #ef4444; background: #fef2f2; padding: 8px 12px;
  font-family: system-ui, sans-serif; }
.wb-stale { color: #b45309; font-size: 12px; }
h3.wb-section { font-family: system-ui, sans-serif; margin: 4px 0; font-size: 17px; }
"""

PAGES = (
    ("overview", "Overview"),
    ("endpoint", "Endpoint"),
    ("rollout", "Rollout"),
    ("experiments", "Experiments"),
    ("drift", "Drift & performance"),
    ("operations", "Runbooks & audit"),
)
PALETTE = ("#2563eb", "#f97316", "#10b981", "#a855f7", "#ef4444", "#0ea5e9", "#eab308", "#64748b")


def stylesheets() -> list[str]:
    return [CSS]


def esc(value: Any) -> str:
    return html.escape(str(value))


def version_color(version: int | str) -> str:
    try:
        return PALETTE[(int(version) - 1) % len(PALETTE)]
    except (TypeError, ValueError):
        return "#334155"


def header(current: str, user: str | None, query: str = "") -> pn.pane.HTML:
    links = []
    for page, title in PAGES:
        cls = ' class="wb-current"' if page == current else ""
        href = f"./{page}{query if page in ('endpoint', 'rollout', 'drift') else ''}"
        links.append(f'<a href="{esc(href)}"{cls} data-page="{page}">{esc(title)}</a>')
    who = f'signed in as <b>{esc(user)}</b> · <a href="./logout">sign out</a>' if user else ""
    body = (
        f'<div class="wb-header"><span class="wb-brand">Workbench</span>{"".join(links)}'
        f'<span class="wb-user">{who}</span></div>'
    )
    return pn.pane.HTML(body, sizing_mode="stretch_width", stylesheets=stylesheets())


class ConfirmBox(Viewer):
    """The pending action with its routes before → after, Confirm / Cancel, then the outcome."""

    desk = param.ClassSelector(class_=ActionDesk)

    @property
    def _desk_(self) -> ActionDesk:
        """The desk, typed: param declares it optional, the view is never built without it."""
        assert self.desk is not None
        return self.desk

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._text = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=stylesheets())
        self._confirm = pn.widgets.Button(label="Confirm", color="danger", width=110)
        self._cancel = pn.widgets.Button(label="Cancel", width=90)
        self._outcome = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=stylesheets())
        self._confirm.on_click(self._on_confirm)
        self._cancel.on_click(lambda _event: self._desk_.cancel())
        self._buttons = pn.Row(self._confirm, self._cancel)
        self._desk_.param.watch(self._render, ["pending", "busy", "outcome", "failed"])
        self._render()

    async def _on_confirm(self, _event: Any) -> None:
        await self._desk_.confirm()

    def _render(self, *_events: Any) -> None:
        proposal = self._desk_.pending
        if proposal is not None:
            preview = proposal.preview
            arrow = (
                f"<b>{esc(preview.routes_before)}</b> → <b>{esc(preview.routes_after)}</b>"
                if preview.changes_traffic
                else f"<b>{esc(preview.routes_before)}</b> (unchanged)"
            )
            busy = "<br><i>working…</i>" if self._desk_.busy else ""
            self._text.object = (
                f'<div class="wb-confirm" data-testid="confirm"><b>Confirm: {esc(preview.action)}</b> on '
                f"<b>{esc(preview.endpoint)}</b><br>traffic: {arrow}<br>{esc(preview.detail)}{busy}</div>"
            )
        else:
            self._text.object = ""
        self._buttons.visible = proposal is not None
        self._confirm.disabled = self._cancel.disabled = self._desk_.busy
        if self._desk_.outcome:
            cls = "wb-outcome-bad" if self._desk_.failed else "wb-outcome-ok"
            self._outcome.object = (
                f'<div class="{cls}" data-testid="outcome">{esc(self._desk_.outcome)}</div>'
            )
        else:
            self._outcome.object = ""

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self._text, self._buttons, self._outcome, sizing_mode="stretch_width")
