"""The Ray backend beside the local one and `mlflow models serve`: same models, same load, one run.

    .venv/bin/python benchmarks/ray_serving.py               # ~6 minutes; prints the tables
    .venv/bin/python benchmarks/ray_serving.py --write-docs  # also updates docs/benchmarks.md

For the demo churn MLP and the compute-heavy MLP of `serving.py`, with one-row requests from wrk (one
thread) at concurrency 1, 8 and 64:
  (a) `mlflow models serve --env-manager local` (MLflow JSON),
  (b) Workbench on the local backend, through its router (OIP v2 JSON),
  (c) Workbench on the ray backend, through Ray Serve's HTTP proxy and the ingress (OIP v2 JSON),
one replica each, the same batching options; and the resident memory of everything each one runs: MLflow's
process tree; the local router and replica; the whole local Ray cluster (GCS, raylet, Serve's controller
and proxy, the ingress and the replica), and its version replica alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _docs import replace_marked
from _load import require_wrk
from _procs import rss_mb
from serving import bodies, build_models, free_port, measure, start_mlflow, stop

from workbench.control_plane import ControlPlane, DeployRequest
from workbench.demo.dataset import FEATURES
from workbench.registry.types import PathSource, RegistrationRequest
from workbench.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
MAX_BATCH = {"mlp": 64, "heavy": 256}


def _plane(workdir: Path, backend: str) -> ControlPlane:
    settings = Settings.for_home(
        workdir / backend,
        allowed_roots=(workdir,),
        api_port=0,
        router_port=free_port(),
        serving_backend=backend,
    )
    plane = ControlPlane(settings)
    plane.start_serving()
    return plane


def _ray_replica_rss() -> float:
    """The version replica's own memory: Ray titles its process ``ray::ServeReplica:wb....``."""
    total = 0.0
    for process in psutil.process_iter(["cmdline"]):
        if any("ServeReplica:wb." in part for part in process.info["cmdline"] or ()):
            total += process.memory_info().rss / 2**20
    return total


