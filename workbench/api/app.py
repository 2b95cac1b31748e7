"""The control plane's HTTP API: ``/api/v1``, OpenAPI at ``/api/v1/openapi.json``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from workbench._version import __version__
from workbench.api.auth import TokenAuth
from workbench.api.docs import install_docs
from workbench.api.errors import install_error_handlers
from workbench.api.idempotency import IdempotencyMiddleware
from workbench.api.routes import (
    audit,
    endpoints,
    experiments,
    features,
    models,
    monitoring,
    optimizations,
    rollouts,
    runbooks,
    system,
)
from workbench.control_plane import ControlPlane
from workbench.protocol import API_PREFIX
from workbench.settings import Settings
from workbench.tokens import ensure_token


def create_app(settings: Settings, plane: ControlPlane | None = None) -> FastAPI:
    """Build the API; the control plane is opened in the lifespan unless one is handed in (tests)."""
    token = ensure_token(settings.token_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = plane is None
        app.state.control_plane = plane or ControlPlane(settings)
        try:
            yield
        finally:
            if owned:
                app.state.control_plane.close()

    app = FastAPI(
        title="Workbench control plane",
        version=__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # served by install_docs from local files, not a CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(
        IdempotencyMiddleware, token=token, store=lambda scope: scope["app"].state.control_plane.idempotency
    )
    install_docs(app)
    auth = Depends(TokenAuth(token, open_reads=settings.open_reads))
    app.include_router(system.public, prefix=API_PREFIX)
    for module in (
        system,
        models,
        optimizations,
        endpoints,
        rollouts,
        experiments,
        features,
        monitoring,
        runbooks,
        audit,
    ):
        app.include_router(module.router, prefix=API_PREFIX, dependencies=[auth])
    return app
