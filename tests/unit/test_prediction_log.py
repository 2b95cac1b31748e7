"""The prediction log must keep every accepted record, refuse (and count) the rest, and never corrupt a file.

No assertion depends on wall-clock time: where the writer thread has to catch up, tests wait for a
counter with a generous deadline and then assert on contents.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from workbench.telemetry import PredictionLogWriter, WriterStats, list_segments, read_records


def wait_for(condition: Callable[[], bool], *, deadline: float = 30.0) -> None:
    """Poll until ``condition`` holds; the deadline only turns a hang into a failure."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.005)


def record(n: int, **extra: Any) -> dict[str, Any]:
    return {"ts": 1_700_000_000.0 + n, "n": n, "endpoint": "churn", "status": 200, **extra}


def segment_lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), f"{path.name} ends with a partial line"
    return data.splitlines(keepends=True)


# ---------------------------------------------------------------------- round trip
def test_records_round_trip_with_numpy_and_nested_values(tmp_path: Path) -> None:
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4)
    rec = {
        "ts": 1_700_000_000.25,
        "endpoint": "churn",
        "model": "churn-net",
        "version": 3,
        "request_id": "req-1",
        "status": 200,
        "rows": 3,
        "latency_ms": 1.5,
        "batch_size": 8,
        "shadow": False,
        "error": None,
        "inputs": {
            "f32": np.array([0.5, 1.25, -2.0], dtype=np.float32),
            "f16": np.array([0.5, 1.5, -3.0], dtype=np.float16),
            "i64": np.array([1, -2, 2**40], dtype=np.int64),
            "column_view": matrix[:, 1],  # not C-contiguous: orjson refuses it natively
            "strings": np.array(["a", "b", "c"]),
            "nested": [[1, 2], [3, [4, None]], []],
            "missing": None,
        },
        "outputs": {
            "proba": np.array([0.1, 0.9, 0.5], dtype=np.float64),
            "label": np.int64(1),
            "score16": np.float16(0.25),
            "matrix": matrix,
        },
    }
    writer = PredictionLogWriter(tmp_path, writer_id="rt")
    writer.start()
    assert writer.log(rec)
    writer.close()

    (got,) = list(read_records(tmp_path))
    assert got["ts"] == 1_700_000_000.25
    assert got["shadow"] is False
    assert got["error"] is None
    assert got["inputs"] == {
        "f32": [0.5, 1.25, -2.0],
        "f16": [0.5, 1.5, -3.0],
        "i64": [1, -2, 2**40],
        "column_view": [1.0, 5.0, 9.0],
        "strings": ["a", "b", "c"],
        "nested": [[1, 2], [3, [4, None]], []],
        "missing": None,
    }
    assert got["outputs"]["proba"] == [0.1, 0.9, 0.5]
    assert got["outputs"]["label"] == 1
    assert got["outputs"]["score16"] == 0.25
    assert got["outputs"]["matrix"] == matrix.tolist()
    assert writer.stats.written == 1
    assert writer.stats.bytes_written == sum(p.stat().st_size for p in list_segments(tmp_path))


def test_unserialisable_record_is_dropped_and_counted_without_losing_the_others(tmp_path: Path) -> None:
    writer = PredictionLogWriter(tmp_path, writer_id="bad")
    writer.log(record(0))
    writer.log(record(1, huge=2**70))  # beyond 64 bits: orjson cannot encode it
    writer.log(record(2, labels={0: 0.1, 1: 0.9}))  # non-str keys are accepted
    writer.start()
    writer.close()

    assert [r["n"] for r in read_records(tmp_path)] == [0, 2]
    stats = writer.stats
    assert (stats.written, stats.dropped_invalid) == (2, 1)
    assert stats.last_error is not None


