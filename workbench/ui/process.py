"""The dashboard server as a child of ``workbench up``: started once the API answers, stopped with it.

A separate process keeps Panel's event loop and its per-session work off the control plane's GIL, and
lets a dashboard fail (a port in use, a bad users file) without taking the API down: ``up`` says so and
goes on serving.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

from workbench.launcher import terminate
from workbench.settings import Settings, http_url

#: Set to the starter's pid: the dashboard server exits when that process is gone (it was killed).
PARENT_ENV = "WORKBENCH_DASHBOARD_PARENT_PID"


def dashboard_answers(url: str, timeout: float = 1.0) -> bool:
    """The sign-in page answers: the server is up (every other page needs a session)."""
    try:
        return httpx.get(f"{url}/login", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


class DashboardProcess:
    """``host``/``port`` default to the settings'; ``prefix`` is the path a proxy serves it under."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        *,
        host: str | None = None,
        port: int | None = None,
        prefix: str = "",
        exit_with_parent: bool = False,
    ) -> None:
        self.settings = settings
        self.exit_with_parent = exit_with_parent
        self.host = host or settings.host
        self.port = settings.dashboard_port if port is None else port
        self.prefix = prefix.rstrip("/")
        self.url = http_url(self.host, self.port) + self.prefix
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 60.0) -> str | None:
        """Start and wait until it answers; returns why it did not (None when it runs)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        command = [
            sys.executable,
            "-m",
            "workbench.ui.server",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--api-url",
            self.settings.api_url,
            *(["--prefix", self.prefix] if self.prefix else []),
        ]
        self.process = subprocess.Popen(
            command,
            env={
                **os.environ,
                "WORKBENCH_HOME": str(self.settings.home),
                **({PARENT_ENV: str(os.getpid())} if self.exit_with_parent else {}),
            },
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"the dashboard server exited with code {self.process.returncode}; see {self.log_path}"
            if dashboard_answers(self.url, timeout=0.5):
                return None
            time.sleep(0.2)
        self.stop()
        return f"the dashboard server did not answer at {self.url} within {timeout:.0f}s; see {self.log_path}"

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            terminate(self.process, timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
