"""What people see: served dashboards (Panel + HoloViews on Bokeh) and notebook widgets (ipywidgets).

Every view is a thin client of the control plane through ``workbench.Client``: the dashboards' pages
follow one shared feed per process; the widgets use the notebook's own client. In a notebook::

    from workbench import ui
    views = ui.notebook_views()          # the dashboards' views inline, one feed for the kernel
    views.endpoint("churn")
    ui.DeployWidget(client)              # ipywidgets, for any Jupyter frontend
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "notebook_views": "workbench.ui.notebook",
    "NotebookViews": "workbench.ui.notebook",
    "DeployWidget": "workbench.ui.widgets",
    "RolloutControl": "workbench.ui.widgets",
    "EndpointCard": "workbench.ui.widgets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Imported on first use: Panel and ipywidgets take a second or two to import."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'workbench.ui' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
