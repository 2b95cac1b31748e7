"""Workbench: take a trained model from the registry to a live, monitored endpoint and back.

The public surface is small on purpose. Heavier names are imported on first use, so that processes
which only need a sliver of the package (a model replica, the router) do not pay for the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench._version import __version__
from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.client import Client
    from workbench.registry.refs import ModelRef
    from workbench.settings import Settings

__all__ = ["Client", "ModelRef", "Settings", "WorkbenchError", "__version__"]

_LAZY = {
    "Client": "workbench.client",
    "ModelRef": "workbench.registry.refs",
    "Settings": "workbench.settings",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
