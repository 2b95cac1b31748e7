"""The real stack the dashboard benchmark measures, and the browser that looks at it.

A control plane in this process (its API on a real port, wrapped in :class:`CountingApp` so that every
request it receives is counted), the router and one replica process per served version, an hour of
monitor history written into the state store, paced live load from ``_paced_load.py`` in its own
process, the dashboard server as its own process (``python -m workbench.ui.server``, as ``workbench up``
starts it), and Debian's Chromium through Playwright. Nothing is faked: only the past hour is written
directly, in the shape the monitors' history recorder writes it.
"""

from __future__ import annotations

import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from blocked_deploy import serve

BENCH = Path(__file__).resolve().parent
MODEL = "churn"
ACTOR = "bench"
#: The endpoint that serves no background load: a request sent to it is the only one its counter sees.
PROBE = "probe"
#: The endpoint whose rollbacks are timed: a second version warm at 0 % so a rollback starts no replica.
ROLLBACK = "e00"
HOUR_S = 3600
FILL_BATCH_S = 60

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
_NAMED = re.compile(r"/(endpoints|rollouts|monitors|models|runbook-runs|alert-rules)/[^/]+")


class CountingApp:
    """ASGI middleware: counts every HTTP request by (actor header, path with names masked, status), and
    keeps the last ``keep`` as (end, wall clock; actor; path; status; seconds) to see what a stretch held."""

    def __init__(self, app: ASGIApp, keep: int = 5000) -> None:
        self.app = app
        self._counts: Counter[tuple[str, str, int]] = Counter()
        self.recent: deque[tuple[float, str, str, int, float]] = deque(maxlen=keep)
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        actor = next((v.decode() for k, v in scope["headers"] if k == b"x-workbench-actor"), "-")
        path = _NAMED.sub(lambda m: f"/{m.group(1)}/{{name}}", scope["path"]).removeprefix("/api/v1")
        status = 0

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        began = time.monotonic()
        try:
            await self.app(scope, receive, counted)
        finally:
            with self._lock:
                self._counts[(actor, path, status)] += 1
                self.recent.append((time.time(), actor, path, status, time.monotonic() - began))

    def snapshot(self) -> Counter[tuple[str, str, int]]:
        with self._lock:
            return Counter(self._counts)


@dataclass(frozen=True)
class Setup:
    endpoints: int = 10
    rate: float = 4.0  # requests a second per loaded endpoint
    every_s: float = 1.0  # the monitors' look interval: a point a second, as the written hour has
    window_s: float = 60.0


# ------------------------------------------------------------------------------------------- history
def look_points(
    monitor: str,
    ts: float,
    versions: tuple[int, ...],
    columns: tuple[str, ...],
    rate: float,
    rng: random.Random,
) -> list[tuple[str, str, str, float, float]]:
    """One look's points ``(monitor, series, key, ts, value)``, shaped as the engine records them: the
    monitor-wide series (key ``all``), drift per column, traffic per version."""
    traffic = {
        "requests": rate,
        "requests_per_s": rate,
        "error_rate": 0.0,
        "latency_p50_ms": 1.0 + rng.random() * 0.3,
        "latency_p95_ms": 2.0 + rng.random(),
        "latency_p99_ms": 3.5 + rng.random() * 2,
    }
    wide = {
        **traffic,
        "rows": rate,
        "drift_share": 0.0,
        "dataset_drift": 0.0,
        "prediction_drift": rng.random() * 0.05,
        "labelled": 0.0,
    }
    points = [(monitor, series, "all", ts, value) for series, value in wide.items()]
    points += [(monitor, "drift", column, ts, rng.random() * 0.05) for column in columns]
    share = 1.0 / len(versions)
    for version in versions:
        points += [
            (monitor, series, str(version), ts, value * share if series.startswith("request") else value)
            for series, value in traffic.items()
        ]
    return points


