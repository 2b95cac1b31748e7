"""OIP over gRPC against OIP over HTTP, through the same router to the same replica, in one run.

    .venv/bin/python benchmarks/grpc_serving.py              # ~3 minutes; prints a table
    .venv/bin/python benchmarks/grpc_serving.py --write-docs # also updates docs/benchmarks.md

The demo churn MLP, one replica, one endpoint. Three ways of sending the same request (binary tensors both
ways: ``raw_input_contents`` on gRPC, the binary tensor extension on HTTP, as tritonclient sends by default):

  (a) the same lean asyncio load generator for both transports (benchmarks/_py_load.py, uvloop, one
      request in flight per worker, pre-encoded requests) at concurrency 1, 8 and 64, with 1 and 256 rows
      a request: the transports compared with the client's cost held equal;
  (b) wrk on HTTP (C, one thread), the load generator of ``benchmarks/serving.py``, for scale;
  (c) tritonclient's own clients, one call at a time (what a user's script sees): ``tritonclient.http`` and
      ``tritonclient.grpc``, p50 / p99 of a whole ``infer()`` including the client library.

Load generators run in their own processes on the same two cores as the router and the replica.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _docs import replace_marked
from _load import require_wrk, run_wrk
from serving import binary_body, build_models, free_port

from workbench.control_plane import ControlPlane, DeployRequest
from workbench.demo.dataset import FEATURES
from workbench.registry.types import PathSource, RegistrationRequest
from workbench.serving.oip_grpc import messages
from workbench.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
LOAD = Path(__file__).resolve().parent / "_py_load.py"
CONCURRENCY = (1, 8, 64)
ROWS = (1, 256)
ENDPOINT = "bench-grpc"


def grpc_request(row: dict[str, Any], rows: int) -> bytes:
    """A serialised ``ModelInferRequest`` carrying the rows as ``raw_input_contents`` (tritonclient's way)."""
    request = messages.ModelInferRequest(model_name=ENDPOINT)
    for name in FEATURES:
        integer = isinstance(row[name], int)
        request.inputs.add(name=name, datatype="INT64" if integer else "FP64", shape=[rows])
        request.raw_input_contents.append(
            np.full(rows, row[name], dtype="<i8" if integer else "<f8").tobytes()
        )
    return bytes(request.SerializeToString())


def py_load(
    protocol: str, target: str, body: Path, concurrency: int, seconds: float, header_length: int | None = None
) -> dict[str, Any]:
    command = [sys.executable, str(LOAD), protocol, target, str(body), "--concurrency", str(concurrency)]
    if header_length is not None:
        command += ["--header-length", str(header_length)]
    subprocess.run([*command, "--seconds", "1"], check=True, capture_output=True)  # warm-up
    out = subprocess.run([*command, "--seconds", str(seconds)], check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout)
    result["rps"] = result["requests"] / result["seconds"]
    if result["errors"]:
        raise SystemExit(f"{protocol} c={concurrency}: {result['errors']} errors")
    return result


def client_latency(router_url: str, grpc_target: str, row: dict[str, Any], calls: int) -> dict[str, Any]:
    """tritonclient's own HTTP and gRPC clients, one ``infer()`` at a time, defaults."""
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    out: dict[str, Any] = {}
    for name, module, url in (
        ("http", httpclient, router_url.removeprefix("http://")),
        ("grpc", grpcclient, grpc_target),
    ):
        client = module.InferenceServerClient(url)
        inputs = []
        for feature in FEATURES:
            integer = isinstance(row[feature], int)
            tensor = module.InferInput(feature, [1], "INT64" if integer else "FP64")
            tensor.set_data_from_numpy(np.array([row[feature]], dtype=np.int64 if integer else np.float64))
            inputs.append(tensor)
        for _ in range(100):
            client.infer(ENDPOINT, inputs)
        latencies = []
        for _ in range(calls):
            started = time.perf_counter()
            client.infer(ENDPOINT, inputs)
            latencies.append((time.perf_counter() - started) * 1000)
        client.close()
        latencies.sort()
        out[name] = {"p50_ms": statistics.median(latencies), "p99_ms": latencies[int(len(latencies) * 0.99)]}
        print(
            f"  tritonclient.{name:<4} one at a time: "
            f"p50 {out[name]['p50_ms']:.2f} ms  p99 {out[name]['p99_ms']:.2f} ms",
            flush=True,
        )
    return out


def run(seconds: float) -> dict[str, Any]:
    require_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="wb-bench-grpc-"))
    results: dict[str, Any] = {"seconds_per_run": seconds, "runs": []}
    try:
        model_dirs, holdout = build_models(workdir)
        first = holdout.iloc[0]
        row = {f: (int(first[f]) if holdout[f].dtype.kind == "i" else float(first[f])) for f in FEATURES}
        settings = Settings.for_home(
            workdir / "home",
            allowed_roots=(workdir,),
            api_port=0,
            router_port=free_port(),
            router_grpc_port=0,
        )
        plane = ControlPlane(settings)
        plane.start_serving()
        try:
            info = plane.register(
                "mlp", PathSource(path=str(model_dirs["mlp"])), RegistrationRequest(), actor="bench"
            )
            plane.deploy(
                ENDPOINT, DeployRequest(model=f"models:/mlp/{info.version}", max_batch_size=64), actor="bench"
            )
            status = plane.serving.status()
            router_url, grpc_target = status["router_url"], status["router_grpc"]
            url = f"{router_url}/v2/models/{ENDPOINT}/infer"
            for rows in ROWS:
                grpc_file, http_file = workdir / f"grpc-{rows}.bin", workdir / f"http-{rows}.bin"
                grpc_file.write_bytes(grpc_request(row, rows))
                http_body, headers = binary_body(row, rows)
                http_file.write_bytes(http_body)
                header_length = int(headers["Inference-Header-Content-Length"])
                for concurrency in CONCURRENCY:
                    for protocol, target, body, length in (
                        ("grpc", grpc_target, grpc_file, None),
                        ("http", url, http_file, header_length),
                    ):
                        result = py_load(protocol, target, body, concurrency, seconds, length)
                        results["runs"].append(
                            {
                                "generator": "python",
                                "protocol": protocol,
                                "rows": rows,
                                "concurrency": concurrency,
                                **result,
                            }
                        )
                        print(
                            f"  {protocol:<4} rows={rows:<3} c={concurrency:<3} {result['rps']:>7.0f} req/s  "
                            f"p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f}  "
                            f"client cpu {result['client_cpu_s']:.1f} s",
                            flush=True,
                        )
                    run_wrk(url, http_body, concurrency=concurrency, seconds=1, headers=headers)
                    wrk = run_wrk(url, http_body, concurrency=concurrency, seconds=seconds, headers=headers)
                    results["runs"].append(
                        {
                            "generator": "wrk",
                            "protocol": "http",
                            "rows": rows,
                            "concurrency": concurrency,
                            "rps": wrk.rps,
                            "p50_ms": wrk.p50_ms,
                            "p99_ms": wrk.p99_ms,
                            "errors": wrk.errors,
                        }
                    )
                    print(
                        f"  wrk  rows={rows:<3} c={concurrency:<3} {wrk.rps:>7.0f} req/s  "
                        f"p50 {wrk.p50_ms:6.2f} ms  p99 {wrk.p99_ms:6.2f}",
                        flush=True,
                    )
            results["clients"] = client_latency(router_url, grpc_target, row, calls=1000)
        finally:
            plane.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def to_markdown(results: dict[str, Any]) -> str:
    def find(generator: str, protocol: str, rows: int, concurrency: int) -> dict[str, Any]:
        return next(
            r
            for r in results["runs"]
            if (r["generator"], r["protocol"], r["rows"], r["concurrency"])
            == (generator, protocol, rows, concurrency)
        )

    lines = [
        "| rows/request | c | gRPC req/s | HTTP req/s | gRPC p50 / p99 ms | HTTP p50 / p99 ms "
        "| HTTP with wrk req/s, p50 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rows in ROWS:
        for concurrency in CONCURRENCY:
            g, h, w = (
                find("python", "grpc", rows, concurrency),
                find("python", "http", rows, concurrency),
                find("wrk", "http", rows, concurrency),
            )
            lines.append(
                f"| {rows} | {concurrency} | {g['rps']:.0f} | {h['rps']:.0f} | {g['p50_ms']:.2f} / {g['p99_ms']:.2f} | "
                f"{h['p50_ms']:.2f} / {h['p99_ms']:.2f} | {w['rps']:.0f}, {w['p50_ms']:.2f} |"
            )
    clients = results["clients"]
    lines += [
        "",
        "tritonclient's own clients, one `infer()` at a time (client library included): "
        f"`tritonclient.grpc` p50 {clients['grpc']['p50_ms']:.2f} ms, p99 {clients['grpc']['p99_ms']:.2f} ms; "
        f"`tritonclient.http` p50 {clients['http']['p50_ms']:.2f} ms, p99 {clients['http']['p99_ms']:.2f} ms.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "grpc_serving.json")
    args = parser.parse_args()
    results = run(args.seconds)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    markdown = to_markdown(results)
    print("\n" + markdown)
    if args.write_docs:
        replace_marked("grpc", "OIP over gRPC against HTTP", markdown, "make bench-serving")


if __name__ == "__main__":
    main()
