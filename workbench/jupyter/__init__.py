"""The workbench inside JupyterLab: a jupyter_server extension (REST and a live stream under
``{base_url}/workbench/``) and the prebuilt JupyterLab frontend extension it ships with.

The control plane's token stays in this server process: the browser talks to Jupyter, with Jupyter's
own authentication, and Jupyter talks to the control plane as the signed-in Jupyter user.
"""

from __future__ import annotations

from typing import Any

#: The frontend extension's name (``extensions/workbench-lab/package.json``) and where it is installed.
LABEXTENSION = "mlops-workbench"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "workbench.jupyter"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": LABEXTENSION}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    from workbench.jupyter.extension import load

    load(server_app)
