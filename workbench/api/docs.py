"""The API docs page (Swagger UI at ``/api/v1/docs``), served with no request leaving the machine.

FastAPI's built-in page loads Swagger UI from a CDN, so on an air-gapped machine it stays blank. Here the
page's script, stylesheet and favicon come from ``static/swagger-ui/``: ``swagger-ui-dist`` 5.36.0 from
npm (version 5 because FastAPI emits OpenAPI 3.1, which Swagger UI 4 cannot render), served under
``/api/v1/static``. ``static/swagger-ui/README.md`` says where the files come from and how to update them.

Like FastAPI's own page, the docs page, its assets, the OAuth2 redirect helper and the schema are public
(no token), and none of them is an operation of the OpenAPI schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from workbench.protocol import API_PREFIX

SWAGGER_UI_VERSION = "5.36.0"
DOCS_PATH = f"{API_PREFIX}/docs"
STATIC_PATH = f"{API_PREFIX}/static"
STATIC_DIR = Path(__file__).parent / "static"
_ASSETS = f"{STATIC_PATH}/swagger-ui"


def install_docs(app: FastAPI) -> None:
    """Serve the docs page at ``/api/v1/docs`` and its assets at ``/api/v1/static`` (for ``docs_url=None``)."""
    openapi_url = app.openapi_url
    if openapi_url is None:
        return
    # `check_dir` (the default) fails here, at start-up, if the package was installed without its assets.
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="api-static")
    # No online-validator badge: it would fetch an image from validator.swagger.io.
    parameters: dict[str, Any] = {"validatorUrl": None, **(app.swagger_ui_parameters or {})}
    redirect_url = app.swagger_ui_oauth2_redirect_url

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{_ASSETS}/favicon-32x32.png",
            oauth2_redirect_url=root + redirect_url if redirect_url else None,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=parameters,
        )

    app.add_route(DOCS_PATH, swagger_ui, include_in_schema=False)
    if redirect_url:

        async def oauth2_redirect(_request: Request) -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

        app.add_route(redirect_url, oauth2_redirect, include_in_schema=False)
