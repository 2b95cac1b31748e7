"""Browser fixtures for every UI test: ``browser`` (Debian's chromium) and ``offline_page``.

``browser`` has package scope, not session scope: Playwright's loop must be gone before tests outside
this package run (see ``tests/browser/__init__.py``). pytest runs this package's tests together, so one
Chromium still serves them all.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Request,
    Route,
    WebError,
    WebSocketRoute,
    expect,
    sync_playwright,
)

from tests.browser import CHROMIUM, CHROMIUM_ARGS, NOT_LOCAL, OfflinePage, is_local, save_screenshot
from tests.browser._lab import Lab, running_lab
from tests.browser._stack import Stack, served_world

#: Long enough for a page on two busy cores, short enough that a missing element fails quickly.
TIMEOUT_MS = 15_000


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Iterator[Stack]:
    """The churn models served under load, with the dashboards: one world for every browser test."""
    yield from served_world(tmp_path_factory.mktemp("served"), mlflow_template)


@pytest.fixture(scope="package")
def lab(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One real ``jupyter lab`` with the built extension, on the served world, for the JupyterLab tests."""
    yield from running_lab(stack, tmp_path_factory.mktemp("lab"))


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One headless Chromium (``/usr/bin/chromium``, never a browser from ``playwright install``).

    Also sets ``expect``'s timeout to the pages' default (``TIMEOUT_MS``) instead of Playwright's 5 s.
    """
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium, which `make system-deps` "
            "installs (do not run `playwright install`)",
            pytrace=False,
        )
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def offline_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[OfflinePage]:
    """A fresh context and page where every request to a host other than this machine is aborted.

    Blocked URLs, allowed URLs and console errors are recorded on the returned :class:`OfflinePage`;
    service workers are blocked so that no request escapes the routing. If the test fails, a screenshot
    is saved as ``tests/artifacts/browser/failed-<test>.png``.
    """
    context = browser.new_context(service_workers="block", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    offline = OfflinePage(context.new_page())

    def route(route: Route) -> None:
        offline.blocked.append(route.request.url)
        route.abort("blockedbyclient")

    def requested(request: Request) -> None:
        if is_local(request.url):
            offline.requested.append(request.url)

    def block_web_socket(ws: WebSocketRoute) -> None:
        offline.blocked.append(ws.url)
        ws.close(code=1008, reason="offline test: host not allowed")

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            offline.console_errors.append(message.text)

    def web_error(error: WebError) -> None:
        offline.console_errors.append(f"pageerror: {error.error}")

    context.route(NOT_LOCAL, route)
    context.route_web_socket(NOT_LOCAL, block_web_socket)
    context.on("request", requested)
    context.on("console", console)
    context.on("weberror", web_error)
    try:
        yield offline
        if _failed(request):
            save_screenshot(offline.page, "failed-" + re.sub(r"[^A-Za-z0-9._-]+", "_", request.node.name))
    finally:
        context.close()


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember whether the test body failed, for the failure screenshot of ``offline_page``."""
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    return bool(request.node.stash.get(_CALL_FAILED, False))
