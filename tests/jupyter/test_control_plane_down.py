"""A control plane that is down: the sidebar's state says so, and recovers when it answers again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests._servers import free_port, run_server
from workbench.api import create_app
from workbench.control_plane import ControlPlane
from workbench.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture
def later_port() -> int:
    return free_port()


@pytest.fixture
def jp_server_config(
    later_port: int, settings: Settings, plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    monkeypatch.setenv("WORKBENCH_URL", f"http://127.0.0.1:{later_port}")
    monkeypatch.setenv("WORKBENCH_HOME", str(settings.home))
    return {"ServerApp": {"jpserver_extensions": {"workbench.jupyter": True}}}


async def test_the_state_says_the_control_plane_is_down_and_recovers(
    jp_fetch: Callable[..., Any], later_port: int, settings: Settings, plane: ControlPlane
) -> None:
    async def state() -> dict[str, Any]:
        response = await jp_fetch("workbench", "state", raise_error=False)
        assert response.code == 200
        answer: dict[str, Any] = json.loads(response.body)
        return answer

    down = await state()
    assert "cannot reach the control plane" in down["error"]
    assert down["endpoints"] == []
    with run_server(create_app(settings, plane), port=later_port):
        for _ in range(100):  # the shared watcher polls every second
            latest = await state()
            if latest["error"] is None:
                break
            await asyncio.sleep(0.2)
        assert latest["error"] is None
        assert latest["endpoints"] == []  # a fresh control plane: nothing served, and said as such
