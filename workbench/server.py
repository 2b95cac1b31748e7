"""Runs the control plane in the foreground: ``workbench up``."""

from __future__ import annotations

import logging
from collections.abc import Callable

import uvicorn

from workbench.api import create_app
from workbench.api.auth import ensure_token
from workbench.settings import Settings


def build_server(settings: Settings, *, log_level: str = "warning") -> uvicorn.Server:
    ensure_token(settings.token_file)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.api_port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    return uvicorn.Server(config)


def serve(
    settings: Settings, *, on_ready: Callable[[], None] | None = None, log_level: str = "warning"
) -> None:
    """Start the API and block until interrupted; ``on_ready`` runs once the socket is listening."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = build_server(settings, log_level=log_level)
    if on_ready is None:
        server.run()
        return

    import asyncio

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                await task
                return
            await asyncio.sleep(0.05)
        on_ready()
        await task

    asyncio.run(main())
