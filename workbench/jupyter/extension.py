"""Loading the server extension: find (or start) the control plane, share one hub, register the routes.

Configured like any Jupyter extension (``jupyter_server_config.py`` or the command line)::

    c.Workbench.start_control_plane = True   # start `workbench up` if none answers
    c.Workbench.poll_s = 1.0                 # how often the shared watcher polls while tabs listen

The control plane is the one ``workbench.Client()`` would find (``WORKBENCH_URL``, ``WORKBENCH_HOME``,
``WORKBENCH_TOKEN``), so a notebook and the sidebar talk to the same one.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Any

from jupyter_server.utils import url_path_join
from traitlets import Bool, Float, Unicode
from traitlets.config import Configurable

from workbench.client import Client
from workbench.jupyter.dashboards import DashboardServer
from workbench.jupyter.handlers import Services, routes
from workbench.jupyter.hub import LiveHub
from workbench.launcher import ControlPlaneProcess, is_healthy
from workbench.settings import Settings

log = logging.getLogger("workbench.jupyter")


class Workbench(Configurable):
    """The workbench's JupyterLab integration."""

    start_control_plane = Bool(
        False, help="Start a local control plane (`workbench up`) when none answers at start-up."
    ).tag(config=True)
    poll_s = Float(1.0, help="Seconds between the shared watcher's polls while a tab listens.").tag(
        config=True
    )
    idle_stop_s = Float(15.0, help="Seconds the watcher keeps polling after the last tab left.").tag(
        config=True
    )
    runs_dir = Unicode(
        "workbench-runs", help="Where, under Jupyter's root, executed runbook notebooks are opened from."
    ).tag(config=True)


def load(server_app: Any) -> None:
    config = Workbench(parent=server_app)
    settings = Settings.from_env()  # at load, not the process-wide cache: one server, one environment
    if config.start_control_plane:
        threading.Thread(
            target=_start_plane,
            args=(settings, server_app.web_app.settings),
            name="workbench-control-plane",
            daemon=True,
        ).start()

    def client_factory() -> Client:
        return Client(settings=settings, actor="jupyter")

    hub = LiveHub(client_factory, every_s=config.poll_s, idle_stop_s=config.idle_stop_s)
    web_app = server_app.web_app
    base_url = web_app.settings["base_url"]
    web_app.settings["workbench_services"] = Services(client_factory, hub, config.runs_dir)
    web_app.settings["workbench_dashboards"] = DashboardServer(
        settings, url_path_join(base_url, "workbench", "dashboards")
    )
    web_app.add_handlers(".*$", routes(base_url))
    # Jupyter has no stop hook for a plain extension: the dashboards' process is stopped at exit, and
    # exits by itself should Jupyter be killed (it watches its parent).
    atexit.register(web_app.settings["workbench_dashboards"].stop)
    server_app.log.info("workbench: extension loaded; control plane at %s", settings.api_url)


def _start_plane(settings: Any, web_settings: dict[str, Any]) -> None:
    """``workbench up`` as a child of Jupyter, when asked to and none answers (in the background: Jupyter
    starts meanwhile, and the sidebar says the control plane is not there yet). It is Jupyter's: kept in
    ``workbench_control_plane`` and stopped when Jupyter exits."""
    if is_healthy(settings.api_url):
        return
    log_path = settings.home / "logs" / "control-plane-from-jupyter.log"
    process = ControlPlaneProcess(settings.api_url, {"WORKBENCH_HOME": str(settings.home)}, log_path)
    web_settings["workbench_control_plane"] = process
    atexit.register(process.stop)
    try:
        process.start()
        log.info("workbench: started a control plane at %s (log: %s)", settings.api_url, log_path)
    except Exception as exc:  # Jupyter keeps running; the sidebar shows the control plane as down
        log.warning("workbench: could not start a control plane: %s", exc)
