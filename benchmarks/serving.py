"""Serving benchmark: Workbench vs `mlflow models serve` vs raw in-process inference, side by side.

    .venv/bin/python benchmarks/serving.py            # ~6 minutes; prints a table
    .venv/bin/python benchmarks/serving.py --write-docs  # also updates docs/benchmarks.md

For two registered models (the demo churn MLP, and a compute-heavy ~10M-parameter MLP on the same
inputs), one run measures at concurrency 1, 8 and 64, with one-row requests:
  (a) raw in-process forward at batch 1 and at the best batch size (the ceiling),
  (b) `mlflow models serve --env-manager local` on the same model version,
  (c) a Workbench replica directly (MLflow JSON and OIP v2),
  (d) Workbench through the router (MLflow JSON and OIP v2),
  (e) OIP v2 with the binary tensor data extension, as ``tritonclient`` sends it by default (inputs and
      outputs as raw bytes), against the same request in JSON, at concurrency 1 and 64; for the MLP also
      with 256 rows a request, where parsing JSON numbers costs more,
with wrk (one thread) as the load generator on the same machine, and the RSS of every server.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _cpu import children_cpu, own_cpu, process_cpu, thread_cpu
from _docs import replace_marked
from _load import LoadResult, require_wrk, run_wrk
from _procs import rss_mb

from workbench.control_plane import ControlPlane, DeployRequest
from workbench.demo.dataset import FEATURES, generate_churn, split_frame
from workbench.demo.training import ChurnNet, train_version
from workbench.registry.packaging import save_model
from workbench.registry.types import PathSource, RegistrationRequest
from workbench.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = (1, 8, 64)
BINARY_CONCURRENCY = (1, 64)
HEAVY_HIDDEN = (2560, 2560, 1024)
MULTI_ROWS = 16
BINARY_ROWS = 256


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ models
def build_models(workdir: Path) -> tuple[dict[str, Path], Any]:
    data = generate_churn(8000, seed=11)
    train, holdout = split_frame(data, holdout_fraction=0.25, seed=11)
    example = holdout[list(FEATURES)].head(2)
    mlp = train_version(1, train, holdout, seed=11).module
    torch.manual_seed(0)
    heavy = ChurnNet(hidden_sizes=HEAVY_HIDDEN)
    heavy.fit_normalization(torch.from_numpy(train[list(FEATURES)].to_numpy(dtype=np.float32)))
    heavy.eval()
    dirs = {}
    for name, module in (("mlp", mlp), ("heavy", heavy)):
        path = workdir / "models" / name
        save_model(module, path, input_example=example)
        dirs[name] = path
    return dirs, holdout


def raw_inference(
    model_dir: Path, row: np.ndarray[Any, Any], seconds: float, threads: int | None = None
) -> dict[str, Any]:
    """The ceiling: the same module, in-process, no serving at all (with ``threads`` torch threads)."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _raw_inference(model_dir, row, seconds)
    finally:
        torch.set_num_threads(previous)


def _raw_inference(model_dir: Path, row: np.ndarray[Any, Any], seconds: float) -> dict[str, Any]:
    module = torch.load(model_dir / "data" / "model.pth", map_location="cpu", weights_only=False).eval()
    x1 = torch.from_numpy(row)
    with torch.inference_mode():
        for _ in range(50):
            module(x1)
        latencies = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            module(x1)
            latencies.append(time.perf_counter() - started)
        per_batch = {}
        for batch in (1, 8, 32, 64, 128, 256, 512, 1024):
            xb = x1.repeat(batch, 1)
            module(xb)
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds / 4:
                module(xb)
                count += 1
            per_batch[batch] = count * batch / (time.perf_counter() - started)
    best = max(per_batch, key=lambda b: per_batch[b])
    ms = sorted(x * 1000 for x in latencies)
    return {
        "batch1_p50_ms": statistics.median(ms),
        "batch1_p99_ms": ms[int(len(ms) * 0.99)],
        "batch1_rows_per_s": len(ms) / sum(latencies),
        "best_batch": best,
        "best_rows_per_s": per_batch[best],
        "rows_per_s_by_batch": per_batch,
        "parameters": sum(p.numel() for p in module.parameters()),
        "threads": torch.get_num_threads(),
    }


