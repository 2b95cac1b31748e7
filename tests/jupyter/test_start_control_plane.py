"""``c.Workbench.start_control_plane = True``: Jupyter starts ``workbench up`` when none answers, and the
sidebar's state finds it once it is up."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests._servers import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def jp_server_config(
    tmp_path: Path, mlflow_template: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    for name in [n for n in os.environ if n.startswith("WORKBENCH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    monkeypatch.setenv("WORKBENCH_API_PORT", str(free_port()))
    monkeypatch.setenv("WORKBENCH_SERVING_BACKEND", "none")
    monkeypatch.setenv("WORKBENCH_DASHBOARD", "0")
    return {
        "ServerApp": {"jpserver_extensions": {"workbench.jupyter": True}},
        "Workbench": {"start_control_plane": True},
    }


async def test_jupyter_starts_a_control_plane_when_none_answers(
    jp_serverapp: Any, jp_fetch: Callable[..., Any]
) -> None:
    try:
        latest: dict[str, Any] = {}
        for _ in range(300):  # `workbench up` takes seconds to answer
            response = await jp_fetch("workbench", "state", raise_error=False)
            latest = json.loads(response.body)
            if latest["error"] is None:
                break
            await asyncio.sleep(0.3)
        assert latest["error"] is None, latest["error"]
        assert latest["endpoints"] == []
        process = jp_serverapp.web_app.settings["workbench_control_plane"]
        assert process.process is not None
        assert process.process.poll() is None
    finally:
        started = jp_serverapp.web_app.settings.get("workbench_control_plane")
        if started is not None:
            started.stop()
