"""Monitor history survives a control-plane restart: a real ``workbench up`` computes series, drift and
alert states under traffic, is stopped and started again, and the client reads the earlier history;
a label for a request made before the restart, which no in-memory index holds any more, still joins."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests._servers import free_port, plane_env
from tests.serving.conftest import oip_columns, wait_until
from workbench.client import Client
from workbench.demo.dataset import FEATURES, generate_churn, split_frame
from workbench.demo.training import train_version
from workbench.launcher import ControlPlaneProcess
from workbench.settings import Settings
from workbench.store import Database
from workbench.store.monitoring import MonitoringRepository

SETTLE_S = 5.0


class Traffic:
    """One client sending one-row requests through the router until stopped."""

    def __init__(self, url: str, bodies: list[bytes]) -> None:
        self.url, self.bodies = url, bodies
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as http:
            n = 0
            while not self._stop.is_set():
                try:
                    self.statuses.append(
                        http.post(self.url, content=self.bodies[n % len(self.bodies)]).status_code
                    )
                except httpx.HTTPError:
                    self.statuses.append(-1)
                n += 1
                self._stop.wait(0.01)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _points(history: dict[str, Any], series: str, key: str) -> dict[str, list[float]]:
    found: dict[str, list[float]] | None = history["monitors"]["hist"]["series"].get(series, {}).get(key)
    return found or {"ts": [], "mean": []}


def _indexed(settings: Settings, endpoint: str, request_id: str) -> bool:
    db = Database(settings.state_url)
    try:
        with db.read() as connection:
            return bool(MonitoringRepository().indexed(connection, endpoint, [request_id]))
    finally:
        db.dispose()


def test_a_restarted_control_plane_shows_the_history_of_before_the_restart(
    tmp_path: Path, mlflow_template: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    api_port, router_port = free_port(), free_port()
    env = plane_env(home, api_port, router_port)
    url, router = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{router_port}"
    settings = Settings.for_home(home, api_url=url)
    data = generate_churn(3000, seed=8)
    train, holdout = split_frame(data, holdout_fraction=0.25, seed=8)
    bodies = [orjson.dumps(oip_columns(holdout.iloc[[i]])) for i in range(200)]
    infer = f"{router}/v2/models/hist/infer"
    began = time.time()

    with ControlPlaneProcess(url, env, home / "logs" / "first.log"), Client(url, settings=settings) as client:
        trained = train_version(1, train, holdout, seed=8)
        client.register_model(
            "churn", trained.module, input_example=holdout[list(FEATURES)].head(2), reference_data=holdout
        )
        client.deploy("hist", "models:/churn/1")
        client.create_monitor(
            {"name": "hist", "endpoint": "hist", "window_s": 5, "every_s": 0.5, "drift": {"min_rows": 50}}
        )
        client.create_alert_rule(
            {"name": "hist-busy", "monitor": "hist", "series": "requests_per_s", "op": ">", "threshold": 1e9}
        )
        labelled = httpx.post(infer, content=bodies[0], headers={"x-request-id": "before-restart"})
        assert labelled.status_code == 200
        with Traffic(infer, bodies) as traffic:

            def drift_judged() -> bool:
                history = client.monitor_history("hist", series="drift", start=began)
                return len(_points(history, "drift", "tenure_months")["ts"]) >= 20

            wait_until(drift_judged, timeout=120, every=0.5)
        assert set(traffic.statuses) == {200}
        # The request labelled below is indexed in the store (the loop indexes every endpoint's log).
        wait_until(lambda: _indexed(settings, "hist", "before-restart"), timeout=60)
        # Compared up to a few seconds back: a look in progress now would add a point after this read.
        settled = time.time() - SETTLE_S
        before = client.monitor_history(
            "hist", series=["requests_per_s", "drift", "alert_state"], start=began, end=settled, step_s=1
        )
        looks_before = client.monitor("hist", history=2000)["history"]

    with (
        ControlPlaneProcess(url, env, home / "logs" / "second.log"),
        Client(url, settings=settings) as client,
    ):
        after = client.monitor_history(
            "hist", series=["requests_per_s", "drift", "alert_state"], start=began, end=settled, step_s=1
        )
        assert after["monitors"]["hist"]["series"] == before["monitors"]["hist"]["series"]
        for series, key in (
            ("requests_per_s", "all"),
            ("drift", "tenure_months"),
            ("alert_state", "hist-busy"),
        ):
            assert len(_points(after, series, key)["ts"]) >= 5, (series, key)
        assert max(_points(after, "requests_per_s", "all")["mean"]) > 0
        looks = client.monitor("hist", history=2000)["history"]
        assert [look["ts"] for look in looks if look["ts"] <= settled] == [
            look["ts"] for look in looks_before if look["ts"] <= settled
        ]
        assert any(look["drift_share"] is not None for look in looks if look["ts"] <= settled)
        # A label for a request of the first control plane's time joins it after the restart.
        assert client.feedback("hist", {"before-restart": 1.0}) == {"endpoint": "hist", "accepted": 1}
        # The CLI reads the same history.
        shown = _cli(env, "monitor", "history", "hist", "--since", "1h", "--step", "60")
        assert shown.returncode == 0, shown.stderr
        assert "requests_per_s" in shown.stdout
        assert "drift_share" in shown.stdout
        refused = _cli(env, "monitor", "history", "hist", "--since", "soon")
        assert refused.returncode == 2
        assert "not a duration" in refused.stderr


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args], env=env, capture_output=True, text=True, timeout=120
    )
