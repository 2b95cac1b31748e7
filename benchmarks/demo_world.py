"""The router in the world ``make demo`` leaves behind, with and without its monitor, against MLflow (issue 15).

``workbench demo`` builds its world in a fresh home (three versions, canaries, optimised variants, the
monitor with four alert rules, the feature store, the by-id endpoint); then ``workbench up`` serves it as
a user's would be served: the monitoring loop ticks, alert rules are evaluated, every request is in the
prediction log, the dashboards' process runs. wrk (one thread) sends one-row MLflow JSON at c=64 to the
demo endpoint through the router (the demo's generated customers in turn, 2,000 different rows), in
paired rounds:

- ``router, monitored``: as the demo left it;
- ``router, no monitor``: the monitor and its rules deleted (the feed for feedback still runs);
- ``mlflow models serve``: the champion's model directory, ``--env-manager local``.

The control plane's CPU seconds during each run are read from /proc: what watching the endpoint costs.
Run: ``python benchmarks/demo_world.py [--seconds 8] [--rounds 3] [--write-docs]`` (in ``make bench-serving``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cpu import process_cpu
from _docs import replace_section
from _load import LoadResult, run_wrk
from serving import free_port, start_mlflow, stop

from workbench.client import Client
from workbench.demo.dataset import FEATURES
from workbench.demo.world import DEMO_ENDPOINT, DEMO_MODEL, demo_data, ensure_demo_monitoring
from workbench.launcher import ControlPlaneProcess
from workbench.priority import BACKGROUND_NICE

SECTION = "## The router in the demo's world (benchmarks/demo_world.py)"
CONCURRENCY = 64


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(
        WORKBENCH_HOME=str(home),
        WORKBENCH_API_PORT=str(free_port()),
        WORKBENCH_ROUTER_PORT=str(free_port()),
        WORKBENCH_DASHBOARD_PORT=str(free_port()),
        WORKBENCH_ALLOWED_ROOTS=str(home.parent),
        COLUMNS="200",
    )
    return env


def _run(label: str, url: str, bodies: list[bytes], seconds: float, plane_pid: int | None) -> dict[str, Any]:
    before = process_cpu(plane_pid) if plane_pid else 0.0
    result: LoadResult = run_wrk(url, bodies[0], concurrency=CONCURRENCY, seconds=seconds, bodies=bodies)
    cpu = (process_cpu(plane_pid) - before) if plane_pid else None
    row = {
        "label": label,
        "rps": round(result.rps, 1),
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "errors": result.errors,
        "control_plane_cpu_s_per_s": round(cpu / result.seconds, 3)
        if cpu is not None and result.seconds
        else None,
    }
    print(row, flush=True)
    return row


def _renice(pid: int, current: int, wanted: int) -> list[int]:
    """Set the threads of ``pid`` at niceness ``current`` to ``wanted`` (the control plane's lowered
    monitoring threads, found by their niceness: Python does not name OS threads); returns those changed.
    Raising a priority needs root or CAP_SYS_NICE: without it nothing changes."""
    changed = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        thread = int(task.name)
        try:
            if os.getpriority(os.PRIO_PROCESS, thread) == current:
                os.setpriority(os.PRIO_PROCESS, thread, wanted)
                changed.append(thread)
        except OSError:
            continue
    return changed


def _put_back(threads: list[int], nice: int) -> None:
    for thread in threads:
        try:
            os.setpriority(os.PRIO_PROCESS, thread, nice)
        except OSError:
            continue  # the thread has ended


def _drop_monitor(client: Client) -> None:
    for rule in client.alert_rules():
        client.delete_alert_rule(rule.spec.name)
    for monitor in client.monitors():
        client.delete_monitor(monitor.spec.name)


def run(seconds: float, rounds: int, demo_args: list[str]) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-demo-world-"))
    home = root / "home"
    env = _env(home)
    url = f"http://127.0.0.1:{env['WORKBENCH_API_PORT']}"
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "workbench", "demo", "--no-serve", *demo_args], env=env, check=True, cwd=root
    )
    built_s = time.perf_counter() - started
    plane = ControlPlaneProcess(url, env, home / "logs" / "bench.log").start()
    runs: list[dict[str, Any]] = []
    mlflow = None
    try:
        assert plane.process is not None
        with Client(url, settings=None, token=(home / "api-token").read_text().strip()) as client:
            status = client.endpoint_status(DEMO_ENDPOINT)
            target = f"{status['router_url']}/endpoints/{DEMO_ENDPOINT}/invocations"
            champion = client.resolve(f"models:/{DEMO_MODEL}@champion")
            model_dir = Path(champion.source.removeprefix("file://"))
            # The demo's customers in turn, one row a request: traffic like the reference, so the monitor
            # watches a healthy endpoint (one row sent again and again is drift, and its alert runs a runbook).
            frame = demo_data(rows=8000).holdout[list(FEATURES)]
            bodies = [
                orjson.dumps({"dataframe_split": {"columns": list(FEATURES), "data": [row]}})
                for row in frame.to_numpy().tolist()
            ]
            mlflow, mlflow_url = start_mlflow(model_dir, root / "mlflow.log")
            for label, url_ in (("warm-up router", target), ("warm-up mlflow", f"{mlflow_url}/invocations")):
                _run(label, url_, bodies, 2, None)
            for _round in range(rounds):
                runs.append(
                    {**_run("router, monitored", target, bodies, seconds, plane.process.pid), "round": _round}
                )
                raised = _renice(plane.process.pid, BACKGROUND_NICE, 0)
                if raised:
                    runs.append(
                        {
                            **_run(USUAL_PRIORITY, target, bodies, seconds, plane.process.pid),
                            "round": _round,
                        }
                    )
                    _put_back(raised, BACKGROUND_NICE)
                _drop_monitor(client)
                time.sleep(2)
                runs.append(
                    {
                        **_run("router, no monitor", target, bodies, seconds, plane.process.pid),
                        "round": _round,
                    }
                )
                ensure_demo_monitoring(client)
                time.sleep(5)  # the monitor's first look reads its window back
                runs.append(
                    {
                        **_run("mlflow models serve", f"{mlflow_url}/invocations", bodies, seconds, None),
                        "round": _round,
                    }
                )
            served = {
                "model": champion.uri,
                "flavors": champion.flavors,
                "optimization": champion.optimization and champion.optimization.get("method"),
            }
    finally:
        if mlflow is not None:
            stop(mlflow)
        plane.stop()
        shutil.rmtree(root, ignore_errors=True)
    return {
        "runs": runs,
        "served": served,
        "built_s": round(built_s, 1),
        "seconds": seconds,
        "rounds": rounds,
    }


USUAL_PRIORITY = "router, monitored, monitoring at nice 0"
MONITORED, NO_MONITOR = "router, monitored", "router, no monitor"


def _median(runs: list[dict[str, Any]], label: str, key: str) -> float:
    return float(median(r[key] for r in runs if r["label"] == label))


def markdown(result: dict[str, Any], load: tuple[float, float]) -> str:
    runs = result["runs"]
    labels: tuple[str, ...] = ("router, monitored", "router, no monitor", "mlflow models serve")
    if any(r["label"] == USUAL_PRIORITY for r in runs):
        labels = (labels[0], USUAL_PRIORITY, *labels[1:])
    mlflow_rps = _median(runs, "mlflow models serve", "rps")
    monitored, bare = _median(runs, MONITORED, "rps"), _median(runs, NO_MONITOR, "rps")
    cost = [
        1 - r["rps"] / next(b["rps"] for b in runs if b["label"] == NO_MONITOR and b["round"] == r["round"])
        for r in runs
        if r["label"] == MONITORED
    ]
    lines = [
        SECTION,
        "",
        f"Command: `python benchmarks/demo_world.py --seconds {result['seconds']:g} --rounds {result['rounds']} "
        f"--write-docs` (in `make bench-serving`), {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, load "
        f"average {load[0]:.2f} before and {load[1]:.2f} after. The world: `workbench demo` ({result['built_s']:.0f} s "
        f"to build), then `workbench up`; the endpoint serves {result['served']['model']} "
        f"({', '.join(result['served']['flavors'])}"
        + (f", the {result['served']['optimization']} variant" if result["served"]["optimization"] else "")
        + "). wrk, one thread, one-row MLflow JSON (2,000 different rows in turn), "
        f"c={CONCURRENCY}, {result['seconds']:g} s a run, "
        f"{result['rounds']} paired rounds (medians).",
        "",
        "| target | req/s | p50 ms | p99 ms | errors | control plane CPU (s/s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label in labels:
        cpu = [
            r["control_plane_cpu_s_per_s"]
            for r in runs
            if r["label"] == label and r["control_plane_cpu_s_per_s"] is not None
        ]
        lines.append(
            f"| {label} | {_median(runs, label, 'rps'):,.0f} | {_median(runs, label, 'p50_ms'):.2f} | "
            f"{_median(runs, label, 'p99_ms'):.2f} | {sum(r['errors'] for r in runs if r['label'] == label)} | "
            + (f"{median(cpu):.2f}" if cpu else "-")
            + " |"
        )
    lines += [
        "",
        f"Monitored router against `mlflow models serve`: **{monitored / mlflow_rps:.0f}x** (target 40x) with p99 "
        f"{_median(runs, labels[0], 'p99_ms'):.1f} ms (target 25 ms). What the monitor costs serving: "
        f"**{100 * median(cost):.1f} %** of the throughput (median of the rounds' paired losses: "
        + ", ".join(f"{100 * c:.1f} %" for c in cost)
        + f"; target at most 10 %); bare router {bare:,.0f} req/s.",
    ]
    if USUAL_PRIORITY in labels:
        lines += [
            "",
            f"The control plane's monitoring threads run at nice {BACKGROUND_NICE} (`WORKBENCH_BACKGROUND_NICE`); "
            f"reniced to 0 for one run a round (`{USUAL_PRIORITY}`), the monitored router did "
            f"{_median(runs, USUAL_PRIORITY, 'rps'):,.0f} req/s with p99 "
            f"{_median(runs, USUAL_PRIORITY, 'p99_ms'):.1f} ms, "
            f"against {monitored:,.0f} req/s and p99 {_median(runs, labels[0], 'p99_ms'):.1f} ms at nice "
            f"{BACKGROUND_NICE}.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--demo-args", default="", help="extra `workbench demo` options, e.g. --no-optimize")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    before = os.getloadavg()[0]
    result = run(args.seconds, args.rounds, args.demo_args.split())
    section = markdown(result, (before, os.getloadavg()[0]))
    print(section)
    (Path(__file__).resolve().parent / "results" / "demo_world.json").write_bytes(
        orjson.dumps(result, option=orjson.OPT_INDENT_2)
    )
    if args.write_docs:
        replace_section(SECTION, section)


if __name__ == "__main__":
    main()
