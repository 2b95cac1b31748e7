"""Paced load on several URLs from a separate process: a few requests a second each, for hours if need be.

wrk (``_load.py``) sends as fast as it can; a dashboard benchmark wants steady live traffic instead, so
this sends ``rate`` requests a second to each URL (one thread per URL, no catch-up bursts) until a line
or EOF arrives on stdin, then prints one JSON line: requests sent and failed per URL. It runs in its own
process so that its Python work does not compete for the control plane's GIL, and it imports only httpx.

    python benchmarks/_paced_load.py CONFIG.json   # {"urls": [...], "bodies": [...], "rate": 4.0}
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx


def _send(
    url: str, bodies: list[bytes], rate: float, offset: float, stop: threading.Event, tally: dict[str, int]
) -> None:
    period = 1.0 / rate
    next_at = time.monotonic() + offset * period  # the URLs' requests spread over the period
    sent = 0
    with httpx.Client(timeout=10.0) as client:
        while not stop.is_set():
            wait = next_at - time.monotonic()
            if wait > 0 and stop.wait(wait):
                break
            next_at = max(next_at + period, time.monotonic() - period)
            body = bodies[sent % len(bodies)]
            sent += 1
            tally["sent"] += 1
            try:
                response = client.post(url, content=body, headers={"content-type": "application/json"})
                if response.status_code != 200:
                    tally["failed"] += 1
            except httpx.HTTPError:
                tally["failed"] += 1


def main(config_path: str) -> None:
    config: dict[str, Any] = json.loads(Path(config_path).read_text())
    bodies = [b.encode() for b in config["bodies"]]
    stop = threading.Event()
    tallies = {url: {"sent": 0, "failed": 0} for url in config["urls"]}
    rate = float(config["rate"])
    threads = [
        threading.Thread(target=_send, args=(url, bodies, rate, i / len(tallies), stop, tally), daemon=True)
        for i, (url, tally) in enumerate(tallies.items())
    ]
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    sys.stdin.readline()  # "stop", or EOF when the parent is gone
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
    print(json.dumps(tallies), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