# ---------------------------------------------------------------------- segments
def test_rotation_by_size_produces_several_segments_read_back_in_order(tmp_path: Path) -> None:
    writer = PredictionLogWriter(tmp_path, writer_id="rot", segment_bytes=4_000)
    for n in range(500):  # logged before start: the whole backlog is one batch, split across segments
        assert writer.log(record(n, payload="x" * 50))
    writer.start()
    writer.close()

    segments = list_segments(tmp_path)
    assert len(segments) >= 10
    assert writer.stats.segments == len(segments)
    assert [p.name for p in segments[:2]] == ["rot-000001.jsonl", "rot-000002.jsonl"]
    for path in segments:
        assert 0 < path.stat().st_size <= 4_000
        segment_lines(path)
    assert [r["n"] for r in read_records(tmp_path)] == list(range(500))


def test_a_record_larger_than_a_segment_gets_a_segment_of_its_own(tmp_path: Path) -> None:
    writer = PredictionLogWriter(tmp_path, writer_id="big", segment_bytes=1_000)
    writer.log(record(0))
    writer.log(record(1, payload="y" * 5_000))
    writer.log(record(2))
    writer.close()  # never started: close() flushes in the caller's thread

    sizes = [p.stat().st_size for p in list_segments(tmp_path)]
    assert len(sizes) == 3
    assert sizes[1] > 5_000
    assert [r["n"] for r in read_records(tmp_path)] == [0, 1, 2]


def test_restarted_writer_starts_a_new_segment_and_leaves_old_ones_untouched(tmp_path: Path) -> None:
    first = PredictionLogWriter(tmp_path, writer_id="replica-1")
    first.start()
    first.log(record(0))
    first.close()
    (old,) = list_segments(tmp_path)
    # Simulate the previous process having been killed mid-write.
    with old.open("ab") as handle:
        handle.write(b'{"n": 99, "ts": 1')
    torn = old.read_bytes()
    # Another writer whose id is a prefix must not disturb the numbering.
    other = PredictionLogWriter(tmp_path, writer_id="replica")
    other.log(record(100))
    other.close()

    second = PredictionLogWriter(tmp_path, writer_id="replica-1")
    second.start()
    second.log(record(1))
    second.close()

    assert old.read_bytes() == torn
    assert [p.name for p in list_segments(tmp_path)] == [
        "replica-000001.jsonl",
        "replica-1-000001.jsonl",
        "replica-1-000002.jsonl",
    ]
    assert [r["n"] for r in read_records(tmp_path)] == [100, 0, 1]


def test_directory_is_created_and_missing_directory_reads_as_empty(tmp_path: Path) -> None:
    assert list(read_records(tmp_path / "nothing")) == []
    assert list_segments(tmp_path / "nothing") == []
    target = tmp_path / "a" / "b"
    writer = PredictionLogWriter(target, writer_id="w")
    assert target.is_dir()
    writer.close()
    assert list_segments(target) == []  # no empty segment for a writer that logged nothing


# ---------------------------------------------------------------------- bounded queue and lifecycle
def test_overload_refuses_and_counts_records_beyond_max_pending(tmp_path: Path) -> None:
    writer = PredictionLogWriter(tmp_path, writer_id="ov", max_pending=10)
    accepted = [writer.log(record(n)) for n in range(15)]

    assert accepted == [True] * 10 + [False] * 5
    assert writer.stats == WriterStats(
        written=0,
        dropped_overload=5,
        dropped_io_error=0,
        pending=10,
        segments=0,
        bytes_written=0,
        last_error=None,
    )
    writer.start()
    writer.close()
    assert [r["n"] for r in read_records(tmp_path)] == list(range(10))
    stats = writer.stats
    assert (stats.written, stats.pending, stats.dropped_overload) == (10, 0, 5)


def test_close_flushes_everything_pending_without_waiting_for_the_interval(tmp_path: Path) -> None:
    writer = PredictionLogWriter(tmp_path, writer_id="cl", flush_interval=3600)
    writer.start()
    for n in range(1_000):
        writer.log(record(n))
    writer.close()

    assert [r["n"] for r in read_records(tmp_path)] == list(range(1_000))
    assert writer.stats.written == 1_000
    assert writer.stats.pending == 0