def run(seconds: float) -> dict[str, Any]:
    require_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="wb-ray-bench-"))
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "seconds_per_run": seconds, "models": {}}
    try:
        model_dirs, holdout = build_models(workdir)
        first = holdout.iloc[0]
        row = {f: (int(first[f]) if holdout[f].dtype.kind == "i" else float(first[f])) for f in FEATURES}
        mlflow_body, oip_body = bodies(row)
        local, ray = _plane(workdir, "local"), _plane(workdir, "ray")
        try:
            for name, model_dir in model_dirs.items():
                print(f"\n== {name}", flush=True)
                entry: dict[str, Any] = {"runs": [], "rss_mb": {}}
                process, url = start_mlflow(model_dir, workdir / f"mlflow-{name}.log")
                try:
                    entry["runs"] += measure(
                        "mlflow models serve", f"{url}/invocations", mlflow_body, seconds
                    )
                    entry["rss_mb"]["mlflow models serve"] = rss_mb(process.pid)
                finally:
                    stop(process)
                for backend, plane in (("local", local), ("ray", ray)):
                    info = plane.register(
                        name, PathSource(path=str(model_dir)), RegistrationRequest(), actor="bench"
                    )
                    endpoint = f"bench-{name}"
                    started = time.monotonic()
                    plane.deploy(
                        endpoint,
                        DeployRequest(model=f"models:/{name}/{info.version}", max_batch_size=MAX_BATCH[name]),
                        actor="bench",
                    )
                    entry.setdefault("deploy_s", {})[backend] = round(time.monotonic() - started, 1)
                    router = plane.endpoint_status(endpoint)["router_url"]
                    entry["runs"] += measure(
                        f"workbench {backend} backend (oip)",
                        f"{router}/v2/models/{endpoint}/infer",
                        oip_body,
                        seconds,
                    )
                    status = plane.serving.status()
                    if backend == "local":
                        (replica,) = [r for r in status["replicas"] if r["endpoint"] == endpoint]
                        entry["rss_mb"]["local: router"] = rss_mb(status["router"]["pid"])
                        entry["rss_mb"]["local: replica"] = rss_mb(replica["pid"])
                    else:
                        cluster_pid = plane.serving._cluster.pid  # type: ignore[attr-defined]
                        entry["rss_mb"]["ray: whole cluster"] = rss_mb(cluster_pid)
                        entry["rss_mb"]["ray: version replica"] = _ray_replica_rss()
                    plane.delete_endpoint(endpoint, actor="bench")
                results["models"][name] = entry
            results["log_hop"] = log_hop()
        finally:
            ray.close()
            local.close()
        results["ray_alone"] = ray_alone(seconds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def log_hop(lines: int = 5000) -> dict[str, float]:
    """A replica's own log writer against a collector actor (``_log_collector.py``), on this cluster."""
    from _log_collector import in_the_replica, through_a_collector

    own = min(in_the_replica(lines) for _ in range(3))
    caller, actor = min((through_a_collector(lines) for _ in range(3)), key=sum)
    print(f"  log line: own writer {own:.1f} µs CPU; collector {caller:.1f} µs caller + {actor:.1f} µs actor")
    return {"own_writer_us": own, "collector_caller_us": caller, "collector_actor_us": actor}


def ray_alone(seconds: float) -> list[dict[str, Any]]:
    """Ray Serve without Workbench (``_ray_baseline.py``, in a child process with its own cluster)."""
    env = {**os.environ, "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("_ray_baseline.py")), str(seconds), str(free_port())],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    runs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    for run in runs:
        print(
            f"  {run['target']:<36} c={run['concurrency']:<3} {run['rps']:>8.0f} req/s  p50 {run['p50_ms']:7.2f} ms"
        )
    if done.returncode != 0:
        print(done.stderr[-2000:])
    return runs


def to_markdown(results: dict[str, Any]) -> str:
    lines = []
    for name, entry in results["models"].items():
        lines += [
            f"**{name}**, one-row requests, {results['seconds_per_run']:g} s a run "
            f"(deploy took {entry['deploy_s']['local']} s locally, {entry['deploy_s']['ray']} s on Ray):",
            "",
            "| target | c | req/s | p50 ms | p99 ms | errors |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for run in entry["runs"]:
            lines.append(
                f"| {run['target']} | {run['concurrency']} | {run['rps']:,.0f} | {run['p50_ms']:.2f} | "
                f"{run['p99_ms']:.2f} | {run['errors']} |"
            )
        lines += ["", "| memory | RSS MB |", "|---|---:|"]
        lines += [f"| {what} | {mb:,.0f} |" for what, mb in entry["rss_mb"].items()]
        lines.append("")
    hop = results.get("log_hop")
    if hop:
        lines += [
            "**The prediction log's hop**: CPU per batch line (16 requests with inputs and outputs), in every "
            "process involved:",
            "",
            "| who writes | on the replica's side µs | elsewhere µs | total µs |",
            "|---|---:|---:|---:|",
            f"| the replica, its own segments | {hop['own_writer_us']:.1f} | 0 | {hop['own_writer_us']:.1f} |",
            f"| a collector actor (fire-and-forget calls) | {hop['collector_caller_us']:.1f} | "
            f"{hop['collector_actor_us']:.1f} | {hop['collector_caller_us'] + hop['collector_actor_us']:.1f} |",
            "",
        ]
    alone = results.get("ray_alone") or []
    if alone:
        lines += [
            "**Ray Serve alone** (no Workbench code, no model: a constant answer; its own cluster, throughput "
            "mode), the floor under the ray backend's figures:",
            "",
            "| target | c | req/s | p50 ms | p99 ms | errors |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for run in alone:
            lines.append(
                f"| {run['target']} | {run['concurrency']} | {run['rps']:,.0f} | {run['p50_ms']:.2f} | "
                f"{run['p99_ms']:.2f} | {run['errors']} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_docs(markdown: str, command: str) -> None:
    replace_marked("ray-serving", "The Ray backend beside the local one", markdown, command)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "ray_serving.json")
    args = parser.parse_args()
    results = run(args.seconds)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    markdown = to_markdown(results)
    print("\n" + markdown)
    if args.write_docs:
        write_docs(markdown, "make bench-serving (benchmarks/ray_serving.py)")


if __name__ == "__main__":
    main()
