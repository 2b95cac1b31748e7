"""End to end by entity id through the router, side by side in one run (issue 14).

The same model (the demo's v1), the same machine, the same load (wrk, one-row requests):

- ``features inline``: the request carries the 20 features (no lookup);
- ``by id (lookup in the replica)``: the request carries a ``customer_id``; the replica reads the
  customer's features from the SQLite online store once per batch and runs the model;
- ``by id (KServe pattern)``: a transformer in front (as KServe's Feast transformer) asks Feast's
  feature server (``feast serve``) for the features over HTTP, then calls the inline endpoint: two
  extra hops per request.

Then the RSS of a replica with and without a lookup. The load's id is fixed per run (wrk sends one body),
so the online store answers from a warm page, as it does for a hot customer. Run:
``python benchmarks/features_serving.py [--seconds S] [--write-docs]`` (part of ``make bench-features``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _docs import replace_section
from _load import run_wrk
from _procs import rss_mb

from tests._servers import free_port, run_server
from workbench.api import create_app
from workbench.client import Client
from workbench.control_plane import ControlPlane
from workbench.demo.dataset import FEATURES, generate_churn, split_frame
from workbench.demo.features import JOIN_KEY, SERVICE, write_demo_features
from workbench.demo.training import train_version
from workbench.settings import Settings

SECTION = "## Called by id, end to end (benchmarks/features_serving.py)"
CUSTOMERS = 5000
CUSTOMER = 4242
LEVELS = (1, 64)

TRANSFORMER = textwrap.dedent(
    '''
    """KServe's Feast transformer, in miniature: features from `feast serve`, then the predictor."""
    import os

    import httpx
    import orjson

    FEAST = os.environ["FEAST_URL"] + "/get-online-features"
    PREDICTOR = os.environ["PREDICTOR_URL"]
    SERVICE = os.environ["FEATURE_SERVICE"]
    KEY = os.environ["JOIN_KEY"]
    client = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=256))


    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        ids = [row[0] for row in orjson.loads(body)["dataframe_split"]["data"]]
        answer = (await client.post(FEAST, json={"feature_service": SERVICE, "entities": {KEY: ids}})).json()
        names = answer["metadata"]["feature_names"]
        columns = {name: result["values"] for name, result in zip(names, answer["results"]) if name != KEY}
        rows = [[columns[name][i] for name in columns] for i in range(len(ids))]
        request = {"dataframe_split": {"columns": list(columns), "data": rows}}
        predicted = await client.post(PREDICTOR, content=orjson.dumps(request),
                                      headers={"content-type": "application/json"})
        await send({"type": "http.response.start", "status": predicted.status_code,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": predicted.content})
    '''
)


def wait_until_answers(url: str, body: bytes, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=10)
            if answer.status_code == 200:
                return
            last = f"{answer.status_code} {answer.text[:200]}"
        except httpx.HTTPError as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer: {last}")
        time.sleep(0.5)


def load(label: str, url: str, body: bytes, seconds: float) -> list[dict[str, Any]]:
    wait_until_answers(url, body)
    rows = []
    for concurrency in LEVELS:
        run_wrk(url, body, concurrency=concurrency, seconds=2)  # warm
        result = run_wrk(url, body, concurrency=concurrency, seconds=seconds)
        rows.append(
            {
                "target": label,
                "c": concurrency,
                "rps": result.rps,
                "p50": result.p50_ms,
                "p99": result.p99_ms,
                "errors": result.errors,
            }
        )
        print(
            f"  {label:<34} c={concurrency:<3} {result.rps:>7.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
            f"p99 {result.p99_ms:6.2f} ms  errors {result.errors}",
            flush=True,
        )
    return rows


def replica_rss(client: Client, endpoint: str) -> float:
    (replica,) = [r for r in client.endpoint_status(endpoint)["replicas"] if r["state"] == "ready"]
    return rss_mb(int(replica["pid"]), tree=False)


def run(seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {"load": []}
    with tempfile.TemporaryDirectory(prefix="bench-features-serving-") as scratch:
        root = Path(scratch)
        home = root / "home"
        home.mkdir()
        settings = Settings.for_home(
            home, allowed_roots=(root,), api_port=0, router_port=0, serving_backend="local"
        )
        customers = write_demo_features(settings.feature_repo_path, rows=CUSTOMERS, seed=7)
        train, holdout = split_frame(generate_churn(6000, seed=7), holdout_fraction=0.25, seed=7)
        plane = ControlPlane(settings)
        plane.start_serving()
        transformer: subprocess.Popen[bytes] | None = None
        feast: subprocess.Popen[bytes] | None = None
        try:
            with run_server(create_app(settings, plane)) as url, Client(url, settings=settings) as client:
                client.apply_features()
                client.materialize_features()
                trained = train_version(1, train, holdout, seed=7)
                client.register_model("churn", trained.module, input_example=holdout[list(FEATURES)].head(2))
                client.deploy("inline", "models:/churn/1")
                client.deploy("by-id", "models:/churn/1", features={"entity": JOIN_KEY, "service": SERVICE})
                router = str(plane.serving.status()["router_url"])
                row = customers.set_index(JOIN_KEY).loc[CUSTOMER, list(FEATURES)]
                inline_body = orjson.dumps(
                    {"dataframe_split": {"columns": list(FEATURES), "data": [[float(v) for v in row]]}}
                )
                id_body = orjson.dumps({"dataframe_split": {"columns": [JOIN_KEY], "data": [[CUSTOMER]]}})
                results["rss_mb"] = {
                    "inline": replica_rss(client, "inline"),
                    "by-id": replica_rss(client, "by-id"),
                }

                feast_port, transformer_port = free_port(), free_port()
                feast = subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        "import sys; from feast.cli.cli import cli; sys.exit(cli())",
                        "-c",
                        str(settings.feature_repo_path),
                        "serve",
                        "--port",
                        str(feast_port),
                        "--workers",
                        "1",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                script = root / "transformer.py"
                script.write_text(TRANSFORMER)
                env = {
                    **os.environ,
                    "FEAST_URL": f"http://127.0.0.1:{feast_port}",
                    "PREDICTOR_URL": f"{router}/endpoints/inline/invocations",
                    "FEATURE_SERVICE": SERVICE,
                    "JOIN_KEY": JOIN_KEY,
                }
                transformer = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "transformer:app",
                        "--port",
                        str(transformer_port),
                        "--log-level",
                        "warning",
                        "--no-access-log",
                    ],
                    cwd=root,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                results["load"] += load(
                    "features inline", f"{router}/endpoints/inline/invocations", inline_body, seconds
                )
                results["load"] += load(
                    "by id (lookup in the replica)", f"{router}/endpoints/by-id/invocations", id_body, seconds
                )
                results["load"] += load(
                    "by id (KServe pattern: feast serve)",
                    f"http://127.0.0.1:{transformer_port}/",
                    id_body,
                    seconds,
                )
        finally:
            for process in (transformer, feast):
                if process is not None:
                    process.terminate()
                    process.wait(timeout=20)
            plane.close()
    return results


def to_markdown(results: dict[str, Any], seconds: float) -> str:
    lines = [
        f"The demo's v1 MLP, one-row requests through the router, wrk for {seconds:g} s per level after a 2 s "
        "warm-up, on this 2-core machine (load generator, router, replicas, Feast's server and the "
        "transformer share both cores).",
        "",
        "| path | c | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|",
    ]
    for row in results["load"]:
        lines.append(
            f"| {row['target']} | {row['c']} | {row['rps']:.0f} | {row['p50']:.2f} | {row['p99']:.2f} "
            f"| {row['errors']} |"
        )
    by = {(row["target"], row["c"]): row for row in results["load"]}
    inline, lookup, kserve = (
        "features inline",
        "by id (lookup in the replica)",
        "by id (KServe pattern: feast serve)",
    )
    lines += [""]
    for c in LEVELS:
        ours, base, hop = by[(lookup, c)], by[(inline, c)], by[(kserve, c)]
        lines.append(
            f"- c={c}: the lookup in the replica adds {ours['p50'] - base['p50']:+.2f} ms at p50 and "
            f"{ours['p99'] - base['p99']:+.2f} ms at p99 to the same model called with its features, and keeps "
            f"{ours['rps'] / base['rps']:.0%} of its throughput; the KServe pattern answers "
            f"{hop['rps'] / ours['rps']:.0%} as many requests, at p50 {hop['p50']:.1f} ms."
        )
    lines.append(
        "- The KServe pattern's tail (p99 over a second even at c=1) comes from stalls of about a second in "
        "the transformer → `feast serve` → router chain, not from Feast's registry refresh (the same with "
        "`--registry_ttl_sec 3600`); it was not diagnosed further. Its p50 is the fair comparison: two extra "
        "HTTP hops and Feast's per-value conversion on every request."
    )
    rss = results["rss_mb"]
    lines += [
        "",
        f"Replica RSS: {rss['inline']:.0f} MB without a lookup, {rss['by-id']:.0f} MB with one "
        f"(Feast imported and its registry loaded: +{rss['by-id'] - rss['inline']:.0f} MB).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    results = run(args.seconds)
    markdown = to_markdown(results, args.seconds)
    print(markdown)
    print(f"(took {time.perf_counter() - started:.0f} s)")
    if args.write_docs:
        command = f"python benchmarks/features_serving.py --seconds {args.seconds:g} --write-docs"
        replace_section(SECTION, f"{SECTION}\n\nCommand: `{command}`\n\n{markdown}\n")


if __name__ == "__main__":
    main()