def test_log_after_close_is_refused_and_counted(tmp_path: Path) -> None:
    writer = PredictionLogWriter(tmp_path, writer_id="late")
    writer.start()
    writer.close()
    writer.close()  # idempotent
    assert writer.log(record(0)) is False
    assert writer.stats.dropped_closed == 1
    with pytest.raises(RuntimeError):
        writer.start()


def test_many_pending_records_wake_the_writer_before_the_interval(tmp_path: Path) -> None:
    writer = PredictionLogWriter(tmp_path, writer_id="wake", flush_interval=3600, max_pending=100)
    writer.start()
    try:
        for n in range(60):  # past max_pending // 2: the writer is woken, not left to its hour-long nap
            writer.log(record(n))
        wait_for(lambda: writer.stats.written >= 50)
    finally:
        writer.close()
    assert writer.stats.dropped_overload == 0


@pytest.mark.parametrize("writer_id", ["", "a/b", "../x", "-x", "a b"])
def test_writer_id_must_be_a_plain_file_name_part(tmp_path: Path, writer_id: str) -> None:
    with pytest.raises(ValueError, match="writer_id"):
        PredictionLogWriter(tmp_path, writer_id=writer_id)


def test_concurrent_log_from_many_threads_loses_nothing(tmp_path: Path) -> None:
    threads, per_thread = 8, 5_000
    writer = PredictionLogWriter(tmp_path, writer_id="mt", flush_interval=0.01, segment_bytes=256 * 1024)
    writer.start()
    barrier = threading.Barrier(threads)
    refused: list[int] = []

    def produce(t: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            if not writer.log({"ts": 1.0, "t": t, "i": i}):
                refused.append(i)

    workers = [threading.Thread(target=produce, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    writer.close()

    assert refused == []
    seen: dict[int, list[int]] = {t: [] for t in range(threads)}
    for rec in read_records(tmp_path):
        seen[rec["t"]].append(rec["i"])
    assert all(seen[t] == list(range(per_thread)) for t in range(threads))  # each thread's order kept
    stats = writer.stats
    assert (stats.written, stats.pending, stats.dropped_overload) == (threads * per_thread, 0, 0)
    assert stats.segments == len(list_segments(tmp_path)) > 1


# ---------------------------------------------------------------------- reading
def test_since_until_filter_on_ts(tmp_path: Path) -> None:
    writer = PredictionLogWriter(tmp_path, writer_id="ts")
    for n in range(10):
        writer.log({"ts": 100.0 + n, "n": n})
    writer.log({"n": "no-ts"})
    writer.close()

    def ns(**kw: float | None) -> list[Any]:
        return [r["n"] for r in read_records(tmp_path, **kw)]

    assert ns(since=103.0, until=106.0) == [3, 4, 5]  # since inclusive, until exclusive
    assert ns(since=108.5) == [9]
    assert ns(until=101.0) == [0]
    assert ns() == [*range(10), "no-ts"]  # no filter: records without ts are yielded too


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    good = [orjson.dumps(record(n)) + b"\n" for n in range(3)]
    (tmp_path / "w-000001.jsonl").write_bytes(b"".join(good) + orjson.dumps(record(3))[:17])
    (tmp_path / "w-000002.jsonl").write_bytes(orjson.dumps(record(4)) + b"\n")
    # A complete-looking JSON value without its newline is still a torn write.
    (tmp_path / "w-000003.jsonl").write_bytes(orjson.dumps(record(5)) + b"\n" + orjson.dumps(record(6)))

    assert [r["n"] for r in read_records(tmp_path)] == [0, 1, 2, 4, 5]


def test_garbage_in_the_middle_yields_only_good_lines_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = [
        orjson.dumps(record(0)),
        b'{"n": 1, "ts": 17000',  # a torn line that was later appended to (should never happen)
        b"\x00\x00\xff garbage",
        b"[1, 2, 3]",  # valid JSON but not a record
        orjson.dumps(record(4)),
    ]
    (tmp_path / "g-000001.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    with caplog.at_level(logging.WARNING, logger="workbench.telemetry.prediction_log"):
        assert [r["n"] for r in read_records(tmp_path)] == [0, 4]
    assert any("3 corrupt lines" in message for message in caplog.messages)


def test_list_segments_orders_by_writer_then_numeric_seq(tmp_path: Path) -> None:
    for name in ["b-000002.jsonl", "a-1000000.jsonl", "a-000010.jsonl", "b-000001.jsonl", "a-000009.jsonl"]:
        (tmp_path / name).write_bytes(b"")
    for name in ["notes.txt", "a-12.jsonl", "a-000001.jsonl.tmp"]:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_segments(tmp_path)] == [
        "a-000009.jsonl",
        "a-000010.jsonl",
        "a-1000000.jsonl",
        "b-000001.jsonl",
        "b-000002.jsonl",
    ]


# ---------------------------------------------------------------------- a real full disk
@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB tmpfs, so that writes fail with ENOSPC for real."""
    mount = shutil.which("mount")
    if os.geteuid() != 0 or mount is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    target = tmp_path / "small"
    target.mkdir()
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(target)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield target
    finally:
        umounted = subprocess.run(["umount", str(target)], capture_output=True, text=True)
        if umounted.returncode != 0:
            subprocess.run(["umount", "-l", str(target)], check=False)


def test_full_disk_drops_batches_keeps_files_clean_and_recovers(small_tmpfs: Path) -> None:
    ballast = small_tmpfs / "ballast.bin"
    ballast.write_bytes(b"\0" * (96 * 1024))
    log_dir = small_tmpfs / "log"
    writer = PredictionLogWriter(log_dir, writer_id="full", flush_interval=0.01, segment_bytes=48 * 1024)
    writer.start()
    payload = "z" * 900
    n = 0
    try:
        # Log in batches (each flushed as one or a few writes) until the disk refuses one.
        while writer.stats.dropped_io_error == 0:
            assert n < 5_000, "the 256 KiB disk never filled up"
            for _ in range(40):
                assert writer.log(record(n, payload=payload))
                n += 1
            wait_for(lambda: writer.stats.pending == 0)
        # Keep logging against the full disk: every batch fails, nothing raises.
        for _ in range(3):
            for _ in range(40):
                assert writer.log(record(n, payload=payload))
                n += 1
            wait_for(lambda: writer.stats.pending == 0)
        full = writer.stats
        assert full.last_error is not None
        assert "ENOSPC" in full.last_error
        assert "No space" in full.last_error
        assert full.dropped_io_error >= 120
        assert full.written + full.dropped_io_error == n

        # Every line of every segment is complete and parses: failed writes were truncated away.
        on_disk = [orjson.loads(line) for p in list_segments(log_dir) for line in segment_lines(p)]
        assert len(on_disk) == full.written
        assert full.bytes_written == sum(p.stat().st_size for p in list_segments(log_dir))

        # Free space: the next flush succeeds again.
        ballast.unlink()
        resumed_from = n
        for _ in range(20):
            assert writer.log(record(n, payload=payload))
            n += 1
        wait_for(lambda: writer.stats.pending == 0)
    finally:
        writer.close()

    after = writer.stats
    assert after.written == full.written + 20
    assert after.dropped_io_error == full.dropped_io_error
    numbers = [r["n"] for r in read_records(log_dir)]
    assert numbers[-20:] == list(range(resumed_from, resumed_from + 20))
    assert numbers == sorted(numbers)
    assert len(numbers) == after.written
    for path in list_segments(log_dir):
        for line in segment_lines(path):
            orjson.loads(line)
