"""UI tests in a real browser: Playwright's sync API driving Debian's chromium (``make system-deps``).

The fixtures are in ``conftest.py``: ``browser`` (one Chromium for the tests of this package) and
``offline_page`` (an :class:`OfflinePage` whose requests to any host but this machine are aborted and
recorded). ``save_screenshot`` writes PNGs under ``tests/artifacts/browser/`` to look at after a run.

Playwright's sync API runs an asyncio loop of its own and marks it as running in the main thread while
the browser is open, so ``asyncio.run`` there fails ("cannot be called from a running event loop"). That
is why the browser lives in this package only (package scope) and is closed before other tests run; in
these tests, run async code in another thread (as ``run_server`` does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Page

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
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "browser"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


#: URLs that leave this machine, as a regular expression: Playwright's driver matches it itself, so only
#: such requests are intercepted. (A Python predicate, or a catch-all pattern, would hold every request
#: of the page until the test's thread next calls into Playwright: a request fired while a test waits on
#: the API would not be sent until the wait had timed out.)
NOT_LOCAL = re.compile(
    r"^(?!(?:data|blob|about):)(?!(?:https?|wss?)://(?:127\.0\.0\.1|localhost|\[::1\])(?::\d+)?(?:[/?#]|$))"
)


def is_local(url: str) -> bool:
    """Whether a request to ``url`` stays on this machine (``data:``/``blob:``/``about:`` URLs do too)."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return parts.hostname in LOCAL_HOSTS


@dataclass
class OfflinePage:
    """A page with no way off the machine, and what it tried.

    ``blocked``: URLs of the aborted requests (and WebSockets) to other hosts, in order.
    ``requested``: URLs of the requests let through (this machine only), in order.
    ``console_errors``: console messages of type ``error`` and uncaught page errors (``pageerror: ...``).
    """

    page: Page
    blocked: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


def save_screenshot(page: Page, name: str, *, full_page: bool = False) -> Path:
    """Write ``tests/artifacts/browser/<name>.png`` (gitignored) and return its path."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"screenshot name must be a plain file name, got {name!r}")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name.removesuffix('.png')}.png"
    page.screenshot(path=path, full_page=full_page)
    return path
