"""Dynamic batching: coalesce concurrent requests into one forward pass, give each caller its rows back.

The policy is chosen for latency first. A batch is dispatched as soon as the model is free, with
everything already queued (up to ``max_batch_size`` rows). It waits up to ``max_wait`` for more only
when more are expected: requests already received and still being decoded, or, under sustained load,
as many requests as the previous batch held (clients whose answers just went out send their next
request; dispatching the first of them alone would split one full batch into many small ones). A lone
request at concurrency 1 never waits.

The forward pass runs in one dedicated thread: torch releases the GIL while it computes, so the event
loop keeps accepting and decoding the next requests meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from workbench.telemetry.batch_record import RowSpan

Item = TypeVar("Item")
Item_contra = TypeVar("Item_contra", contravariant=True)


class RunOutputs(dict[str, np.ndarray[Any, Any]]):
    """A batch's outputs (name -> one row per input row), and what a runner that prepares its inputs
    adds: the inputs it actually used per row (``inputs``, logged in place of the request's), per-row
    facts about them (``lookup``: feature ages), and the items it refused (``refused``: item index ->
    the error that caller gets). A refused item has no rows in the outputs; the others are answered."""

    def __init__(
        self,
        outputs: dict[str, np.ndarray[Any, Any]],
        *,
        inputs: dict[str, np.ndarray[Any, Any]] | None = None,
        lookup: dict[str, np.ndarray[Any, Any]] | None = None,
        refused: dict[int, Exception] | None = None,
        lookup_ms: float | None = None,
    ) -> None:
        super().__init__(outputs)
        self.inputs = inputs
        self.lookup = lookup
        self.refused = refused or {}
        self.lookup_ms = lookup_ms


@dataclass(frozen=True)
class BatchResult:
    """One caller's share of a batch, with the timings the telemetry needs."""

    outputs: dict[str, np.ndarray[Any, Any]]
    queue_seconds: float
    inference_seconds: float
    batch_size: int
    batch_rows: int
    #: Which forward pass answered (unique per batcher), and how many callers got this batch's results:
    #: what the prediction log needs to write one line per batch.
    batch_id: int = 0
    batch_callers: int = 1
    #: From a runner that prepared the inputs (:class:`RunOutputs`): this caller's rows of them.
    inputs: RowSpan | None = None
    lookup: RowSpan | None = None
    lookup_ms: float | None = None


class Batcher(Protocol[Item_contra]):
    """What a replica needs of a batcher: the local one (:class:`DynamicBatcher`) or Ray Serve's."""

    @property
    def queue_depth(self) -> int: ...

    def arriving(self) -> None: ...

    def arrived(self) -> None: ...

    async def submit(self, item: Item_contra, rows: int) -> BatchResult: ...

    def start(self) -> None: ...

    async def close(self) -> None: ...


@dataclass
class _Pending(Generic[Item]):
    item: Item
    rows: int
    enqueued: float
    future: asyncio.Future[BatchResult]


class DynamicBatcher(Generic[Item]):
    def __init__(
        self,
        run_batch: Callable[[Sequence[Item]], dict[str, np.ndarray[Any, Any]]],
        *,
        max_batch_size: int,
        max_wait: float,
        on_batch: Callable[[int, int, float], None] | None = None,
    ) -> None:
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self._on_batch = on_batch
        self._queue: deque[_Pending[Item]] = deque()
        self._wakeup = asyncio.Event()
        self._arriving = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._expected = 1  # requests in the previous batch: what to wait for under load
        self._batches = 0
        self._busy = False  # a batch is taken and not yet answered

    # ------------------------------------------------------------ callers
    def arriving(self) -> None:
        """A request has been received and is being decoded: worth waiting a little for."""
        self._arriving += 1

    def arrived(self) -> None:
        self._arriving = max(0, self._arriving - 1)

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    async def submit(self, item: Item, rows: int) -> BatchResult:
        if self._closing:
            raise RuntimeError("batcher is closed")
        loop = asyncio.get_running_loop()
        pending = _Pending(item, rows, time.perf_counter(), loop.create_future())
        self._queue.append(pending)
        self._wakeup.set()
        return await pending.future

    # ----------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="batcher")

    async def close(self) -> None:
        """Finish every queued request and the batch in flight, then stop.

        Waiting for an empty queue alone is not enough: the last batch leaves the queue when it is taken,
        and cancelling the loop while it runs left its callers waiting forever (a test hung on a busy
        machine, where the forward pass outlasted the poll)."""
        self._closing = True
        while self._queue or self._busy:
            await asyncio.sleep(0.005)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    # --------------------------------------------------------------- loop
    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            batch = self._take()
            self._busy = True
            try:
                await self._fill_and_dispatch(loop, batch)
            finally:
                self._busy = False

    async def _fill_and_dispatch(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending[Item]]) -> None:
        """Wait a little for more requests when more are expected, then run the batch."""
        if self.max_wait > 0 and self._rows(batch) < self.max_batch_size and self._more_expected(batch):
            deadline = loop.time() + self.max_wait
            while self._rows(batch) < self.max_batch_size and self._more_expected(batch):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
                batch.extend(self._take(self.max_batch_size - self._rows(batch)))
        self._expected = len(batch)
        await self._dispatch(loop, batch)

    def _more_expected(self, batch: Sequence[_Pending[Item]]) -> bool:
        return self._arriving > 0 or len(batch) < self._expected

    def _take(self, capacity: int | None = None) -> list[_Pending[Item]]:
        """Queued requests up to ``capacity`` rows; the first is always taken, even if larger."""
        limit = self.max_batch_size if capacity is None else capacity
        taken: list[_Pending[Item]] = []
        rows = 0
        while self._queue:
            head = self._queue[0]
            if taken and rows + head.rows > limit:
                break
            if not taken and capacity is not None and head.rows > capacity:
                break
            taken.append(self._queue.popleft())
            rows += head.rows
            if rows >= limit:
                break
        return taken

    @staticmethod
    def _rows(batch: Sequence[_Pending[Item]]) -> int:
        return sum(p.rows for p in batch)

    async def _dispatch(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending[Item]]) -> None:
        if not batch:
            return
        started = time.perf_counter()
        try:
            outputs = await loop.run_in_executor(self._executor, self._run_batch, [p.item for p in batch])
        except Exception as exc:
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        inference = time.perf_counter() - started
        self._batches += 1
        shares = share_batch(
            outputs,
            [p.rows for p in batch],
            [p.enqueued for p in batch],
            started=started,
            inference=inference,
            batch_id=self._batches,
            done=[p.future.done() for p in batch],
        )
        answered = [(p, share) for p, share in zip(batch, shares, strict=True)]
        results = [share for _, share in answered if isinstance(share, BatchResult)]
        if self._on_batch is not None and results:
            self._on_batch(len(results), results[0].batch_rows, inference)
        for pending, share in answered:
            if pending.future.done():
                continue
            if isinstance(share, BatchResult):
                pending.future.set_result(share)
            else:
                pending.future.set_exception(share)


