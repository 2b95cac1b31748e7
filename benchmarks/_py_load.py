"""A lean asyncio load generator that speaks OIP over gRPC or HTTP/1.1, the same way for both.

    python benchmarks/_py_load.py grpc HOST:PORT BODY_FILE --concurrency 8 --seconds 5
    python benchmarks/_py_load.py http http://HOST:PORT/v2/models/m/infer BODY_FILE --header-length 412 ...

wrk has no gRPC, and a Python gRPC client next to wrk would compare the load generators rather than the
transports. Here both transports get the same loop (uvloop), the same ``concurrency`` workers each with one
request in flight, and a pre-encoded request (a serialised ``ModelInferRequest``, or the HTTP binary-extension
body), so the difference measured is the transport and the router's handling of it. Prints one JSON line:
requests, seconds, errors, p50/p95/p99 in ms, and this process's CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from pathlib import Path
from urllib.parse import urlsplit

import uvloop


async def _grpc_worker(
    target: str, body: bytes, deadline: float, latencies: list[float], errors: list[int]
) -> None:
    import grpc

    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=None,
            response_deserializer=None,
        )
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await call(body)
            except grpc.aio.AioRpcError:
                errors[0] += 1
                continue
            latencies.append(time.perf_counter() - started)


async def _http_worker(
    url: str,
    body: bytes,
    header_length: int | None,
    deadline: float,
    latencies: list[float],
    errors: list[int],
) -> None:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {len(body)}\r\n"
        + (
            f"Content-Type: application/octet-stream\r\nInference-Header-Content-Length: {header_length}\r\n"
            if header_length is not None
            else "Content-Type: application/json\r\n"
        )
        + "\r\n"
    ).encode()
    request = head + body
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            headers = await reader.readuntil(b"\r\n\r\n")
            status = int(headers[9:12])
            length = 0
            for line in headers.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if status != 200:
                errors[0] += 1
                continue
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def _run(args: argparse.Namespace) -> dict[str, float]:
    body = Path(args.body_file).read_bytes()
    latencies: list[float] = []
    errors = [0]
    started = time.perf_counter()
    deadline = started + args.seconds
    if args.protocol == "grpc":
        workers = [
            _grpc_worker(args.target, body, deadline, latencies, errors) for _ in range(args.concurrency)
        ]
    else:
        workers = [
            _http_worker(args.target, body, args.header_length, deadline, latencies, errors)
            for _ in range(args.concurrency)
        ]
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - started
    ms = sorted(x * 1000 for x in latencies) or [float("nan")]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "errors": errors[0],
        "p50_ms": ms[len(ms) // 2],
        "p95_ms": ms[int(len(ms) * 0.95)],
        "p99_ms": ms[int(len(ms) * 0.99)],
        "client_cpu_s": usage.ru_utime + usage.ru_stime,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("protocol", choices=["grpc", "http"])
    parser.add_argument("target", help="gRPC host:port, or the HTTP URL")
    parser.add_argument("body_file")
    parser.add_argument("--header-length", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        print(json.dumps(runner.run(_run(args))))


if __name__ == "__main__":
    main()
