"""Start a control plane as a child process and wait until it answers.

Used by ``workbench demo`` when nothing is running yet, and by the integration tests, which need the
real server on a real port rather than an in-process app.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx

from workbench.errors import UnavailableError
from workbench.protocol import API_PREFIX


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now on ``host`` (a child started right after binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def is_healthy(url: str, timeout: float = 1.0) -> bool:
    try:
        response = httpx.get(f"{url.rstrip('/')}{API_PREFIX}/health", timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.json().get("status") == "ok"


def terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM (a graceful stop), then SIGKILL if it has not exited within ``timeout``."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class ControlPlaneProcess:
    """``workbench up`` in a child process, with its output sent to a log file."""

    def __init__(self, url: str, env: Mapping[str, str], log_path: Path) -> None:
        self.url = url
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 90.0) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workbench", "up"],
            env={**os.environ, **self.env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise UnavailableError(
                    f"the control plane exited with code {self.process.returncode} during start-up; "
                    f"see {self.log_path}: {self.tail()}"
                )
            if is_healthy(self.url, timeout=0.5):
                return self
            time.sleep(0.2)
        self.stop()
        raise UnavailableError(f"the control plane did not answer at {self.url} within {timeout:.0f}s")

    def tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""

    def wait(self) -> int:
        assert self.process is not None
        return self.process.wait()

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is not None:
            terminate(self.process, timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start() if self.process is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
