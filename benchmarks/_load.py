"""Load generation with wrk (C, one thread): the load generator must cost the 2-core machine little."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_SCRIPT = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("WRK_BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()
-- WRK_BODIES_FILE: one body per line, sent in turn (traffic that looks like the data, not one row again)
local bodies = {}
local listed = os.getenv("WRK_BODIES_FILE")
if listed and listed ~= "" then
  for line in io.lines(listed) do bodies[#bodies + 1] = line end
end
local turn = 0
if #bodies > 0 then
  request = function()
    turn = turn % #bodies + 1
    return wrk.format(nil, nil, nil, bodies[turn])
  end
end
done = function(summary, latency, requests)
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p95_us":%d,"p99_us":%d,"mean_us":%f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean, latency.max))
end
"""


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is needed for the load: apt-get install -y wrk (make bench installs it)")
    return path


def run_wrk(
    url: str,
    body: bytes,
    *,
    concurrency: int,
    seconds: float,
    headers: Mapping[str, str] | None = None,
    bodies: list[bytes] | None = None,
) -> LoadResult:
    """POST ``body`` (JSON unless ``headers`` say otherwise) at ``concurrency`` for ``seconds``; with
    ``bodies`` (one-line JSON each), those in turn instead."""
    wrk = require_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        extra = "".join(
            f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in (headers or {}).items()
        )
        script.write_text(_SCRIPT + extra)
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(body)
        bodies_file = Path(tmp) / "bodies.jsonl"
        bodies_file.write_bytes(b"\n".join(bodies) + b"\n" if bodies else b"")
        out = subprocess.run(
            [
                wrk,
                "-t1",
                f"-c{concurrency}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            env={
                "WRK_BODY_FILE": str(body_file),
                "WRK_BODIES_FILE": str(bodies_file) if bodies else "",
                "PATH": "/usr/bin:/bin",
            },
            timeout=seconds + 60,
        ).stdout
    line = next(line for line in out.splitlines() if line.startswith("{"))
    data = json.loads(line)
    return LoadResult(
        concurrency=concurrency,
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        errors=int(data["status_errors"]) + int(data["socket_errors"]),
        p50_ms=data["p50_us"] / 1000,
        p95_ms=data["p95_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
    )
