"""Replica starts as a user sees them: a deploy's wall time, with replicas forked by the fork server
against fresh interpreters, in one run.

    .venv/bin/python benchmarks/replica_start.py               # ~2 minutes; prints a table
    .venv/bin/python benchmarks/replica_start.py --write-docs  # also updates docs/benchmarks.md

For each mode, a real ``workbench up`` (local backend) on free ports, with ``WORKBENCH_REPLICA_FORKSERVER``
on or off, two registered versions of the demo's MLP, and ``--samples`` deploys of one endpoint that
alternate between them: each deploy starts a replica of the other version, waits for it to be ready
(model loaded and warmed up), routes to it and retires the old one. Per deploy: the ``deploy`` call's
wall time, and the new replica's CPU time and unique memory (USS: what it does not share) right after.
The first deploy of the forked mode also starts the fork server; it is reported on its own row.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from _docs import replace_section

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests._servers import plane_env  # noqa: E402
from workbench.client import Client  # noqa: E402
from workbench.demo.dataset import FEATURES  # noqa: E402
from workbench.demo.training import train_version  # noqa: E402
from workbench.demo.world import demo_data  # noqa: E402
from workbench.launcher import ControlPlaneProcess, free_port  # noqa: E402
from workbench.registry.packaging import save_model  # noqa: E402

SECTION = "## Replica starts: forked by the fork server against fresh interpreters"
COMMAND = ".venv/bin/python benchmarks/replica_start.py --write-docs"
MODES = (("fresh interpreter", "0"), ("forked", "1"))


def _replica(client: Client, endpoint: str) -> dict[str, Any]:
    (replica,) = [r for r in client.endpoint_status(endpoint)["replicas"] if r["state"] == "ready"]
    return replica


def _measure(client: Client, endpoint: str, version: int) -> tuple[float, float, float]:
    started = time.perf_counter()
    client.deploy(endpoint, f"models:/churn/{version}", reason="benchmark")
    wall = (time.perf_counter() - started) * 1000
    process = psutil.Process(_replica(client, endpoint)["pid"])
    cpu = process.cpu_times()
    return wall, (cpu.user + cpu.system) * 1000, process.memory_full_info().uss / 2**20


def run(samples: int) -> list[dict[str, Any]]:
    base = Path(tempfile.mkdtemp(prefix="wb-replica-start-"))
    data = demo_data(rows=3000)
    model_dirs = []
    for number in (1, 2):
        path = base / f"model-{number}"
        trained = train_version(number, data.train, data.holdout, seed=3)
        save_model(trained.module, path, input_example=data.holdout[list(FEATURES)].head(2))
        model_dirs.append(path)
    results = []
    for mode, flag in MODES:
        home = base / f"home-{flag}"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = plane_env(
            home, port, free_port(), WORKBENCH_ROUTER_GRPC_PORT="off", WORKBENCH_REPLICA_FORKSERVER=flag
        )
        with ControlPlaneProcess(url, env, base / f"control-plane-{flag}.log"):
            token = (home / "api-token").read_text().strip()
            with Client(url, token=token) as client:
                for path in model_dirs:
                    client.register_from_path("churn", path)
                first = _measure(client, "churn", 1)
                rows = [_measure(client, "churn", 2 - (i % 2)) for i in range(samples)]
        results.append({"mode": mode, "first": first, "rows": rows})
    return results


def render(results: list[dict[str, Any]], samples: int) -> str:
    lines = [
        SECTION,
        "",
        f"Command: `{COMMAND}`. Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; a real `workbench up` per mode, "
        f"the demo's MLP, {samples} deploys that each start one replica, p50 (min-max).",
        "",
        "| replicas started as | deploy wall ms | replica CPU ms at ready | replica USS MB | first deploy wall ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for result in results:
        walls, cpus, usses = zip(*result["rows"], strict=True)

        def cell(values: tuple[float, ...], digits: int = 0) -> str:
            return (
                f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"
            )

        lines.append(
            f"| {result['mode']} | {cell(walls)} | {cell(cpus)} | {cell(usses, 1)} | {result['first'][0]:.0f} |"
        )
    lines += [
        "",
        "A deploy's wall time is the replica's start, load and warm-up, the route push and the old",
        "replica's retirement. USS is memory the replica does not share with any other process: a forked",
        "replica shares the interpreter, torch and pandas with the fork server and its siblings",
        "copy-on-write. The fork server itself (one per control plane, started with its first replica)",
        "holds those once, which is what the forked mode's first deploy pays.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    results = run(args.samples)
    section = render(results, args.samples)
    print(section)
    if args.write_docs:
        replace_section(SECTION, section)


if __name__ == "__main__":
    main()
