"""What the dashboard benchmark does in Chromium: launch it, sign in, and read what a page shows and moves.

Debian's chromium through Playwright (never a browser from ``playwright install``); in-page scripts that
note when a page's document and first chart are ready and look through Panel's shadow roots for text;
CDP logs of a page's network traffic and websocket messages. CDP's timestamps are CLOCK_MONOTONIC on
Linux, the clock of ``time.monotonic()``, so they compare with this process's own times.
"""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, CDPSession, Page, Playwright

#: Debian's chromium, launched as docs ENVIRONMENT.md says (never a browser from ``playwright install``).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
USER = "bench-user"
TIMEOUT_MS = 60_000

# Recorded in the page from its first script on: when the Bokeh document exists, when ``traffic-all``
# has points, and when the figure drawing it has finished rendering (performance.now(), ms).
STAGES_JS = """
(() => {
  const marks = {};
  window.__wbStages = marks;
  const check = () => {
    const B = window.Bokeh;
    if (B && B.documents && B.documents.length > 0) {
      if (marks.doc === undefined) marks.doc = performance.now();
      const src = B.documents[0].get_model_by_name('traffic-all');
      if (src && src.data.x && src.data.x.length > 0) {
        if (marks.data === undefined) marks.data = performance.now();
        for (const view of B.index.all_views()) {
          const renderers = view.model.renderers;
          if (Array.isArray(renderers) && renderers.some((r) => r.data_source === src) && view.has_finished()) {
            marks.chart = performance.now();
            marks.points = src.data.x.length;
            return;
          }
        }
      }
    }
    requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
})();
"""
CHART_DRAWN = "() => window.__wbStages !== undefined && window.__wbStages.chart !== undefined"
READ_STAGES = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  return {...window.__wbStages, fetch: n.fetchStart, ttfb: n.responseStart, html: n.responseEnd,
          dcl: n.domContentLoadedEventEnd};
}"""
DOC_READY = "() => window.Bokeh !== undefined && Bokeh.documents.length > 0 && Bokeh.index.roots.length > 0"
# Panel renders each component in a shadow root: look through them.
_DEEP = """const deep = (root, sel) => {
  const hit = root.querySelector(sel);
  if (hit) return hit;
  for (const el of root.querySelectorAll('*')) {
    if (el.shadowRoot) { const found = deep(el.shadowRoot, sel); if (found) return found; }
  }
  return null;
};"""
TEXT_OF = f"(sel) => {{ {_DEEP} const el = deep(document, sel); return el ? el.textContent.trim() : null; }}"
TEXT_CHANGED = f"""([sel, before]) => {{ {_DEEP}
  const el = deep(document, sel);
  return el && el.textContent.trim() !== before ? Date.now() : false;
}}"""
REVISION_SHOWN = f"""([sel, revision]) => {{ {_DEEP}
  const el = deep(document, sel);
  return el && new RegExp('revision ' + revision + '(?![0-9])').test(el.textContent) ? Date.now() : false;
}}"""


def launch(playwright: Playwright) -> Browser:
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: `make system-deps` installs Debian's chromium")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))


def signed_in_context(browser: Browser, base: str, token: str) -> BrowserContext:
    """A browser context with a dashboard session cookie (any name, the API token as password)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill("#username", USER)
    page.fill("#password", token)
    with page.expect_navigation():
        page.click("#login-submit")
    page.close()
    return context


def navigate(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_function(DOC_READY, timeout=TIMEOUT_MS)


def open_page(context: BrowserContext, url: str) -> Page:
    page = context.new_page()
    navigate(page, url)
    return page


class NetworkLog:
    """What one page moved, from CDP ``Network.*`` events (timestamps on CDP's monotonic clock, s)."""

    def __init__(self, cdp: CDPSession) -> None:
        self.document_at: float | None = None
        self.http: list[tuple[float, int]] = []
        self.ws_in: list[tuple[float, int]] = []
        self.ws_out: list[tuple[float, int]] = []
        self.ws_open_at: float | None = None
        cdp.on("Network.requestWillBeSent", self._request)
        cdp.on(
            "Network.loadingFinished", lambda e: self.http.append((e["timestamp"], e["encodedDataLength"]))
        )
        cdp.on("Network.webSocketHandshakeResponseReceived", self._ws_open)
        cdp.on("Network.webSocketFrameReceived", lambda e: self.ws_in.append(_frame(e)))
        cdp.on("Network.webSocketFrameSent", lambda e: self.ws_out.append(_frame(e)))
        cdp.send("Network.enable")

    def _request(self, event: dict[str, Any]) -> None:
        if event.get("type") == "Document" and self.document_at is None:
            self.document_at = float(event["timestamp"])

    def _ws_open(self, event: dict[str, Any]) -> None:
        if self.ws_open_at is None:
            self.ws_open_at = float(event["timestamp"])

    @staticmethod
    def upto(rows: list[tuple[float, int]], cutoff: float) -> int:
        return sum(size for at, size in rows if at <= cutoff)


def _frame(event: dict[str, Any]) -> tuple[float, int]:
    response = event["response"]
    payload: str = response["payloadData"]
    size = len(base64.b64decode(payload)) if response.get("opcode") == 2 else len(payload.encode())
    return float(event["timestamp"]), size


@dataclass(frozen=True)
class Arrival:
    """When a change reached the page, and what the page received before it."""

    after_s: float  # NaN when no message matched
    patches: int  # document patches (Bokeh PATCH-DOC messages) received before it
    marker_patches: int  # of which changes to a figure's annotations (the revision markers are Spans)


class FrameLog:
    """Text messages a page receives over its websocket, HTML unescaped, on CDP's clock (which on Linux
    is CLOCK_MONOTONIC, the clock of ``time.monotonic()``)."""

    def __init__(self, context: BrowserContext, page: Page) -> None:
        self.frames: list[tuple[float, str]] = []
        cdp = context.new_cdp_session(page)
        cdp.on("Network.webSocketFrameReceived", self._frame)
        cdp.send("Network.enable")

    def _frame(self, event: dict[str, Any]) -> None:
        if event["response"].get("opcode") == 1:
            self.frames.append((float(event["timestamp"]), html.unescape(event["response"]["payloadData"])))

    def first(self, after: float, pattern: re.Pattern[str]) -> Arrival:
        """The first message matching ``pattern`` since ``after`` (monotonic); clears the log."""
        patches = markers = 0
        found = math.nan
        for at, text in self.frames:
            if at < after:
                continue
            if pattern.search(text):
                found = at - after
                break
            if text.startswith('{"events"'):  # a patch's content (its header and metadata are frames too)
                patches += 1
                markers += '"attr":"center"' in text
        self.frames.clear()
        return Arrival(found, patches, markers)


def heap_mb(cdp: CDPSession) -> float:
    cdp.send("HeapProfiler.collectGarbage")
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    return float(next(m["value"] for m in metrics if m["name"] == "JSHeapUsedSize")) / 2**20
