"""Online feature lookup latency, side by side in one run (issue 14).

For the demo's customers (one entity, 20 float features), a lookup of one entity (a request at c=1) and
of 64 entities (one inference batch), through:

- ``sqlite direct``: workbench's reader of Feast's SQLite online table (``SqliteReader``);
- ``redis direct``: workbench's reader of Feast's Redis layout (``RedisReader``): one Lua script per
  batch (an ``HMGET`` per entity, the answers packed into two strings), and the same reader with its
  fallback, one pipeline of ``HMGET`` (one bulk string per value for redis-py to parse);
- ``feast sqlite`` / ``feast redis``: Feast's ``get_online_features`` on each online store
  (``FeastReader``, which also enforces the TTL);
- ``feast serve (HTTP)``: Feast's feature server over HTTP, as KServe's Feast transformer calls it
  before every prediction (the extra hop).

The end-to-end figures through the router (by id against features inline) come with the join in the
replica. Run: ``python benchmarks/features.py [--write-docs]`` (``make bench-features``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _docs import replace_section

from workbench.demo.dataset import FEATURES
from workbench.demo.features import JOIN_KEY, SERVICE, VIEW, write_demo_features
from workbench.features.online import (
    FeastReader,
    RedisReader,
    entity_key_serializer,
    open_reader,
    redis_client,
)
from workbench.features.repo import FeatureRepo

SECTION = "## Online feature lookup (benchmarks/features.py)"
CUSTOMERS = 5000
REPEATS = 2000
BATCH = 64


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def timed(call: Callable[[], Any], repeats: int) -> list[float]:
    for _ in range(min(50, repeats)):  # warm: connections, caches, lazy imports
        call()
    spent = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        spent.append((time.perf_counter() - started) * 1000)
    return spent


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": float(np.percentile(values, 50)),
        "p99": float(np.percentile(values, 99)),
        "mean": float(np.mean(values)),
    }


def wait_for(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("did not come up")
        time.sleep(0.2)


def prepared(root: Path, online: str) -> FeatureRepo:
    repo = FeatureRepo(root, online)
    repo.ensure()
    write_demo_features(root, rows=CUSTOMERS, seed=7)
    repo.apply()
    repo.materialize(datetime.now(UTC).isoformat())
    return repo


def measure(reader: Any, rng: np.random.Generator) -> dict[str, dict[str, float]]:
    one = timed(lambda: reader.read([int(rng.integers(1, CUSTOMERS + 1))]), REPEATS)
    many = timed(lambda: reader.read(rng.integers(1, CUSTOMERS + 1, BATCH).tolist()), REPEATS // 4)
    return {"one": summary(one), "batch": summary(many)}


def run() -> tuple[dict[str, dict[str, dict[str, float]]], float]:
    started = time.perf_counter()
    rng = np.random.default_rng(1)
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-features-") as scratch:
        root = Path(scratch)
        sqlite_repo = prepared(root / "sqlite", "sqlite")
        store = sqlite_repo.store()
        results["sqlite direct (workbench)"] = measure(open_reader(store, VIEW, FEATURES, JOIN_KEY), rng)
        results["feast sqlite"] = measure(FeastReader(store, VIEW, FEATURES, JOIN_KEY, 86_400), rng)

        server = shutil.which("redis-server")
        if server is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server)")
        port = free_port()
        redis = subprocess.Popen(
            [server, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", scratch],
            stdout=subprocess.DEVNULL,
        )
        try:
            import redis as redis_py

            wait_for(lambda: _pings(redis_py, port))
            redis_repo = prepared(root / "redis", f"redis://127.0.0.1:{port}/0")
            redis_store = redis_repo.store()
            direct = open_reader(redis_store, VIEW, FEATURES, JOIN_KEY)
            assert isinstance(direct, RedisReader)
            results["redis direct (workbench)"] = measure(direct, rng)
            assert not direct.pipelined  # the read script ran, not its fallback
            config = redis_store.config
            pipelined = RedisReader(
                redis_client(config.online_store.connection_string),
                config.project,
                VIEW,
                FEATURES,
                JOIN_KEY,
                86_400,
                entity_key_serializer(config),
                pipelined=True,
            )
            results["redis direct, pipelined HMGET"] = measure(pipelined, rng)
            direct.close()
            pipelined.close()
            results["feast redis"] = measure(FeastReader(redis_store, VIEW, FEATURES, JOIN_KEY, 86_400), rng)
        finally:
            redis.terminate()
            redis.wait(timeout=10)

        http_port = free_port()
        serve = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from feast.cli.cli import cli; sys.exit(cli())",
                "-c",
                str(root / "sqlite"),
                "serve",
                "--port",
                str(http_port),
                "--workers",
                "1",
            ],
            cwd=root / "sqlite",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "FEAST_USAGE": "False"},
        )
        try:
            url = f"http://127.0.0.1:{http_port}"
            wait_for(lambda: _answers(f"{url}/health"), timeout=120)
            with httpx.Client(timeout=10) as http:

                def post(ids: list[int]) -> None:
                    answer = http.post(
                        f"{url}/get-online-features",
                        json={"feature_service": SERVICE, "entities": {JOIN_KEY: ids}},
                    )
                    answer.raise_for_status()

                one = timed(lambda: post([int(rng.integers(1, CUSTOMERS + 1))]), REPEATS // 2)
                many = timed(lambda: post(rng.integers(1, CUSTOMERS + 1, BATCH).tolist()), REPEATS // 8)
                results["feast serve (HTTP, the KServe pattern)"] = {
                    "one": summary(one),
                    "batch": summary(many),
                }
        finally:
            serve.terminate()
            serve.wait(timeout=20)
    return results, time.perf_counter() - started


def _pings(client: Any, port: int) -> bool:
    try:
        return bool(client.Redis(port=port).ping())
    except Exception:
        return False


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def markdown(results: dict[str, dict[str, dict[str, float]]], took: float, load: tuple[float, float]) -> str:
    def cell(s: dict[str, float]) -> str:
        return f"{s['p50']:.3f} / {s['p99']:.3f}"

    lines = [
        SECTION,
        "",
        f"`make bench-features` on {datetime.now(UTC):%Y-%m-%d}: the demo's customers ({CUSTOMERS:,} entities, "
        f"{len(FEATURES)} float features), {REPEATS:,} single lookups and {REPEATS // 4:,} of {BATCH} entities "
        f"per path (HTTP: half as many), in one process on this 2-core machine; {took:.0f} s in all, load "
        f"average {load[0]:.1f} at the start and {load[1]:.1f} at the end (other work inflates the p99s). "
        "Times in ms, p50 / p99; each read returns the values and their ages, TTL applied.",
        "",
        f"| path | 1 entity | {BATCH} entities |",
        "|---|---|---|",
        *[f"| {name} | {cell(r['one'])} | {cell(r['batch'])} |" for name, r in results.items()],
        "",
        "Targets (issue 14): at most 1 ms p99 embedded and 2 ms with Redis for one entity, 3 ms per batch "
        "of 64. The direct readers are the replica's paths: SQLite for the embedded default, Redis (one "
        "script per batch) for production; the pipelined row is that reader's fallback where Redis refuses "
        "scripts. The HTTP row is the hop KServe's transformer adds before every prediction.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write-docs", action="store_true", help="write the results into docs/benchmarks.md")
    args = parser.parse_args()
    before = os.getloadavg()[0]
    results, took = run()
    section = markdown(results, took, (before, os.getloadavg()[0]))
    print(section)
    if args.write_docs:
        replace_section(SECTION, section)
        print("updated docs/benchmarks.md")


if __name__ == "__main__":
    main()
