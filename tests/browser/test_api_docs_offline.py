"""The API docs page renders in a real browser with nothing leaving the machine.

The real API on a free port, Swagger UI opened in ``offline_page`` (every request to another host is
aborted): the operations must render from the vendored assets alone. Two controls keep the offline claim
honest: the page's HTML must name local assets only (a CDN URL would fail it even on a machine that is
online), and the fixture must really abort and record a request to a CDN.
"""

from __future__ import annotations

import re
import time

import httpx
from playwright.sync_api import expect

from tests.browser import OfflinePage, save_screenshot
from workbench.api.docs import DOCS_PATH, STATIC_PATH, SWAGGER_UI_VERSION

ASSET_RE = re.compile(r"""<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)\"""")
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def test_docs_page_renders_every_operation_offline(api_url: str, offline_page: OfflinePage) -> None:
    page = offline_page.page
    schema = httpx.get(f"{api_url}/api/v1/openapi.json").json()
    operations = sum(1 for item in schema["paths"].values() for method in item if method in METHODS)

    page.goto(f"{api_url}{DOCS_PATH}")

    endpoints = page.locator(".opblock.opblock-get").filter(
        has=page.locator('.opblock-summary-path[data-path="/api/v1/endpoints"]')
    )
    expect(endpoints).to_be_visible()
    expect(page.locator(".info .title")).to_contain_text("Workbench control plane")
    # Swagger UI 5 renders OpenAPI 3.1 (Swagger UI 4 shows "Unable to render this definition" instead).
    expect(page.locator(".info .title")).to_contain_text("OAS 3.1")
    assert page.locator(".opblock").count() == operations > 20
    shot = save_screenshot(page, "api-docs-offline")
    endpoints.locator(".opblock-summary-control").click()
    expect(endpoints.locator(".opblock-body")).to_be_visible()

    assert offline_page.blocked == [], "requests tried to leave the machine"
    assert offline_page.console_errors == []
    bundle = f"{api_url}{STATIC_PATH}/swagger-ui/swagger-ui-bundle.js"
    assert bundle in offline_page.requested
    assert shot.stat().st_size > 10_000


def test_docs_page_names_only_local_assets_and_needs_no_token(api_url: str) -> None:
    """The negative control: a CDN asset fails this test even where the CDN is reachable."""
    response = httpx.get(f"{api_url}{DOCS_PATH}")
    assert response.status_code == 200
    assets = ASSET_RE.findall(response.text)
    assert len(assets) == 3  # stylesheet, favicon, script
    for url in assets:
        assert url.startswith(f"{STATIC_PATH}/swagger-ui/"), url
        asset = httpx.get(f"{api_url}{url}")  # no token: the docs are public, like the schema
        assert asset.status_code == 200, url
        assert len(asset.content) > 500, url
    assert "cdn" not in response.text.lower()
    assert "validatorUrl" in response.text  # no online-validator badge (an image from validator.swagger.io)

    script = httpx.get(f"{api_url}{STATIC_PATH}/swagger-ui/swagger-ui-bundle.js")
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert f'PACKAGE_VERSION:"{SWAGGER_UI_VERSION}"' in script.text  # the docstring's version is the file's
    assert httpx.get(f"{api_url}/docs/oauth2-redirect").status_code == 200
    assert httpx.get(f"{api_url}{STATIC_PATH}/../docs.py").status_code == 404

    # The docs add no operation to the schema that the fuzz test (tests/integration/test_api_fuzz.py) runs.
    paths = httpx.get(f"{api_url}/api/v1/openapi.json").json()["paths"]
    assert not [path for path in paths if "/docs" in path or path.startswith(STATIC_PATH)]


def test_offline_page_aborts_and_records_requests_to_other_hosts(offline_page: OfflinePage) -> None:
    """Without this, an empty ``blocked`` list could mean the routing never ran."""
    page = offline_page.page
    cdn = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
    page.set_content(f'<script src="{cdn}"></script><p>done</p>')
    expect(page.locator("p")).to_have_text("done")
    assert offline_page.blocked == [cdn]
    assert page.evaluate("typeof SwaggerUIBundle") == "undefined"
    assert any("ERR_BLOCKED_BY_CLIENT" in error for error in offline_page.console_errors)

    page.evaluate("new WebSocket('wss://example.com/socket')")
    deadline = time.monotonic() + 5
    while len(offline_page.blocked) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(20)
    assert offline_page.blocked == [cdn, "wss://example.com/socket"]
