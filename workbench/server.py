"""Runs the control plane in the foreground: ``workbench up``.

The listening socket is bound and the control plane opened *before* uvicorn starts, so a port already
in use or a bad store URL is a one-line error rather than a traceback from inside the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable

import uvicorn

from workbench.api import create_app
from workbench.control_plane import ControlPlane
from workbench.errors import UnavailableError
from workbench.serving.process import bind_tcp
from workbench.settings import Settings


def bind_socket(host: str, port: int) -> socket.socket:
    try:
        return bind_tcp(host, port)
    except OSError as exc:
        raise UnavailableError(
            f"cannot listen on {host}:{port}: {exc.strerror}", host=host, port=port
        ) from None


def serve(
    settings: Settings, *, on_ready: Callable[[], None] | None = None, log_level: str = "warning"
) -> None:
    """Start the API and block until interrupted; ``on_ready`` runs once the socket is listening."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # uvicorn re-raises the signal that stopped it once it has shut down; with the default SIGTERM
    # action that would kill this process before the data plane is stopped below.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    sock = bind_socket(settings.host, settings.api_port)
    try:
        plane = ControlPlane(settings)
    except BaseException:
        sock.close()
        raise
    try:
        plane.start_serving()
        _announce_scrape_targets(settings, sock, plane)
        plane.rollouts.start_loop()
        plane.monitoring.engine.start_loop()
        plane.runbooks.start_loop()
        plane.experiments.start_loop()
    except BaseException:
        plane.close()
        sock.close()
        raise
    try:
        config = uvicorn.Config(
            create_app(settings, plane),
            log_level=log_level,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
        asyncio.run(_run(uvicorn.Server(config), sock, on_ready))
    finally:
        plane.close()
        sock.close()


def _announce_scrape_targets(settings: Settings, sock: socket.socket, plane: ControlPlane) -> None:
    """Prometheus's service-discovery file, with the ports actually bound (``workbench export prometheus``)."""
    from workbench.export.targets import targets, write_targets

    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    api_url = f"http://{'[' + host + ']' if ':' in host else host}:{sock.getsockname()[1]}"
    status = plane.serving.status()
    try:
        write_targets(settings.home, targets(api_url, status.get("router_url"), str(status.get("backend"))))
    except (OSError, ValueError) as exc:  # scraping is optional: the control plane serves regardless
        logging.getLogger("workbench").warning("Prometheus targets file not written: %s", exc)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


async def _run(server: uvicorn.Server, sock: socket.socket, on_ready: Callable[[], None] | None) -> None:
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            return
        await asyncio.sleep(0.05)
    if on_ready is not None:
        on_ready()
    await task
