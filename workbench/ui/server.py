"""The dashboard server: Panel pages behind a sign-in, one feed for all sessions, in its own process.

``workbench up`` starts it as a child process beside the control plane (a slow page or a crash there
never touches the API), and ``workbench dashboard`` runs it alone against any control plane. It reads
the control plane's token from its settings, uses it only for its own calls, and never sends it to a
browser: the sign-in password is checked here, the session is a signed cookie.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import panel as pn

from workbench.errors import ValidationError
from workbench.settings import Settings, get_settings, http_url
from workbench.ui.app import pages
from workbench.ui.context import DashboardContext
from workbench.ui.files import file_patterns
from workbench.ui.process import PARENT_ENV
from workbench.ui.views.shell import stylesheets

log = logging.getLogger("workbench.ui")
LOGIN_TEMPLATE = Path(__file__).parent / "templates" / "login.html"
FIRST_DATA_WAIT_S = 10.0


def auth_setting(settings: Settings) -> str:
    """What Panel checks a password against: a users file when configured, else the API token."""
    if settings.dashboard_users is not None:
        if not settings.dashboard_users.is_file():
            raise ValidationError(
                f"WORKBENCH_DASHBOARD_USERS names {settings.dashboard_users}, which is not a file",
                path=str(settings.dashboard_users),
            )
        return str(settings.dashboard_users)
    token = settings.read_token()
    if not token:
        raise ValidationError(
            f"no API token to sign in with: start the control plane first (it writes {settings.token_file}) "
            "or set WORKBENCH_TOKEN",
            token_file=str(settings.token_file),
        )
    return token


def build_server(
    context: DashboardContext,
    *,
    host: str,
    port: int,
    oauth_provider: str | None = None,
    prefix: str = "",
) -> Any:
    """A Bokeh server (not started) serving every page behind the sign-in.

    ``prefix``: the path it is served under when a proxy forwards it as is (JupyterLab's dashboard tabs:
    ``{base_url}workbench/dashboards``), so the pages' links and websocket go back through the proxy."""
    pn.extension(raw_css=stylesheets(), notifications=False)
    origins = sorted({f"{host}:{port}", f"127.0.0.1:{port}", f"localhost:{port}"})
    # The sign-in cookie's lifetime, in days: Panel reads it from its config (pn.serve does not take it).
    pn.config.oauth_expiry = context.session_s / 86_400  # type: ignore[misc]
    # A page's HTML is the same for everyone (scripts, and where the document goes: the document itself,
    # built for the signed-in person and the page's ?arguments, is pulled over the websocket). So it is
    # answered from one kept session per path at once, and this request's own session is built while
    # the browser loads the scripts, rather than before the HTML is sent ('warm').
    pn.config.reuse_sessions = "warm"
    pn.config.session_key_func = lambda request: request.path
    options: dict[str, Any] = {
        "cookie_secret": context.cookie_secret,
        "basic_login_template": str(LOGIN_TEMPLATE),
    }
    if oauth_provider:
        options["oauth_provider"] = oauth_provider
    else:
        options["basic_auth"] = auth_setting(context.settings)
    return pn.serve(
        pages(context),
        address=host,
        port=port,
        websocket_origin=origins,
        show=False,
        start=False,
        title="Workbench",
        extra_patterns=file_patterns(context),
        **({"prefix": prefix} if prefix else {}),
        **options,
    )


def run(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    api_url: str | None = None,
    on_ready: Callable[[str], None] | None = None,
    oauth_provider: str | None = None,
    prefix: str = "",
) -> None:
    """Serve the dashboards in this process until interrupted."""
    bind = host or settings.host
    dashboard_port = settings.dashboard_port if port is None else port
    context = DashboardContext.for_settings(
        settings, api_url=api_url, session_s=settings.dashboard_session_s, cookie_secret=secrets.token_hex(32)
    )
    context.feed.start()
    context.feed.ready.wait(FIRST_DATA_WAIT_S)  # the first page then opens with data
    provider = oauth_provider or settings.dashboard_oauth_provider
    server = build_server(context, host=bind, port=dashboard_port, oauth_provider=provider, prefix=prefix)
    server.start()
    if on_ready is not None:
        on_ready(http_url(bind, server.port) + prefix)
    try:
        server.io_loop.start()
    finally:
        context.feed.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m workbench.ui.server``: what ``workbench up`` starts as its dashboard child."""
    parser = argparse.ArgumentParser(prog="workbench-dashboard")
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--api-url", default=None)
    parser.add_argument("--prefix", default="", help="the path a proxy serves the pages under")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("bokeh").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = get_settings()
    if parent := os.environ.get(PARENT_ENV):
        threading.Thread(target=_exit_with_parent, args=(int(parent),), daemon=True).start()
    try:
        run(
            settings,
            host=args.host,
            port=args.port,
            api_url=args.api_url,
            prefix=args.prefix.rstrip("/"),
            on_ready=lambda url: print(f"Workbench dashboards on {url}", flush=True),
        )
    except ValidationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


def _exit_with_parent(parent: int) -> None:
    """A child started for one process (JupyterLab's tabs) must not outlive it if it is killed."""
    while os.getppid() == parent:
        time.sleep(2.0)
    log.warning("dashboard server: the process that started it is gone; exiting")
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
