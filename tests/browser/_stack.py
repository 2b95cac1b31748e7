"""The world the browser tests look at: a real control plane serving the churn models under load.

The control plane, its router and replicas run for real (in-process control plane, replica processes);
the dashboard server is its own process, started the way ``workbench up`` starts it; load is generated
all along. One such world serves every browser test (``stack``, package scope in ``conftest.py``): it
takes most of a minute to train, register, deploy and warm up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from playwright.sync_api import Page, expect

from tests._runbooks import write_greet
from tests._servers import free_port, run_server
from workbench.api import create_app
from workbench.client import Client
from workbench.control_plane import ControlPlane
from workbench.demo.dataset import FEATURES, TARGET, generate_churn, split_frame
from workbench.demo.training import train_version
from workbench.settings import Settings
from workbench.ui.process import dashboard_answers

USER = "alice"
ENDPOINT = "churn"
MODEL = "churn-classifier"


@dataclass
class Stack:
    settings: Settings
    plane: ControlPlane
    client: Client
    api_url: str
    dashboard: str
    token: str
    rows: pd.DataFrame


class Dashboard:
    """``python -m workbench.ui.server`` on a free port for a home's control plane, as ``up`` runs it."""

    def __init__(self, settings: Settings, api_url: str, log: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
        environment.update(WORKBENCH_HOME=str(settings.home), **env)
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workbench.ui.server", "--port", str(self.port), "--api-url", api_url],
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while not dashboard_answers(self.url, timeout=0.5):
            assert self.process.poll() is None, f"the dashboard server exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, (
                f"the dashboard server did not answer: {log.read_text()[-2000:]}"
            )
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


def _load(client: Client, rows: pd.DataFrame, stop: threading.Event, errors: list[str]) -> None:
    """About 25 requests a second through the router, each logged (``probe=False``)."""
    index = 0
    while not stop.is_set():
        batch = rows.iloc[[index % len(rows)]]
        index += 1
        try:
            client.predict(ENDPOINT, batch, probe=False)
        except Exception as exc:  # kept for the assertion at the end; the load goes on
            errors.append(f"{type(exc).__name__}: {exc}")
        stop.wait(0.04)


def served_world(root: Path, mlflow_template: Path) -> Iterator[Stack]:
    home = root / "home"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    runbooks = root / "runbooks"
    runbooks.mkdir()
    write_greet(runbooks)  # a cheap runbook to launch from the UIs
    settings = Settings.for_home(
        home,
        allowed_roots=(root,),
        api_port=0,
        router_port=0,
        serving_backend="local",
        runbook_dirs=(runbooks,),
    )
    data = generate_churn(3000, seed=5)
    train, holdout = split_frame(data, holdout_fraction=0.25, seed=5)
    plane = ControlPlane(settings)
    plane.start_serving()
    plane.rollouts.start_loop()
    plane.monitoring.engine.start_loop()
    stop = threading.Event()
    errors: list[str] = []
    dashboard: Dashboard | None = None
    try:
        with (
            run_server(create_app(settings, plane)) as url,
            Client(url, settings=settings, actor="setup") as client,
        ):
            example = holdout[list(FEATURES)].head(2)
            versions: tuple[Literal[1, 2], ...] = (1, 2)
            for number in versions:
                trained = train_version(number, train, holdout, seed=5)
                client.register_model(
                    MODEL,
                    trained.module,
                    input_example=example,
                    reference_data=holdout,
                    reference_target=TARGET,  # labelled, so variants can be judged against it
                    metrics=trained.metrics,
                )
            client.deploy(ENDPOINT, f"models:/{MODEL}/1")
            # Scores from 100 rows: the generated load (about 25/s) fills that even on a busy machine.
            client.create_monitor(
                {
                    "name": ENDPOINT,
                    "endpoint": ENDPOINT,
                    "window_s": 30,
                    "every_s": 2,
                    "drift": {"min_rows": 100},
                }
            )
            dashboard = Dashboard(settings, url, root / "dashboard.log", WORKBENCH_DASHBOARD_SESSION_S="3600")
            rows = holdout[list(FEATURES)].reset_index(drop=True)
            with Client(url, settings=settings, actor="load") as load_client:
                loader = threading.Thread(target=_load, args=(load_client, rows, stop, errors), daemon=True)
                loader.start()
                try:
                    yield Stack(
                        settings, plane, client, url, dashboard.url, settings.read_token() or "", rows
                    )
                finally:
                    stop.set()
                    loader.join(timeout=10)
    finally:
        if dashboard is not None:
            dashboard.stop()
        plane.close()
    assert len(errors) < 5, errors[:5]


def sign_in(
    page: Page, base: str, path: str, user: str = USER, password: str | None = None, *, token: str
) -> None:
    page.goto(f"{base}{path}")
    expect(page.locator("#username")).to_be_visible()
    page.fill("#username", user)
    page.fill("#password", token if password is None else password)
    page.click("#login-submit")


def select(page: Page, label: str, option: str) -> None:
    page.locator(f".bk-input-group:has(label:text-is('{label}')) select").select_option(label=option)


def number_in(page: Page, testid: str) -> str:
    return page.locator(f"[data-testid={testid}]").first.inner_text()


def wait_for(
    predicate: Callable[[], Any], timeout: float = 30.0, every: float = 0.25, *, fail: bool = True
) -> Any:
    """The predicate's first true value; at the timeout, a failed test (or its last value, ``fail=False``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            assert not fail, "condition not met in time"
            return value
        time.sleep(every)


def routes_of(stack: Stack, endpoint: str = ENDPOINT) -> list[tuple[int, float]]:
    record = stack.client.get_endpoint(endpoint)
    return sorted((r.version, r.weight) for r in record.spec.routes if r.weight > 0)
