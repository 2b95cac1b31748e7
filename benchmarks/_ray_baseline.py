"""Ray Serve alone, without Workbench: the floor a request through Ray's proxy costs on this machine.

Run as a child process by `ray_serving.py` (its own local cluster, so nothing mixes with Workbench's
declared applications): one deployment that answers a constant, and the same behind a second deployment
that forwards through a handle (Workbench's ingress → version shape). Prints one JSON line per run.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _load import run_wrk


def main() -> None:
    seconds = float(sys.argv[1])
    port = int(sys.argv[2])
    os.environ.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    import ray
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import Response

    # As many requests in flight as Workbench's ingress allows (Ray's default of 5 queues the rest).
    @serve.deployment(max_ongoing_requests=1024)
    class Answer:
        async def __call__(self, request: Request) -> Response:
            await request.body()
            return Response(b'{"outputs": []}', media_type="application/json")

        async def answer(self, body: bytes) -> bytes:
            return b'{"outputs": []}'

    @serve.deployment(max_ongoing_requests=1024)
    class Forward:
        def __init__(self, inner: object) -> None:
            self.inner = inner

        async def __call__(self, request: Request) -> Response:
            body = await self.inner.answer.remote(await request.body())  # type: ignore[attr-defined]
            return Response(body, media_type="application/json")

    ray.init(
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        log_to_driver=False,
        _temp_dir=tempfile.mkdtemp(prefix="ray-", dir="/tmp"),
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(
            Answer.options(ray_actor_options={"num_cpus": 0.25}).bind(), name="one", route_prefix="/one"
        )
        inner = Answer.options(name="inner", ray_actor_options={"num_cpus": 0.25}).bind()
        serve.run(
            Forward.options(ray_actor_options={"num_cpus": 0.25}).bind(inner), name="two", route_prefix="/two"
        )
        for label, path in (
            ("ray serve alone: one deployment", "/one"),
            ("ray serve alone: two chained", "/two"),
        ):
            url = f"http://127.0.0.1:{port}{path}"
            for concurrency in (1, 8, 64):
                run_wrk(url, b"{}", concurrency=concurrency, seconds=2)
                result = run_wrk(url, b"{}", concurrency=concurrency, seconds=seconds)
                print(
                    json.dumps(
                        {
                            "target": label,
                            "concurrency": concurrency,
                            "rps": result.rps,
                            "p50_ms": result.p50_ms,
                            "p99_ms": result.p99_ms,
                            "errors": result.errors,
                        }
                    ),
                    flush=True,
                )
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
