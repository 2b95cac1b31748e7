"""A bare router process for tests that need one without a control plane: its config written to a
directory, and the command that runs it (the same ``python -m workbench.serving.router`` the supervisor
starts)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from workbench.serving.config import RouterConfig


def write_router_config(directory: Path, **settings: Any) -> RouterConfig:
    """``router.json`` in ``directory``, with a token, routes and ready file there; ``settings`` override
    the config's fields (``grpc_port``, ``grpc_tls``...). Port 0: the router picks a free one."""
    directory.mkdir(parents=True, exist_ok=True)
    token = directory / "token"
    token.write_text("t")
    config = RouterConfig(
        **{
            "port": 0,
            "routes_file": directory / "routes.json",
            "token_file": token,
            "ready_file": directory / "ready.json",
            **settings,
        }
    )
    (directory / "router.json").write_text(config.model_dump_json())
    return config


def router_command(directory: Path) -> list[str]:
    return [sys.executable, "-m", "workbench.serving.router", str(directory / "router.json")]