# ------------------------------------------------------------- profile
def _replica_counters(port: int) -> dict[str, float]:
    """Batch and forward-pass totals from a replica's /metrics (one endpoint, one version)."""
    wanted = {
        "workbench_replica_batch_size_rows_sum": "rows",
        "workbench_replica_batch_size_rows_count": "batches",
        "workbench_replica_inference_seconds_sum": "inference_s",
    }
    found = dict.fromkeys(wanted.values(), 0.0)
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in wanted:
            found[wanted[name]] += float(line.rsplit(" ", 1)[1])
    return found


def where_the_time_goes(
    url: str, body: bytes, seconds: float, *, replica_pid: int, replica_port: int, router_pid: int
) -> dict[str, Any]:
    """One wrk run at concurrency 64 with the CPU each part of the path used, per request, from /proc.

    The replica's main thread runs its event loop (HTTP, decoding, batching, answering); its other threads
    are the forward pass (the inference thread and torch's workers) and the prediction log's writer. The
    inference thread's busy share comes from the replica's own forward-pass timings."""
    before_threads, before_router = thread_cpu(replica_pid), process_cpu(router_pid)
    before_wrk, before_self, before_counters = children_cpu(), own_cpu(), _replica_counters(replica_port)
    result = run_wrk(url, body, concurrency=64, seconds=seconds)
    after_threads, after_router = thread_cpu(replica_pid), process_cpu(router_pid)
    after_wrk, after_self, after_counters = children_cpu(), own_cpu(), _replica_counters(replica_port)
    elapsed = result.seconds
    main = after_threads.get(replica_pid, 0.0) - before_threads.get(replica_pid, 0.0)
    others = sum(v - before_threads.get(t, 0.0) for t, v in after_threads.items() if t != replica_pid)
    counters = {k: after_counters[k] - before_counters[k] for k in after_counters}
    cpu = {
        "wrk (load generator)": after_wrk - before_wrk,
        "router": after_router - before_router,
        "replica event loop (HTTP, decode, batch, answer)": main,
        "replica forward pass and log writer threads": others,
        "control plane (monitoring the endpoint)": after_self - before_self,
    }
    return {
        "rps": result.rps,
        "errors": result.errors,
        "p50_ms": result.p50_ms,
        "p95_ms": result.p95_ms,
        "p99_ms": result.p99_ms,
        "seconds": elapsed,
        "cpu_per_s": {k: v / elapsed for k, v in cpu.items()},
        "cpu_us_per_request": {k: 1e6 * v / max(1, result.requests) for k, v in cpu.items()},
        "mean_batch_rows": counters["rows"] / counters["batches"] if counters["batches"] else 0.0,
        "inference_busy": counters["inference_s"] / elapsed,
        "inference_us_per_row": 1e6 * counters["inference_s"] / counters["rows"] if counters["rows"] else 0.0,
    }