def fill_history(
    plane: Any, monitors: dict[str, tuple[int, ...]], columns: tuple[str, ...], *, end: float, rate: float
) -> int:
    """A point a second per series for the hour before ``end``, in the recorder's transactions."""
    from workbench.store.history import HistoryRepository

    repo = HistoryRepository()
    rng = random.Random(11)
    first = int(end) - HOUR_S
    written = 0
    for start in range(first, int(end), FILL_BATCH_S):
        batch = [
            point
            for second in range(start, min(start + FILL_BATCH_S, int(end)))
            for name, versions in monitors.items()
            for point in look_points(name, float(second), versions, columns, rate, rng)
        ]
        with plane.db.write() as connection:
            written += repo.append(connection, batch)
    return written


# ------------------------------------------------------------------------------------------ the load
class PacedLoad:
    """``_paced_load.py`` in its own process: ``rate`` requests a second to each URL until stopped."""

    def __init__(self, urls: list[str], bodies: list[bytes], rate: float, workdir: Path) -> None:
        config = workdir / "load.json"
        config.write_text(json.dumps({"urls": urls, "bodies": [b.decode() for b in bodies], "rate": rate}))
        with (workdir / "load.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(BENCH / "_paced_load.py"), str(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 60)
        if not ready or self.process.stdout.readline().strip() != b"ready":
            self.process.kill()
            raise RuntimeError(f"the load generator did not start; see {workdir / 'load.log'}")

    def stop(self) -> dict[str, dict[str, int]]:
        process = self.process
        assert process.stdin is not None
        assert process.stdout is not None
        if process.poll() is not None:
            return {}
        process.stdin.write(b"stop\n")
        process.stdin.close()
        out = process.stdout.read()
        process.wait(timeout=30)
        tallies: dict[str, dict[str, int]] = json.loads(out.decode().strip().splitlines()[-1])
        return tallies


# ------------------------------------------------------------------------------------- the dashboard
class DashboardServer:
    """``python -m workbench.ui.server`` for the home's control plane, optionally under cProfile."""

    def __init__(
        self, home: Path, api_url: str, log: Path, port: int, *, profile: Path | None = None
    ) -> None:
        from workbench.ui.process import dashboard_answers

        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.profile = profile
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
        env.update(WORKBENCH_HOME=str(home), WORKBENCH_DASHBOARD_SESSION_S="14400")
        prefix = [sys.executable] + (["-m", "cProfile", "-o", str(profile)] if profile else [])
        self._log = log.open("ab")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [*prefix, "-m", "workbench.ui.server", "--port", str(port), "--api-url", api_url],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while not dashboard_answers(self.url, timeout=0.5):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the dashboard server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        self.answered_s = time.monotonic() - self.started

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            # SIGINT ends the server through KeyboardInterrupt, so cProfile writes its file.
            self.process.send_signal(signal.SIGINT if self.profile else signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


# ---------------------------------------------------------------------------------------- the stack
@dataclass
class Stack:
    plane: Any  # workbench.control_plane.ControlPlane
    client: Any  # workbench.client.Client, actor ACTOR
    counter: CountingApp
    api_url: str
    router_url: str
    token: str
    dashboard: DashboardServer
    load: PacedLoad
    endpoints: tuple[str, ...]  # the loaded ones
    body: bytes  # one scoring request (MLflow JSON, one row)
    history_points: int
    setup_s: float
    workdir: Path

    def invocations(self, endpoint: str) -> str:
        return f"{self.router_url}/endpoints/{endpoint}/invocations"


def _bodies(frame: Any, n: int) -> list[bytes]:
    columns = list(frame.columns)
    return [
        json.dumps({"dataframe_split": {"columns": columns, "data": [frame.iloc[i].tolist()]}}).encode()
        for i in range(n)
    ]


def _register(client: Any, train: Any, holdout: Any, columns: tuple[str, ...]) -> None:
    """The demo's churn MLP, versions 1 and 2, with the holdout as the monitors' reference."""
    from workbench.demo.training import train_version

    example = holdout[list(columns)].head(2)
    for number in (1, 2):
        trained = train_version(number, train, holdout, seed=5)
        client.register_model(MODEL, trained.module, input_example=example, reference_data=holdout)


def _deploy(url: str, settings: Any, endpoints: list[str]) -> None:
    """v1 on every endpoint (replicas start in parallel; two cores, so three at a time), and v2 warm at
    0 % beside it on ``ROLLBACK``."""
    from workbench.client import Client

    def deploy(name: str) -> None:
        with Client(url, settings=settings, actor=ACTOR) as client:
            client.deploy(name, f"models:/{MODEL}/1", reason="benchmark")

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(deploy, endpoints))
    with Client(url, settings=settings, actor=ACTOR) as client:
        routes = [
            {"model": f"models:/{MODEL}/1", "weight": 100},
            {"model": f"models:/{MODEL}/2", "weight": 0},
        ]
        client.update_endpoint(ROLLBACK, routes, reason="benchmark: v2 warm for the rollbacks")


def _watch(client: Any, endpoints: list[str], setup: Setup) -> dict[str, tuple[int, ...]]:
    """A monitor per endpoint, named after it; returns each monitor's served versions."""
    for name in endpoints:
        client.create_monitor(
            {"name": name, "endpoint": name, "window_s": setup.window_s, "every_s": setup.every_s}
        )
    return {name: (1, 2) if name == ROLLBACK else (1,) for name in endpoints}


@contextmanager
def stack(setup: Setup, *, log: Callable[[str], None] = print) -> Iterator[Stack]:
    """Everything up, with an hour of history and the load running; torn down on exit (the temporary
    directory too, unless ``WB_BENCH_KEEP`` is set: logs and state store to look at afterwards)."""
    from workbench.api import create_app
    from workbench.client import Client
    from workbench.control_plane import ControlPlane
    from workbench.demo.dataset import FEATURES, generate_churn, split_frame
    from workbench.settings import Settings
    from workbench.tokens import ensure_token

    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="wb-bench-dashboards-"))
    settings = Settings.for_home(
        workdir / "home", allowed_roots=(workdir,), api_port=0, router_port=0, serving_backend="local"
    )
    plane = ControlPlane(settings)
    dashboard: DashboardServer | None = None
    load: PacedLoad | None = None
    try:
        plane.start_serving()
        plane.monitoring.engine.start_loop()
        counter = CountingApp(create_app(settings, plane))
        with serve(counter) as url, Client(url, settings=settings, actor=ACTOR) as client:
            train, holdout = split_frame(generate_churn(3000, seed=5), holdout_fraction=0.25, seed=5)
            _register(client, train, holdout, tuple(FEATURES))
            log(f"models registered ({time.monotonic() - began:.0f} s)")
            loaded = tuple(f"e{i:02d}" for i in range(setup.endpoints))
            _deploy(url, settings, [*loaded, PROBE])
            log(f"{len(loaded) + 1} endpoints deployed ({time.monotonic() - began:.0f} s)")
            monitors = _watch(client, [*loaded, PROBE], setup)
            points = fill_history(plane, monitors, tuple(FEATURES), end=time.time(), rate=setup.rate)
            log(f"an hour of history written: {points:,} points ({time.monotonic() - began:.0f} s)")
            router = str(plane.serving.status()["router_url"])
            bodies = _bodies(holdout[list(FEATURES)].reset_index(drop=True), 64)
            # One request to the probe before the dashboard starts, so that every endpoint has had
            # traffic, as in the setup measured: an endpoint never called since the control plane
            # started answers /traffic with next=0, and the feed's cursor (the minimum over endpoints)
            # then asks for every endpoint's whole live window again each second.
            httpx.post(
                f"{router}/endpoints/{PROBE}/invocations", content=bodies[0], timeout=30
            ).raise_for_status()
            load = PacedLoad(
                [f"{router}/endpoints/{name}/invocations" for name in loaded], bodies, setup.rate, workdir
            )
            dashboard = DashboardServer(settings.home, url, workdir / "dashboard.log", free_port())
            log(f"dashboard answering {dashboard.answered_s:.1f} s after its start")
            yield Stack(
                plane=plane,
                client=client,
                counter=counter,
                api_url=url,
                router_url=router,
                token=ensure_token(settings.token_file),
                dashboard=dashboard,
                load=load,
                endpoints=loaded,
                body=bodies[0],
                history_points=points,
                setup_s=time.monotonic() - began,
                workdir=workdir,
            )
    finally:
        if dashboard is not None:
            dashboard.stop()
        if load is not None:
            load.stop()
        plane.close()
        if not os.environ.get("WB_BENCH_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
