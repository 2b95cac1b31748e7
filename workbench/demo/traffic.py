"""Generated traffic for the demo endpoint: real HTTP through the router, optionally drifted, with
ground truth fed back by request id, as a production system's label pipeline would.

The rows come from the demo generator, so covariate drift (who the customers are) and concept drift
(how they behave) can be turned on while the traffic flows, and the monitors see exactly that.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

import httpx
import orjson
import pandas as pd

from workbench.client import Client
from workbench.demo.dataset import FEATURES, TARGET
from workbench.errors import WorkbenchError
from workbench.protocol import REQUEST_ID_HEADER

FEEDBACK_BATCH = 200


@dataclass
class DemoTraffic:
    """Clients sending one-row requests until stopped, paced to ``rate`` req/s over all ``workers``.

    With ``labels`` (a client), every answered request's ground truth is posted as feedback in batches.
    """

    router_url: str
    endpoint: str
    rows: pd.DataFrame
    rate: float = 300.0
    workers: int = 3
    labels: Client | None = None
    #: What each request carries: the features, or (an endpoint with a feature lookup) the customer id.
    columns: tuple[str, ...] = FEATURES
    sent: int = 0
    failed: int = 0
    labelled: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pending: list[tuple[str, float]] = field(default_factory=list)

    def __enter__(self) -> DemoTraffic:
        split = self.rows[list(self.columns)].to_dict(orient="split")
        truth = self.rows[TARGET].tolist() if TARGET in self.rows.columns else [None] * len(self.rows)
        bodies = [
            (orjson.dumps({"dataframe_split": {"columns": split["columns"], "data": [row]}}), label)
            for row, label in zip(split["data"][:5000], truth[:5000], strict=False)
        ]
        for index in range(self.workers):
            thread = threading.Thread(target=self._run, args=(bodies[index :: self.workers],), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._flush_labels()

    def _run(self, bodies: list[tuple[bytes, float | None]]) -> None:
        url = f"{self.router_url}/endpoints/{self.endpoint}/invocations"
        interval = self.workers / self.rate
        headers = {"content-type": "application/json"}
        with httpx.Client(timeout=30) as client:
            next_at = time.monotonic()
            for count in itertools.count():
                if self._stop.is_set():
                    return
                body, label = bodies[count % len(bodies)]
                try:
                    response = client.post(url, content=body, headers=headers)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok, response = False, None
                with self._lock:
                    self.sent += 1
                    self.failed += not ok
                    if ok and response is not None and label is not None and self.labels is not None:
                        self._pending.append((response.headers[REQUEST_ID_HEADER], float(label)))
                if len(self._pending) >= FEEDBACK_BATCH:
                    self._flush_labels()
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_at = time.monotonic()

    def _flush_labels(self) -> None:
        if self.labels is None:
            return
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            self.labels.feedback(self.endpoint, batch)
        except WorkbenchError:
            return  # a label for a request the log has not flushed yet: the demo can lose a few
        with self._lock:
            self.labelled += len(batch)
