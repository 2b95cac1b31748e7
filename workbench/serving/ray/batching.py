"""A replica's batcher on Ray Serve's ``@serve.batch``, with the endpoint's batch size (in rows) and wait.

Behind the same interface as the local :class:`~workbench.serving.batcher.DynamicBatcher`, and answered
by the same :func:`~workbench.serving.batcher.share_batch`, so the replica app, its metrics and its
prediction-log lines do not know which one batches. The policies differ where Ray's does: a batch that
is not full waits ``max_wait`` even for a lone request. A request larger than a batch runs alone, as it
does locally (Ray's batcher would refuse it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from workbench.serving.batcher import BatchResult, share_batch

Item = TypeVar("Item")


@dataclass(frozen=True)
class _Queued(Generic[Item]):
    item: Item
    rows: int
    enqueued: float


def _rows(items: list[Any]) -> int:
    return sum(queued.rows for queued in items)


class ServeBatcher(Generic[Item]):
    def __init__(
        self,
        run_batch: Callable[[Sequence[Item]], dict[str, np.ndarray[Any, Any]]],
        *,
        max_batch_size: int,
        max_wait: float,
        on_batch: Callable[[int, int, float], None] | None = None,
    ) -> None:
        from ray import serve

        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self._on_batch = on_batch
        # One thread: torch releases the GIL while it computes, so the loop keeps decoding meanwhile.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._batches = 0
        self._waiting = 0
        self._running = 0
        self._batched = serve.batch(
            max_batch_size=max_batch_size, batch_wait_timeout_s=max_wait, batch_size_fn=_rows
        )(self._run)

    @property
    def queue_depth(self) -> int:
        return self._waiting

    def arriving(self) -> None:
        """Ray's policy does not look at requests still being decoded."""

    def arrived(self) -> None:
        """See :meth:`arriving`."""

    async def submit(self, item: Item, rows: int) -> BatchResult:
        queued = _Queued(item, rows, time.perf_counter())
        self._waiting += 1
        if rows > self.max_batch_size:
            outcome = (await self._run([queued]))[0]
        else:
            outcome = await self._batched(queued)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def start(self) -> None:
        """Ray's batcher starts with its first call."""

    async def close(self) -> None:
        while self._waiting or self._running:
            await asyncio.sleep(0.005)
        self._executor.shutdown(wait=True)

    async def _run(self, batch: list[_Queued[Item]]) -> list[BatchResult | Exception]:
        self._waiting -= len(batch)
        self._running += 1
        try:
            started = time.perf_counter()
            loop = asyncio.get_running_loop()
            try:
                outputs = await loop.run_in_executor(self._executor, self._run_batch, [q.item for q in batch])
            except Exception as exc:
                return [exc] * len(batch)
            inference = time.perf_counter() - started
            self._batches += 1
            shares = share_batch(
                outputs,
                [q.rows for q in batch],
                [q.enqueued for q in batch],
                started=started,
                inference=inference,
                batch_id=self._batches,
            )
            answered = [share for share in shares if isinstance(share, BatchResult)]
            if self._on_batch is not None and answered:
                self._on_batch(len(answered), answered[0].batch_rows, inference)
            return shares
        finally:
            self._running -= 1
