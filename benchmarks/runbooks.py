"""Runbook benchmark: what a run costs on top of papermill, and how long the retraining loop takes.

    .venv/bin/python benchmarks/runbooks.py               # ~4 minutes; prints tables
    .venv/bin/python benchmarks/runbooks.py --write-docs  # also updates docs/benchmarks.md

One run, on real processes (``workbench up`` as a child process, its router and replicas):

1. Per-run cost. A trivial runbook (a parameters cell, a validate cell that imports the runbook helpers
   and connects, a summary) executed (a) by papermill in this process on the same ``workbench`` kernel,
   the floor any papermill-based engine pays, and (b) through the control plane: ``POST`` the run, wait
   for its record to end (child process, kernel, HTML rendering, records, audit). Median of 5 each.
2. The retraining loop, end to end with no human step, ``--loops`` times on fresh control planes:
   concept drift in live traffic (250 req/s, labels fed back), the AUC-drop alert, retrain-and-canary
   (retrain, evaluate against the champion, register, canary 50 % for 5 s), promotion. Each stage's time
   is read from the audit log, measured from the moment the drifted traffic started.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _docs import replace_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Runbooks (issue 6)"
RUNS = 5
RULE = "auc-drop"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Plane:
    home: Path
    url: str
    router: str
    client: Any
    extra: Path


@contextmanager
def control_plane(root: Path) -> Iterator[Plane]:
    from workbench.client import Client
    from workbench.demo.dataset import FEATURES, TARGET, generate_churn, split_frame
    from workbench.demo.training import train_version
    from workbench.launcher import ControlPlaneProcess
    from workbench.settings import Settings

    home = root / "home"
    extra = root / "runbooks"
    extra.mkdir(parents=True)
    api_port, router_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(
        WORKBENCH_HOME=str(home),
        WORKBENCH_API_PORT=str(api_port),
        WORKBENCH_ROUTER_PORT=str(router_port),
        WORKBENCH_RUNBOOKS_DIRS=str(extra),
    )
    url = f"http://127.0.0.1:{api_port}"
    data = generate_churn(4000, seed=11)
    train, holdout = split_frame(data, holdout_fraction=0.25, seed=11)
    with (
        ControlPlaneProcess(url, env, home / "logs" / "cp.log"),
        Client(url, settings=Settings.for_home(home, api_url=url), actor="bench") as client,
    ):
        trained = train_version(1, train, holdout, seed=11)
        client.register_model(
            "churn",
            trained.module,
            input_example=holdout[list(FEATURES)].head(2),
            reference_data=holdout,
            reference_target=TARGET,
            aliases=["champion"],
        )
        client.deploy("churn", "models:/churn@champion")
        yield Plane(home, url, f"http://127.0.0.1:{router_port}", client, extra)


def write_noop(path: Path) -> Path:
    import nbformat

    notebook = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"name": "workbench", "display_name": "Workbench", "language": "python"},
            "language_info": {"name": "python"},
        }
    )
    parameters = nbformat.v4.new_code_cell('endpoint = "churn"  # endpoint')
    parameters.metadata["tags"] = ["parameters"]
    validate = nbformat.v4.new_code_cell(
        "from workbench.runbooks.notebook import connect, require, summarise\n"
        'require(endpoint, "endpoint")\nclient = connect()'
    )
    validate.metadata["tags"] = ["validate"]
    done = nbformat.v4.new_code_cell('summarise("ok", endpoint=endpoint)')
    notebook.cells = [nbformat.v4.new_markdown_cell("# noop\n\nNothing."), parameters, validate, done]
    nbformat.write(notebook, path)
    return path


def bench_per_run(plane: Plane, workdir: Path) -> dict[str, Any]:
    import papermill

    from workbench.runbooks.kernel import ensure_kernelspec, kernel_environment

    noop = write_noop(plane.extra / "noop.ipynb")
    kernel_root = workdir / "jupyter"
    ensure_kernelspec(kernel_root)
    env = kernel_environment(kernel_root)
    env.update(WORKBENCH_URL=plane.url, WORKBENCH_HOME=str(plane.home))
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    raw: list[float] = []
    try:
        for index in range(RUNS):
            started = time.perf_counter()
            papermill.execute_notebook(
                str(noop), str(workdir / f"noop-{index}.ipynb"), kernel_name="workbench", progress_bar=False
            )
            raw.append(time.perf_counter() - started)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    engine: list[float] = []
    recorded: list[float] = []
    for _ in range(RUNS):
        started = time.perf_counter()
        run = plane.client.run_runbook("noop", wait_s=120)
        engine.append(time.perf_counter() - started)
        assert run.status.value == "succeeded", run.error
        recorded.append(run.duration_s or 0.0)
    return {"raw": raw, "engine": engine, "recorded": recorded}


def bench_loop(plane: Plane) -> dict[str, float]:
    from workbench.demo.dataset import generate_churn
    from workbench.demo.traffic import DemoTraffic

    client = plane.client
    client.create_monitor({"name": "churn", "endpoint": "churn", "window_s": 15, "every_s": 1})
    client.create_alert_rule(
        {
            "name": RULE,
            "monitor": "churn",
            "series": "auc_drop",
            "op": ">",
            "threshold": 0.05,
            "for_s": 3,
            "cooldown_s": 3600,
            "actions": [
                {
                    "kind": "runbook",
                    "runbook": "retrain-and-canary",
                    "parameters": {
                        "endpoint": "churn",
                        "model": "churn",
                        "window_s": 60,
                        "min_rows": 2000,
                        "data_wait_s": 90,
                        "canary_steps": "50",
                        "step_duration_s": 5,
                        "min_samples": 100,
                    },
                }
            ],
        }
    )
    drifted = generate_churn(20_000, seed=21, concept_drift=1.0)
    began = time.time()
    run = None
    with DemoTraffic(plane.router, "churn", drifted, rate=250, workers=2, labels=client) as traffic:
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline and run is None:
            runs = client.runbook_runs(runbook="retrain-and-canary")
            if runs:
                run = client.wait_run(runs[0].id, timeout_s=max(1.0, deadline - time.monotonic()))
            time.sleep(0.5)
    if run is None or run.status.value != "succeeded":
        raise RuntimeError(f"the loop did not complete: {run}")
    story = client.audit(limit=1000, oldest_first=True)
    actor = f"runbook:retrain-and-canary/{run.id}"

    def at(predicate: Any) -> float:
        return next(e.at.timestamp() for e in story if predicate(e)) - began

    summary = run.summary or {}
    return {
        "fired": at(lambda e: e.action == "alert.firing"),
        "run_started": at(lambda e: e.action == "runbook.run.start"),
        "registered": at(lambda e: e.action == "model.register" and e.actor == actor),
        "canary_started": at(lambda e: e.action == "rollout.start" and e.actor == actor),
        "promoted": at(lambda e: e.action == "rollout.promote"),
        "run_ended": at(lambda e: e.action == "runbook.run.succeeded"),
        "champion_auc": float(summary.get("champion_metric", float("nan"))),
        "candidate_auc": float(summary.get("candidate_metric", float("nan"))),
        "train_rows": float(summary.get("train_rows", 0)),
        "failed_requests": float(traffic.failed),
        "sent": float(traffic.sent),
    }


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"


def markdown(per_run: dict[str, Any], loops: list[dict[str, float]], took: float, load: float) -> str:
    import papermill

    raw, engine = statistics.median(per_run["raw"]), statistics.median(per_run["engine"])
    lines = [
        SECTION,
        "",
        "`.venv/bin/python benchmarks/runbooks.py --write-docs` runs, on real processes: a trivial runbook "
        f"{RUNS} times by papermill in-process and {RUNS} times through the control plane, then the "
        f"retraining loop {len(loops)} time(s) on fresh control planes.",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on the development machine ({os.cpu_count()} cores, Python "
        f"{platform.python_version()}, papermill {papermill.__version__}), load average {load:.1f} at the "
        f"start; whole run {took:.0f} s.",
        "",
        "### What a run costs",
        "",
        "| how | wall time per run |",
        "|---|---|",
        f"| papermill in-process, same kernel (the floor) | {_ms(per_run['raw'])} |",
        f"| through the control plane: POST, child, kernel, HTML, records, audit | {_ms(per_run['engine'])} |",
        f"| the run's own recorded duration | {_ms(per_run['recorded'])} |",
        "",
        f"The engine adds {engine - raw:.2f} s per run to papermill ({100 * (engine / raw - 1):.0f} %): a "
        "Python process for the child (which imports papermill), the HTML rendering and two transactions. "
        "Kernel start and the imports of the runbook's first cell are in both.",
        "",
        "### The retraining loop",
        "",
        "Seconds from the start of the concept-drifted traffic (each stage from the audit log):",
        "",
        "| stage | " + " | ".join(f"run {i + 1}" for i in range(len(loops))) + " |",
        "|---|" + "---:|" * len(loops),
    ]
    for key, label in (
        ("fired", "AUC-drop alert fires"),
        ("run_started", "retrain-and-canary starts"),
        ("registered", "new version registered"),
        ("canary_started", "canary starts"),
        ("promoted", "canary promotes it"),
        ("run_ended", "run recorded succeeded"),
    ):
        lines.append(f"| {label} | " + " | ".join(f"{loop[key]:.1f}" for loop in loops) + " |")
    lines += [
        "| holdout AUC: champion → candidate | "
        + " | ".join(f"{loop['champion_auc']:.3f} → {loop['candidate_auc']:.3f}" for loop in loops)
        + " |",
        "| training rows | " + " | ".join(f"{loop['train_rows']:.0f}" for loop in loops) + " |",
        "| requests failed / sent | "
        + " | ".join(f"{loop['failed_requests']:.0f} / {loop['sent']:.0f}" for loop in loops)
        + " |",
        "",
        "The alert fires as soon as the labels in its 15 s window show the drop and the drop has held 3 s. "
        "The run then waits for 2,000 labelled rows (`data_wait_s`), trains (well under a second for the "
        "demo model), scores the holdout through the router and in the kernel, and registers. The canary's "
        "time is its analysis reaching PASS on errors and latency at 50 % (at least 5 s at the step); the "
        "run notices within its 1 s poll and renders its notebook.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument(
        "--loops", type=int, default=2, help="retraining loops, each on a fresh control plane"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    load = os.getloadavg()[0]
    loops: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="wb-bench-runbooks-") as tmp:
        workdir = Path(tmp)
        print("per-run cost ...", file=sys.stderr)
        with control_plane(workdir / "plane-0") as plane:
            per_run = bench_per_run(plane, workdir)
        for index in range(args.loops):
            print(f"retraining loop {index + 1} ...", file=sys.stderr)
            with control_plane(workdir / f"plane-{index + 1}") as plane:
                loops.append(bench_loop(plane))
            shutil.rmtree(workdir / f"plane-{index + 1}", ignore_errors=True)
    section = markdown(per_run, loops, time.perf_counter() - started, load)
    print(section)
    if args.write_docs:
        replace_section(SECTION, section)
        print(f"updated {ROOT / 'docs' / 'benchmarks.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
