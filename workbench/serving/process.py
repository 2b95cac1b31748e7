"""What every data-plane process does at start: read its config, bind, announce readiness, serve.

Sockets are bound before uvicorn starts (so a replica asked for port 0 learns its port), and the ready
file is written atomically only once the server accepts connections, so the supervisor never routes
to a process that is still loading.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from workbench.serving.config import ReadyInfo


def bind_tcp(host: str, port: int) -> socket.socket:
    """A listening TCP socket. Its protocol is named (``IPPROTO_TCP``, not the default 0) because asyncio
    sets ``TCP_NODELAY`` only on connections accepted from such a socket: without it, every response on a
    kept-alive connection waited ~40 ms for its body (Nagle's algorithm against the client's delayed ACK);
    the control plane answered in 45 ms what it computed in 2."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def bind_unix(path: Path) -> socket.socket:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o600)
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def write_ready(path: Path, info: ReadyInfo) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(info.model_dump_json())
    os.replace(tmp, path)


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def serve_app(
    app: Any,
    sockets: list[socket.socket],
    *,
    on_started: Callable[[], None],
    graceful_timeout: float = 30.0,
) -> None:
    """uvloop + httptools, no access log, long keep-alive (the router pools its connections)."""
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=300,
        timeout_graceful_shutdown=int(graceful_timeout),
        backlog=2048,
    )
    server = uvicorn.Server(config)

    # Everything loaded so far (torch, the model, numpy) lives as long as the process: move it out of
    # the collector's sight, and collect young objects less often. Full collections over torch's
    # object graph otherwise show up as tens of milliseconds in the latency tail.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    # Background threads (prediction-log writer, inference hand-off) must not hold the GIL for the
    # default 5 ms while the event loop waits: that interval shows up directly in the latency tail.
    sys.setswitchinterval(0.0005)

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=sockets))
        while not server.started:
            if task.done():
                await task
                return
            await asyncio.sleep(0.01)
        on_started()
        await task

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main())


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return None
    return uvloop.new_event_loop


def ready_info(port: int, uds: Path | None, device: str | None) -> ReadyInfo:
    return ReadyInfo(pid=os.getpid(), port=port, uds=uds, device=device, started_at=time.time())
