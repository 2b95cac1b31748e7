"""Real servers on real ports for tests: free ports, uvicorn in a thread, throw-away PostgreSQL."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn


def plane_env(home: Path, api_port: int, router_port: int, **extra: str) -> dict[str, str]:
    """The environment of a ``workbench up`` child on a home and ports, with no outer WORKBENCH_* leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(
        WORKBENCH_HOME=str(home),
        WORKBENCH_API_PORT=str(api_port),
        WORKBENCH_ROUTER_PORT=str(router_port),
        WORKBENCH_ALLOWED_ROOTS=str(home.parent),
        COLUMNS="200",
        # The dashboards are a separate child with a fixed default port; tests that want them say so.
        WORKBENCH_DASHBOARD="0",
        **extra,
    )
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SwitchableServer:
    """An ASGI app served by uvicorn on one real port, in a background thread, that a test can take down
    and bring back on the same port: a server that goes away and returns, as the clients see it."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def up(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        self._server, self._thread = server, thread

    def down(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._server = self._thread = None


@contextmanager
def run_server(app: Any, port: int | None = None) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a real port in a background thread (as uvicorn's own tests do)."""
    server = SwitchableServer(app, port)
    server.up()
    try:
        yield server.url
    finally:
        server.down()


def postgres_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class PostgresCluster:
    """A throw-away cluster in a temporary directory on a free port.

    initdb refuses to run as root, so as root the cluster belongs to the ``postgres`` user.
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.base = Path(tempfile.mkdtemp(prefix="workbench-pg-"))
        self.data = self.base / "data"
        self.port = free_port()
        self._as_root = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        command = list(args)
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        if self._as_root:
            shutil.chown(self.base, "postgres", "postgres")
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "workbench", "--no-sync"
        )
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.base / "log"),
            "-w",
            "start",
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://workbench@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=workbench dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