# ----------------------------------------------------------------- servers
def start_mlflow(model_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}"}
    process = subprocess.Popen(
        [
            str(venv_bin / "mlflow"),
            "models",
            "serve",
            "-m",
            str(model_dir),
            "--env-manager",
            "local",
            "-p",
            str(port),
            "--host",
            "127.0.0.1",
        ],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ping", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise SystemExit(f"mlflow models serve exited; see {log}")
        time.sleep(0.25)
    raise SystemExit("mlflow models serve did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def measure(
    label: str,
    url: str,
    body: bytes,
    seconds: float,
    levels: tuple[int, ...] = CONCURRENCY,
    rows_per_request: int = 1,
    headers: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    sent = {"Content-Type": "application/json", **(headers or {})}
    check = httpx.post(url, content=body, headers=sent, timeout=30)
    if check.status_code != 200:
        raise SystemExit(f"{label}: {url} answered {check.status_code}: {check.text[:300]}")
    rows = []
    for concurrency in levels:
        run_wrk(url, body, concurrency=concurrency, seconds=2, headers=headers)  # warm-up
        result: LoadResult = run_wrk(url, body, concurrency=concurrency, seconds=seconds, headers=headers)
        rows.append(
            {
                "target": label,
                **asdict(result),
                "rps": result.rps,
                "rows_per_s": result.rps * rows_per_request,
            }
        )
        print(
            f"  {label:<28} c={concurrency:<3} {result.rps:>8.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
            f"p95 {result.p95_ms:7.2f}  p99 {result.p99_ms:7.2f}  errors {result.errors}",
            flush=True,
        )
    return rows


# -------------------------------------------------------------------- main
def bodies(row: dict[str, Any], rows: int = 1) -> tuple[bytes, bytes]:
    """The same ``rows`` rows as MLflow ``dataframe_split`` and as OIP v2 (one input per column)."""
    mlflow_body = orjson.dumps(
        {"dataframe_split": {"columns": list(FEATURES), "data": [[row[f] for f in FEATURES]] * rows}}
    )
    oip = orjson.dumps(
        {
            "inputs": [
                {
                    "name": f,
                    "shape": [rows],
                    "datatype": "INT64" if isinstance(row[f], int) else "FP64",
                    "data": [row[f]] * rows,
                }
                for f in FEATURES
            ]
        }
    )
    return mlflow_body, oip


def binary_body(row: dict[str, Any], rows: int = 1) -> tuple[bytes, dict[str, str]]:
    """The OIP body of ``bodies`` with the binary tensor data extension, as tritonclient sends it by default.

    Each column's values follow the JSON header as little-endian bytes, and every output is asked for as
    binary data (``binary_data_output``); the headers say where the JSON ends.
    """
    inputs = []
    data = []
    for f in FEATURES:
        integer = isinstance(row[f], int)
        raw = np.full(rows, row[f], dtype="<i8" if integer else "<f8").tobytes()
        inputs.append(
            {
                "name": f,
                "shape": [rows],
                "datatype": "INT64" if integer else "FP64",
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        data.append(raw)
    head = orjson.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}})
    headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))}
    return head + b"".join(data), headers


