"""The dynamic batcher with a real numpy model: coalescing, slicing, limits, waiting policy, failures."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from workbench.serving.batcher import DynamicBatcher


class DoublingModel:
    """Returns 2 x input, records every batch it ran; can be held to let requests pile up."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail_next = False

    def __call__(self, items: Sequence[np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
        self.gate.wait(10)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("model exploded")
        matrix = np.concatenate(list(items))
        self.batches.append(len(matrix))
        return {"y": matrix * 2}


def _rows(n: int, start: float) -> np.ndarray[Any, Any]:
    return np.arange(start, start + n, dtype=np.float32).reshape(n, 1)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_concurrent_requests_are_coalesced_and_each_gets_its_rows() -> None:
    async def scenario() -> None:
        model = DoublingModel()
        batcher: DynamicBatcher[np.ndarray[Any, Any]] = DynamicBatcher(model, max_batch_size=64, max_wait=0.0)
        batcher.start()
        model.gate.clear()
        blocker = asyncio.create_task(batcher.submit(_rows(1, 0), 1))
        await asyncio.sleep(0.05)  # the first batch is now running (held)
        sizes = [1, 3, 2, 5, 1, 4]
        inputs = [_rows(n, 100 * i) for i, n in enumerate(sizes)]
        tasks = [asyncio.create_task(batcher.submit(x, len(x))) for x in inputs]
        await asyncio.sleep(0.05)
        model.gate.set()
        results = await asyncio.gather(*tasks)
        for x, result in zip(inputs, results, strict=True):
            np.testing.assert_array_equal(result.outputs["y"], x * 2)
            assert result.batch_size == len(sizes)
            assert result.batch_rows == sum(sizes)
            assert result.batch_callers == len(sizes)  # what the prediction log waits for
        assert len({r.batch_id for r in results}) == 1
        assert (await blocker).batch_id != results[0].batch_id
        assert model.batches == [1, sum(sizes)]
        await batcher.close()

    run(scenario())


def test_batches_never_exceed_max_rows_except_one_oversized_request() -> None:
    async def scenario() -> None:
        model = DoublingModel()
        batcher: DynamicBatcher[np.ndarray[Any, Any]] = DynamicBatcher(model, max_batch_size=8, max_wait=0.0)
        batcher.start()
        model.gate.clear()
        first = asyncio.create_task(batcher.submit(_rows(1, 0), 1))
        await asyncio.sleep(0.05)
        sizes = [3, 3, 3, 20, 2]
        tasks = [asyncio.create_task(batcher.submit(_rows(n, 0), n)) for n in sizes]
        await asyncio.sleep(0.05)
        model.gate.set()
        await asyncio.gather(first, *tasks)
        assert model.batches[0] == 1
        assert sum(model.batches) == 1 + sum(sizes)
        assert all(size <= 8 or size == 20 for size in model.batches)
        assert 20 in model.batches
        await batcher.close()

    run(scenario())


def test_a_lone_request_does_not_wait_for_max_wait() -> None:
    async def scenario() -> None:
        model = DoublingModel()
        batcher: DynamicBatcher[np.ndarray[Any, Any]] = DynamicBatcher(
            model, max_batch_size=64, max_wait=60.0
        )
        batcher.start()
        result = await asyncio.wait_for(batcher.submit(_rows(2, 0), 2), timeout=10)
        assert result.batch_size == 1
        await batcher.close()

    run(scenario())


def test_waits_for_requests_known_to_be_arriving() -> None:
    async def scenario() -> None:
        model = DoublingModel()
        batcher: DynamicBatcher[np.ndarray[Any, Any]] = DynamicBatcher(model, max_batch_size=64, max_wait=5.0)
        batcher.start()
        batcher.arriving()  # a second request is being decoded
        first = asyncio.create_task(batcher.submit(_rows(1, 0), 1))
        await asyncio.sleep(0.1)
        batcher.arrived()
        second = asyncio.create_task(batcher.submit(_rows(1, 1), 1))
        a, b = await asyncio.gather(first, second)
        assert (a.batch_size, b.batch_size) == (2, 2)
        assert model.batches == [2]
        await batcher.close()

    run(scenario())


def test_a_failing_batch_fails_its_callers_and_the_next_batch_works() -> None:
    async def scenario() -> None:
        model = DoublingModel()
        batcher: DynamicBatcher[np.ndarray[Any, Any]] = DynamicBatcher(model, max_batch_size=64, max_wait=0.0)
        batcher.start()
        model.fail_next = True
        with pytest.raises(RuntimeError, match="model exploded"):
            await batcher.submit(_rows(1, 0), 1)
        result = await batcher.submit(_rows(1, 3), 1)
        np.testing.assert_array_equal(result.outputs["y"], [[6.0]])
        await batcher.close()

    run(scenario())


def test_outputs_without_one_row_per_input_row_are_an_error() -> None:
    async def scenario() -> None:
        def broken(items: Sequence[np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
            return {"y": np.zeros(1)}

        batcher: DynamicBatcher[np.ndarray[Any, Any]] = DynamicBatcher(
            broken, max_batch_size=64, max_wait=0.0
        )
        batcher.start()
        with pytest.raises(RuntimeError, match="one row per input row"):
            await batcher.submit(_rows(3, 0), 3)
        await batcher.close()

    run(scenario())


def test_close_finishes_queued_requests() -> None:
    async def scenario() -> None:
        model = DoublingModel()
        batcher: DynamicBatcher[np.ndarray[Any, Any]] = DynamicBatcher(model, max_batch_size=2, max_wait=0.0)
        batcher.start()
        model.gate.clear()
        tasks = [asyncio.create_task(batcher.submit(_rows(1, i), 1)) for i in range(6)]
        await asyncio.sleep(0.05)
        closing = asyncio.create_task(batcher.close())
        model.gate.set()
        results = await asyncio.gather(*tasks)
        await closing
        assert [float(r.outputs["y"][0, 0]) for r in results] == [2.0 * i for i in range(6)]
        with pytest.raises(RuntimeError, match="closed"):
            await batcher.submit(_rows(1, 0), 1)

    run(scenario())


def test_under_load_it_waits_for_as_many_requests_as_the_last_batch_held() -> None:
    async def scenario() -> None:
        model = DoublingModel()
        batcher: DynamicBatcher[np.ndarray[Any, Any]] = DynamicBatcher(model, max_batch_size=64, max_wait=5.0)
        batcher.start()
        model.gate.clear()
        held = asyncio.create_task(batcher.submit(_rows(1, 0), 1))
        await asyncio.sleep(0.05)
        burst = [asyncio.create_task(batcher.submit(_rows(1, i), 1)) for i in range(4)]
        await asyncio.sleep(0.05)
        model.gate.set()
        await asyncio.gather(held, *burst)  # batches so far: [1], [4]
        # Clients send their next requests one by one: the batcher waits to gather them again.
        following = [asyncio.create_task(batcher.submit(_rows(1, 0), 1))]
        for _ in range(3):
            await asyncio.sleep(0.02)
            following.append(asyncio.create_task(batcher.submit(_rows(1, 0), 1)))
        results = await asyncio.gather(*following)
        assert model.batches[:2] == [1, 4]
        assert {r.batch_size for r in results} == {4}
        await batcher.close()

    run(scenario())


def test_close_waits_for_the_batch_in_flight() -> None:
    """The last batch leaves the queue when taken; closing while it runs must still answer its callers."""

    class SlowModel(DoublingModel):
        def __call__(self, items: Sequence[np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
            time.sleep(0.1)  # far longer than close()'s poll
            return super().__call__(items)

    async def scenario() -> None:
        batcher: DynamicBatcher[np.ndarray[Any, Any]] = DynamicBatcher(
            SlowModel(), max_batch_size=8, max_wait=0.0
        )
        batcher.start()
        task = asyncio.create_task(batcher.submit(_rows(1, 3), 1))
        await asyncio.sleep(0.02)  # taken: the queue is empty, the forward pass runs
        await batcher.close()
        result = await asyncio.wait_for(task, 5)
        assert float(result.outputs["y"][0, 0]) == 6.0

    run(scenario())
