"""A real ``jupyter lab`` with the built extension for the browser tests, and how a test opens its sidebar.

The lab signs people in with a password (Jupyter's login page, then its cookie), as a shared server or
JupyterHub does, rather than with a token in the URL: a token-opened page keeps the token in its page
config for its lifetime, so its session could not expire.

The lab reaches the served world's control plane through a door of its own (the same control plane's
API on a second port), which a test can close and reopen: a control plane that is down and comes back,
as the lab sees it, while the load and the dashboards go on through the first port.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests._servers import SwitchableServer, free_port
from tests.browser._stack import Stack, wait_for
from workbench.api import create_app

BUILT = Path(__file__).resolve().parents[2] / "workbench" / "jupyter" / "labextension" / "package.json"


@dataclass
class Lab:
    url: str
    password: str
    root: Path
    door: SwitchableServer  # the control plane's API as this lab reaches it


def running_lab(stack: Stack, base: Path) -> Iterator[Lab]:
    if not BUILT.exists():
        pytest.fail("the JupyterLab extension is not built: `make labextension` builds it", pytrace=False)
    door = SwitchableServer(create_app(stack.settings, stack.plane))
    door.up()
    root = base / "root"
    (root / "runbooks").mkdir(parents=True)
    from jupyter_server.auth import passwd

    port, password = free_port(), secrets.token_hex(8)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "JUPYTER_"))}
    env.update(
        WORKBENCH_URL=door.url,
        WORKBENCH_HOME=str(stack.settings.home),
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(base / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
    )
    # No news toast asking to be answered over the panels.
    settings = base / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    log = (base / "lab.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}", "--IdentityProvider.token=",
            f"--PasswordIdentityProvider.hashed_password={passwd(password)}",
            f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0", "--allow-root",
        ],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/login", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, (base / "lab.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "jupyter lab did not answer"
            time.sleep(0.3)
        yield Lab(url, password, root, door)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        door.down()


def sign_in(page: Page, lab: Lab) -> None:
    """Through Jupyter's login page, to JupyterLab with the workbench's sidebar tab on screen."""
    page.goto(f"{lab.url}/login?next=%2Flab")
    page.fill("#password_input", lab.password)
    page.click("#login_submit")
    expect(page.locator('.jp-SideBar [data-id="workbench-sidebar"]')).to_be_visible(timeout=60_000)


def open_sidebar(page: Page, lab: Lab) -> None:
    sign_in(page, lab)
    tab = page.locator('.jp-SideBar [data-id="workbench-sidebar"]')
    sidebar = page.locator("#workbench-sidebar")
    # JupyterLab restores the last layout (the sidebar may already be open): open it only if it is not.
    if not wait_for(sidebar.is_visible, timeout=3, every=0.2, fail=False):
        tab.click()
    expect(sidebar).to_be_visible()


def toast(page: Page, text: str) -> None:
    """A JupyterLab notification saying ``text`` is on screen."""
    expect(page.locator(".Toastify__toast").filter(has_text=text).first).to_be_visible()