def share_batch(
    outputs: dict[str, np.ndarray[Any, Any]],
    rows: Sequence[int],
    enqueued: Sequence[float],
    *,
    started: float,
    inference: float,
    batch_id: int,
    done: Sequence[bool] | None = None,
) -> list[BatchResult | Exception]:
    """Each caller's share of a batch's outputs, or the error it gets (refused by the runner, or outputs
    without one row per input row). One function for every batcher, so the local replica and the Ray
    Serve deployment answer and log a batch the same way. ``done``: callers already gone (not counted
    among the callers a log line waits for)."""
    refused: dict[int, Exception] = getattr(outputs, "refused", None) or {}
    answered = [i for i in range(len(rows)) if i not in refused]
    total_rows = sum(rows[i] for i in answered)
    shares: list[BatchResult | Exception] = [
        refused.get(i, RuntimeError("unanswered")) for i in range(len(rows))
    ]
    wrong = [name for name, array in outputs.items() if len(array) != total_rows]
    if wrong:
        error = RuntimeError(f"model returned outputs {wrong} without one row per input row ({total_rows})")
        for i in answered:
            shares[i] = error
        return shares
    gone = done or [False] * len(rows)
    callers = sum(not gone[i] for i in answered)
    inputs: dict[str, np.ndarray[Any, Any]] | None = getattr(outputs, "inputs", None)
    lookup: dict[str, np.ndarray[Any, Any]] | None = getattr(outputs, "lookup", None)
    lookup_ms: float | None = getattr(outputs, "lookup_ms", None)
    offset = 0
    for i in answered:
        end = offset + rows[i]
        shares[i] = BatchResult(
            outputs={name: array[offset:end] for name, array in outputs.items()},
            queue_seconds=started - enqueued[i],
            inference_seconds=inference,
            batch_size=len(answered),
            batch_rows=total_rows,
            batch_id=batch_id,
            batch_callers=callers,
            inputs=None if inputs is None else RowSpan(inputs, offset, end),
            lookup=None if lookup is None else RowSpan(lookup, offset, end),
            lookup_ms=lookup_ms,
        )
        offset = end
    return shares
