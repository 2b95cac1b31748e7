"""Nothing waits behind a slow thing: control-plane calls on one endpoint while another's deploy is held.

    .venv/bin/python benchmarks/blocked_deploy.py               # ~2 minutes; prints a table
    .venv/bin/python benchmarks/blocked_deploy.py --write-docs  # also updates docs/benchmarks.md

One run, on real processes (control plane API in this process on a real port, router and replicas):
endpoint ``steady`` serves a small pyfunc model with a second version kept warm at 0 %, and has a monitor.
Endpoint ``held`` deploys a model whose ``load_context`` blocks until a file exists. Every call kind on
``steady`` is timed through the HTTP client with nothing else going on (idle: before, and again after),
and while the deploy of ``held`` is blocked in its replica's warm-up. After each call the benchmark checks that the
held deploy is still blocked (its thread alive, its replica still starting), so every sample taken
"during" really overlapped the warm-up.

The traffic changes (a deploy flipping the weights between the two warm versions, a rollback) start or
stop no replica, so their time is the control plane's own. A rollout start routes the warm candidate;
its abort retires the candidate's replica (SIGTERM, drained) inside the call, as every traffic change
that drops a version does, so it is shown apart with that cost included.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from _docs import replace_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Nothing waits behind a slow thing (issue 10)"
TARGET_MS = 50.0
HOLD_AT_MOST_S = 600.0
COLUMNS = ("a", "b", "c")


class SteadyModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """A tiny model (pickled by value: this script is ``__main__``)."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray[Any, Any]:
        result: np.ndarray[Any, Any] = model_input["a"].to_numpy(dtype=np.float64) * self.scale
        return result


class GatedModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """Loads only once ``gate`` exists (or after ``limit_s``): a warm-up held as long as the benchmark likes."""

    def __init__(self, gate: str, limit_s: float) -> None:
        self.gate = gate
        self.limit_s = limit_s

    def load_context(self, context: Any) -> None:
        deadline = time.monotonic() + self.limit_s
        while not os.path.exists(self.gate) and time.monotonic() < deadline:
            time.sleep(0.05)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray[Any, Any]:
        result: np.ndarray[Any, Any] = model_input["a"].to_numpy(dtype=np.float64)
        return result


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """The API on a free port, uvicorn in a thread."""
    import socket

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the API did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


class Calls:
    """The call kinds on ``steady``, each timed; ``check`` runs after every call (not timed)."""

    def __init__(self, client: Any, check: Callable[[], None]) -> None:
        self.client = client
        self.check = check
        self.samples: dict[str, list[float]] = {}

    def timed(self, kind: str, call: Callable[[], Any]) -> Any:
        began = time.perf_counter()
        value = call()
        self.samples.setdefault(kind, []).append((time.perf_counter() - began) * 1000)
        self.check()
        return value

    def reads(self, rounds: int) -> None:
        for _ in range(rounds):
            self.timed("status", self.client.status)
            self.timed("endpoint status", lambda: self.client.endpoint_status("steady"))
            self.timed("monitors", lambda: self.client.monitors(endpoint="steady"))
            self.timed("monitor (values now)", lambda: self.client.monitor("steady-watch"))
            self.timed("rollouts", lambda: self.client.rollouts(endpoint="steady"))

    def traffic(self, rounds: int) -> None:
        self._flip(100.0, 0.0)  # both versions warm (not timed): no call below starts a replica
        for _ in range(rounds):
            self.timed("deploy (weights flipped)", lambda: self._flip(0.0, 100.0))
            self.timed("rollback", lambda: self.client.rollback("steady", reason="bench"))

    def _flip(self, v1: float, v2: float) -> None:
        routes = [{"model": "models:/steady/1", "weight": v1}, {"model": "models:/steady/2", "weight": v2}]
        self.client.update_endpoint("steady", routes, reason="bench")

    def rollouts(self, rounds: int) -> None:
        from workbench.specs.rollout import CanaryStep, RolloutSpec

        spec = RolloutSpec(
            endpoint="steady",
            candidate="models:/steady/2",
            steps=(CanaryStep(weight=10, min_duration_s=600),),
            tick_s=600,
        )
        for _ in range(rounds):
            self._flip(100.0, 0.0)  # the candidate warm again (not timed)
            self.check()
            record = self.timed("rollout start", lambda: self.client.start_rollout(spec, reason="bench"))
            self.timed(
                "rollout abort (drains its candidate)",
                lambda rollout=record.id: self.client.rollout_action(rollout, "abort", reason="bench"),
            )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run(read_rounds: int, traffic_rounds: int, rollout_rounds: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from workbench.api import create_app
    from workbench.client import Client
    from workbench.control_plane import ControlPlane
    from workbench.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="wb-bench-blocked-"))
    settings = Settings.for_home(
        workdir / "home", allowed_roots=(workdir,), api_port=0, router_port=0, serving_backend="local"
    )
    gate = workdir / "release"
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({name: rng.normal(size=400) for name in COLUMNS})
    plane = ControlPlane(settings)
    plane.start_serving()
    try:
        with (
            serve(create_app(settings, plane)) as url,
            Client(url, settings=settings, actor="bench") as client,
        ):
            example = frame.head(2)
            for scale in (1.0, 2.0):
                client.register_model(
                    "steady", SteadyModel(scale), input_example=example, reference_data=frame
                )
            client.register_model("gated", GatedModel(str(gate), HOLD_AT_MOST_S), input_example=example)
            client.deploy("steady", "models:/steady/1")
            client.create_monitor(
                {"name": "steady-watch", "endpoint": "steady", "window_s": 20, "every_s": 2}
            )
            print("set up; idle phase", flush=True)

            idle = Calls(client, lambda: None)
            idle.reads(read_rounds)
            idle.traffic(traffic_rounds)
            idle.rollouts(rollout_rounds)

            outcome: dict[str, Any] = {}

            def deploy_held() -> None:
                with Client(url, settings=settings, actor="bench") as own:
                    try:
                        outcome["record"] = own.deploy("held", "models:/gated/1")
                    except Exception as exc:
                        outcome["error"] = exc

            def held_states() -> list[str]:
                replicas = plane.serving.status()["replicas"]
                return [r["state"] for r in replicas if r["endpoint"] == "held"]

            deploying = threading.Thread(target=deploy_held, daemon=True)
            deploying.start()
            while held_states() != ["starting"]:
                if not deploying.is_alive():
                    raise RuntimeError(f"the held deploy ended before its replica started: {outcome}")
                time.sleep(0.05)

            def still_held() -> None:
                if not deploying.is_alive() or held_states() != ["starting"] or gate.exists():
                    raise RuntimeError("the held deploy is no longer blocked: this sample did not overlap it")

            print("held deploy blocked; measuring", flush=True)
            held = Calls(client, still_held)
            held.reads(read_rounds)
            held.traffic(traffic_rounds)
            held.rollouts(rollout_rounds)
            released_at = time.perf_counter()
            gate.touch()
            deploying.join(timeout=HOLD_AT_MOST_S)
            if deploying.is_alive() or "error" in outcome:
                raise RuntimeError(f"the held deploy did not complete once released: {outcome}")
            release_s = time.perf_counter() - released_at
            print("released; idle again", flush=True)
            idle.reads(read_rounds)  # idle samples before and after: the store grows meanwhile
            idle.traffic(traffic_rounds)
            idle.rollouts(rollout_rounds)
    finally:
        plane.close()
    kinds = list(idle.samples)
    rows = [
        {
            "kind": kind,
            "n": len(held.samples[kind]),
            "n_idle": len(idle.samples[kind]),
            "idle_p50": statistics.median(idle.samples[kind]),
            "idle_p99": _pct(idle.samples[kind], 0.99),
            "held_p50": statistics.median(held.samples[kind]),
            "held_p99": _pct(held.samples[kind], 0.99),
            "held_max": max(held.samples[kind]),
        }
        for kind in kinds
    ]
    load = os.getloadavg()[0]
    return {"rows": rows, "release_s": release_s, "load": load}


