"""The JupyterLab extension's tests: a real Jupyter server (pytest-jupyter) with the extension loaded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

# pytest-jupyter's fixtures and hooks for this directory only (as a plugin they would wrap every test
# of the suite: an event loop and a ServerApp cleanup around each one).
from pytest_jupyter.jupyter_core import *  # noqa: F403
from pytest_jupyter.jupyter_server import *  # noqa: F403

from tests.integration.conftest import model_dir  # noqa: F401  (a fixture: a tiny registered model)


async def until(condition: Callable[[], Any], timeout_s: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met in {timeout_s} s")
        await asyncio.sleep(0.05)