def run(seconds: float) -> dict[str, Any]:
    require_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="wb-bench-"))
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
        "seconds_per_run": seconds,
        "models": {},
    }
    try:
        model_dirs, holdout = build_models(workdir)
        first = holdout.iloc[0]
        row = {f: (int(first[f]) if holdout[f].dtype.kind == "i" else float(first[f])) for f in FEATURES}
        matrix_row = np.asarray([[row[f] for f in FEATURES]], dtype=np.float32)
        mlflow_body, oip_body = bodies(row)
        binary, binary_headers = binary_body(row)
        settings = Settings.for_home(
            workdir / "home",
            allowed_roots=(workdir,),
            api_port=0,
            router_port=free_port(),
            serving_backend="local",
        )
        plane = ControlPlane(settings)
        plane.start_serving()
        try:
            for name, model_dir in model_dirs.items():
                print(f"\n== {name}", flush=True)
                info = plane.register(
                    name, PathSource(path=str(model_dir)), RegistrationRequest(), actor="bench"
                )
                entry: dict[str, Any] = {"raw": raw_inference(model_dir, matrix_row, seconds)}
                raw = entry["raw"]
                print(
                    f"  raw in-process: batch-1 p50 {raw['batch1_p50_ms']:.3f} ms, "
                    f"best batch {raw['best_batch']} → {raw['best_rows_per_s']:.0f} rows/s",
                    flush=True,
                )
                runs: list[dict[str, Any]] = []
                process, url = start_mlflow(model_dir, workdir / f"mlflow-{name}.log")
                try:
                    runs += measure("mlflow models serve", f"{url}/invocations", mlflow_body, seconds)
                    entry["rss_mb_mlflow"] = rss_mb(process.pid)
                finally:
                    stop(process)
                max_batch = 64 if name == "mlp" else 256
                plane.deploy(
                    f"bench-{name}",
                    DeployRequest(model=f"models:/{name}/{info.version}", max_batch_size=max_batch),
                    actor="bench",
                )
                status = plane.endpoint_status(f"bench-{name}")
                (replica,) = status["replicas"]
                replica_url = f"http://127.0.0.1:{replica['port']}"
                router_url = status["router_url"]
                runs += measure(
                    "workbench replica (mlflow json)", f"{replica_url}/invocations", mlflow_body, seconds
                )
                runs += measure(
                    "workbench replica (oip)",
                    f"{replica_url}/v2/models/bench-{name}/infer",
                    oip_body,
                    seconds,
                )
                runs += measure(
                    "workbench router (mlflow json)",
                    f"{router_url}/endpoints/bench-{name}/invocations",
                    mlflow_body,
                    seconds,
                )
                runs += measure(
                    "workbench router (oip)", f"{router_url}/v2/models/bench-{name}/infer", oip_body, seconds
                )
                for where, base in (("replica", replica_url), ("router", router_url)):
                    runs += measure(
                        f"workbench {where} (oip binary)",
                        f"{base}/v2/models/bench-{name}/infer",
                        binary,
                        seconds,
                        levels=BINARY_CONCURRENCY,
                        headers=binary_headers,
                    )
                if name == "mlp":
                    # Many rows a request: the JSON numbers to parse grow with the rows, the binary header
                    # does not.
                    _, oip_many = bodies(row, BINARY_ROWS)
                    binary_many, many_headers = binary_body(row, BINARY_ROWS)
                    url = f"{router_url}/v2/models/bench-{name}/infer"
                    for label, body, headers in (
                        (f"workbench router (oip, {BINARY_ROWS} rows/request)", oip_many, None),
                        (
                            f"workbench router (oip binary, {BINARY_ROWS} rows/request)",
                            binary_many,
                            many_headers,
                        ),
                    ):
                        runs += measure(
                            label,
                            url,
                            body,
                            seconds,
                            levels=BINARY_CONCURRENCY,
                            rows_per_request=BINARY_ROWS,
                            headers=headers,
                        )
                if name == "heavy":
                    # Clients that send several rows per request amortise the per-request cost (HTTP,
                    # JSON), leaving the CPU to the model: rows/s closer to what batching can give.
                    _, oip_multi = bodies(row, MULTI_ROWS)
                    runs += measure(
                        f"workbench router (oip, {MULTI_ROWS} rows/request)",
                        f"{router_url}/v2/models/bench-{name}/infer",
                        oip_multi,
                        seconds,
                        levels=(8, 64),
                        rows_per_request=MULTI_ROWS,
                    )
                entry["rss_mb_replica"] = rss_mb(replica["pid"])
                router_pid = plane.serving.status()["router"]["pid"]
                entry["rss_mb_router"] = rss_mb(router_pid)
                if name == "heavy":
                    entry["raw_one_thread"] = raw_inference(model_dir, matrix_row, seconds, threads=1)
                    runs += profile_heavy(plane, entry, f"models:/{name}/{info.version}", oip_body, seconds)
                entry["runs"] = runs
                results["models"][name] = entry
                plane.delete_endpoint(f"bench-{name}", actor="bench")
        finally:
            plane.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


#: The heavy model deployed for a machine whose other core serves the router and the load: one torch
#: thread (a second one waits at every layer for the core the router holds), batches of at most half the
#: clients (one batch computes while the other's answers and next requests travel), and the TorchScript
#: trace (the forward pass takes the GIL once, not once per layer, from the busy event loop).
SHARED_CORES = {"threads": 1, "max_batch_size": 32, "torchscript": True}
SHARED_LABEL = "workbench router (oip), torchscript, 1 thread, batches <= 32"


def profile_heavy(
    plane: ControlPlane, entry: dict[str, Any], model: str, body: bytes, seconds: float
) -> list[dict[str, Any]]:
    """Where the cores go at concurrency 64 with one-row requests, deployed as by default and for shared
    cores; returns the shared-cores deployment's run for the table."""
    profiles: dict[str, Any] = {}
    for label, options in (("default", {}), ("shared cores", SHARED_CORES)):
        request = DeployRequest.model_validate({"model": model, "max_batch_size": 256, **options})
        plane.deploy("bench-heavy", request, actor="bench")
        status = plane.endpoint_status("bench-heavy")
        (replica,) = status["replicas"]
        url = f"{status['router_url']}/v2/models/bench-heavy/infer"
        run_wrk(url, body, concurrency=64, seconds=2)  # warm-up
        profiles[label] = where_the_time_goes(
            url,
            body,
            seconds,
            replica_pid=replica["pid"],
            replica_port=replica["port"],
            router_pid=plane.serving.status()["router"]["pid"],
        )
        print(f"  profile ({label}): {profiles[label]}", flush=True)
    entry["profiles"] = profiles
    shared = profiles["shared cores"]
    return [
        {
            "target": SHARED_LABEL,
            "concurrency": 64,
            "requests": round(shared["rps"] * shared["seconds"]),
            "seconds": shared["seconds"],
            "errors": shared["errors"],
            "p50_ms": shared["p50_ms"],
            "p95_ms": shared["p95_ms"],
            "p99_ms": shared["p99_ms"],
            "rps": shared["rps"],
            "rows_per_s": shared["rps"],
        }
    ]