def render(result: dict[str, Any]) -> str:
    lines = [
        SECTION,
        "",
        "Command: `make bench-blocked` (`.venv/bin/python benchmarks/blocked_deploy.py --write-docs`).",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on the development machine ({os.cpu_count()} cores, Python "
        f"{platform.python_version()}), load average {result['load']:.1f} at the end. Endpoint `steady` (a tiny "
        "pyfunc model, a second version warm at 0 %, a monitor) is called through the HTTP client with "
        "nothing else going on (idle, before and after), then while endpoint `held` deploys a model whose "
        "`load_context` blocks until the benchmark releases it; after every call the benchmark checks that the held "
        "deploy is still blocked, so each sample overlapped the held warm-up. Times in ms, through HTTP "
        "(client, API, control plane, state store).",
        "",
        "| call on `steady` | n idle / held | idle p50 | idle p99 | during the held deploy: p50 | p99 | max |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['kind']} | {row['n_idle']} / {row['n']} | {row['idle_p50']:.1f} | {row['idle_p99']:.1f} | "
            f"{row['held_p50']:.1f} | {row['held_p99']:.1f} | {row['held_max']:.1f} |"
        )
    fast = [r for r in result["rows"] if "rollout" not in r["kind"]]
    worst = max(fast, key=lambda r: r["held_p99"])
    verdict = "meets" if worst["held_p99"] <= TARGET_MS else "misses"
    lines += [
        "",
        f"Target: p99 ≤ {TARGET_MS:g} ms during the held deploy for the calls that start or stop no replica of "
        f"their own; the worst, {worst['kind']}, has p99 {worst['held_p99']:.1f} ms ({verdict} it). The "
        "rollout rows include the candidate's replica: the abort retires it (SIGTERM, drained) inside the "
        "call. Before this change, status, endpoint status, monitor values, deploy, rollback and the rollout "
        "calls all waited for the held warm-up (up to 180 s), because the supervisor held one lock across "
        "readiness waits (the list reads did not); the test `tests/serving/test_blocked_deploy.py` fails on "
        "that code: its status call never returns while the replica is starting.",
        f"Once released, the held deploy completed {result['release_s']:.1f} s later.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reads", type=int, default=60, help="rounds of the five read calls per phase")
    parser.add_argument("--traffic", type=int, default=20, help="rounds of deploy + rollback per phase")
    parser.add_argument("--rollouts", type=int, default=5, help="rounds of rollout start + abort per phase")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    result = run(args.reads, args.traffic, args.rollouts)
    section = render(result)
    print(section)
    if args.write_docs:
        replace_section(SECTION, section)


if __name__ == "__main__":
    main()