def _run(entry: dict[str, Any], target: str, concurrency: int) -> dict[str, Any]:
    return next(r for r in entry["runs"] if r["target"] == target and r["concurrency"] == concurrency)


def to_markdown(results: dict[str, Any]) -> str:
    lines = []
    for name, entry in results["models"].items():
        raw = entry["raw"]
        lines.append(f"### {name} ({raw['parameters']:,} parameters)\n")
        lines.append(
            f"Raw in-process forward: batch 1 p50 {raw['batch1_p50_ms']:.3f} ms "
            f"({raw['batch1_rows_per_s']:,.0f} rows/s); best batch {raw['best_batch']}: "
            f"{raw['best_rows_per_s']:,.0f} rows/s (the ceiling).\n"
        )
        lines.append(
            "| target | concurrency | req/s | rows/s | p50 ms | p95 ms | p99 ms | errors | vs mlflow |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for run in entry["runs"]:
            base = _run(entry, "mlflow models serve", run["concurrency"])["rps"]
            lines.append(
                f"| {run['target']} | {run['concurrency']} | {run['rps']:,.0f} | {run['rows_per_s']:,.0f} | "
                f"{run['p50_ms']:.2f} | "
                f"{run['p95_ms']:.2f} | {run['p99_ms']:.2f} | {run['errors']} | {run['rows_per_s'] / base:.1f}x |"
            )
        overhead = (
            _run(entry, "workbench router (oip)", 1)["p50_ms"]
            - _run(entry, "workbench replica (oip)", 1)["p50_ms"]
        )
        single = max(
            r["rows_per_s"]
            for r in entry["runs"]
            if r["target"] in ("workbench router (oip)", "workbench router (mlflow json)")
        )
        best = max(r["rows_per_s"] for r in entry["runs"] if r["target"].startswith("workbench router"))
        lines.append("")
        lines.append(
            f"Router overhead at p50, concurrency 1 (OIP): {overhead:.2f} ms. "
            f"Routed rows/s: {single:,.0f} with one-row requests ({single / raw['best_rows_per_s']:.0%} of the raw "
            f"batched ceiling), {best:,.0f} at best ({best / raw['best_rows_per_s']:.0%}). "
            f"RSS: router {entry['rss_mb_router']:.0f} MB, replica {entry['rss_mb_replica']:.0f} MB, "
            f"`mlflow models serve` {entry['rss_mb_mlflow']:.0f} MB (process tree).\n"
        )
        lines.extend(binary_comparison(entry))
        if "profiles" in entry:
            lines.extend(cores_table(entry))
    return "\n".join(lines)


def cores_table(entry: dict[str, Any]) -> list[str]:
    """Where the two cores go for one-row requests at concurrency 64, and the ceiling of what remains."""
    profiles = entry["profiles"]
    default, shared = profiles["default"], profiles["shared cores"]
    lines = [
        "Where the cores go, heavy model, one-row OIP requests through the router at concurrency 64 "
        "(CPU time from /proc during the run; forward-pass time from the replica's own metrics):\n",
        "| part | default: CPU s/s | default: µs/request | shared cores: CPU s/s | shared cores: µs/request |",
        "|---|---:|---:|---:|---:|",
    ]
    for part in default["cpu_per_s"]:
        lines.append(
            f"| {part} | {default['cpu_per_s'][part]:.2f} | {default['cpu_us_per_request'][part]:.0f} | "
            f"{shared['cpu_per_s'][part]:.2f} | {shared['cpu_us_per_request'][part]:.0f} |"
        )
    for label, key, fmt in (
        ("requests/s", "rps", "{:,.0f}"),
        ("p99 ms", "p99_ms", "{:.1f}"),
        ("mean rows per forward pass", "mean_batch_rows", "{:.1f}"),
        ("share of the time a forward pass runs", "inference_busy", "{:.0%}"),
        ("forward-pass µs per row", "inference_us_per_row", "{:.0f}"),
    ):
        lines.append(f"| {label} | {fmt.format(default[key])} | | {fmt.format(shared[key])} | |")
    one, two = entry["raw_one_thread"], entry["raw"]
    others = sum(
        v for k, v in shared["cpu_per_s"].items() if k != "replica forward pass and log writer threads"
    )
    remaining = max(0.0, (os.cpu_count() or 2) - others)
    if remaining <= 1:
        ceiling = remaining * one["best_rows_per_s"]
    else:
        ceiling = one["best_rows_per_s"] + (remaining - 1) * (two["best_rows_per_s"] - one["best_rows_per_s"])
    at_32 = one["rows_per_s_by_batch"].get(32) or one["rows_per_s_by_batch"].get("32", 0.0)
    lines += [
        "",
        f"Shared cores = {SHARED_CORES}. The load generator, the router, the replica's event loop and the "
        f"control plane used {others:.2f} of the {os.cpu_count()} cores in that run, leaving {remaining:.2f} for "
        f"the forward pass. Raw forward with one torch thread: {one['best_rows_per_s']:,.0f} rows/s at batch "
        f"{one['best_batch']}, {at_32:,.0f} at batch 32; with {two['threads']}: {two['best_rows_per_s']:,.0f}. "
        f"The ceiling for the cores that remain ({remaining:.2f}, interpolated between the one- and two-thread "
        f"figures): {ceiling:,.0f} rows/s; routed one-row requests reached {shared['rps']:,.0f} "
        f"(**{shared['rps'] / ceiling:.0%}** of it, {shared['rps'] / at_32:.0%} of one thread's rate at the "
        f"batch they form; {default['rps'] / two['best_rows_per_s']:.0%} of the two-thread ceiling as deployed by "
        "default).\n",
    ]
    return lines


BINARY_PAIRS = (
    ("replica, 1 row", "workbench replica (oip)", "workbench replica (oip binary)"),
    ("router, 1 row", "workbench router (oip)", "workbench router (oip binary)"),
    (
        f"router, {BINARY_ROWS} rows",
        f"workbench router (oip, {BINARY_ROWS} rows/request)",
        f"workbench router (oip binary, {BINARY_ROWS} rows/request)",
    ),
)


def binary_comparison(entry: dict[str, Any]) -> list[str]:
    """OIP binary tensor data against the same request in JSON: req/s and p99 side by side."""
    lines = [
        "OIP binary tensor data (inputs and outputs as bytes, `tritonclient`'s default) vs the same request in JSON:\n",
        "| requests | concurrency | JSON req/s | binary req/s | binary/JSON | JSON p99 ms | binary p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    targets = {r["target"] for r in entry["runs"]}
    for label, json_target, binary_target in BINARY_PAIRS:
        if json_target not in targets or binary_target not in targets:
            continue
        for concurrency in BINARY_CONCURRENCY:
            json_run = _run(entry, json_target, concurrency)
            binary_run = _run(entry, binary_target, concurrency)
            lines.append(
                f"| {label} | {concurrency} | {json_run['rps']:,.0f} | {binary_run['rps']:,.0f} | "
                f"{binary_run['rps'] / json_run['rps']:.2f}x | {json_run['p99_ms']:.2f} | {binary_run['p99_ms']:.2f} |"
            )
    lines.append("")
    return lines


def write_docs(markdown: str, command: str) -> None:
    replace_marked("serving", "Serving", markdown, command)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "serving.json")
    args = parser.parse_args()
    results = run(args.seconds)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    markdown = to_markdown(results)
    print("\n" + markdown)
    if args.write_docs:
        write_docs(markdown, "make bench-serving")


if __name__ == "__main__":
    main()
