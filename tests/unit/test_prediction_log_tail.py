"""Tailing the prediction log: only new records, never a half-written line, across segments."""

from __future__ import annotations

from pathlib import Path

import orjson

from workbench.telemetry import PredictionLogWriter
from workbench.telemetry.tail import PredictionLogTail


def _write(directory: Path, writer_id: str, numbers: range, segment_bytes: int = 64 * 1024 * 1024) -> None:
    writer = PredictionLogWriter(directory, writer_id=writer_id, segment_bytes=segment_bytes)
    for n in numbers:
        writer.log({"ts": float(n), "n": n})
    writer.close()


def test_each_poll_returns_only_what_is_new(tmp_path: Path) -> None:
    tail = PredictionLogTail(tmp_path)
    assert tail.poll() == []
    _write(tmp_path, "r1", range(10))
    assert [r["n"] for r in tail.poll()] == list(range(10))
    assert tail.poll() == []
    _write(tmp_path, "r1", range(10, 15))  # a restarted writer: a new segment
    _write(tmp_path, "r2", range(100, 103))  # another replica
    assert sorted(r["n"] for r in tail.poll()) == [*range(10, 15), 100, 101, 102]


def test_a_line_still_being_written_waits_for_its_newline(tmp_path: Path) -> None:
    segment = tmp_path / "r1-000001.jsonl"
    segment.write_bytes(b'{"n": 1}\n{"n": 2')
    tail = PredictionLogTail(tmp_path)
    assert [r["n"] for r in tail.poll()] == [1]
    with segment.open("ab") as handle:
        handle.write(b'}\n{"n": 3}\n')
    assert [r["n"] for r in tail.poll()] == [2, 3]


def test_rotation_across_many_segments_loses_nothing(tmp_path: Path) -> None:
    tail = PredictionLogTail(tmp_path)
    _write(tmp_path, "r1", range(500), segment_bytes=2048)
    seen = [r["n"] for r in tail.poll()]
    assert sorted(seen) == list(range(500))
    assert len(list(tmp_path.glob("*.jsonl"))) > 3


def test_segments_closed_before_the_window_are_skipped_unread(tmp_path: Path) -> None:
    import os

    _write(tmp_path, "old", range(5))
    old = next(tmp_path.glob("old-*.jsonl"))
    os.utime(old, (1000.0, 1000.0))
    _write(tmp_path, "new", range(100, 103))
    tail = PredictionLogTail(tmp_path, modified_since=2000.0)
    assert sorted(r["n"] for r in tail.poll()) == [100, 101, 102]
    with old.open("ab") as handle:  # a segment written again after all is read from there on
        handle.write(b'{"ts": 5.0, "n": 5}\n')
    assert [r["n"] for r in tail.poll()] == [5]


def test_a_first_read_seeks_to_the_window_instead_of_parsing_the_whole_segment(tmp_path: Path) -> None:
    from workbench.telemetry.tail import SEEK_MARGIN_S, seek_time

    _write(tmp_path, "r1", range(100_000))  # ts = n: one record a second
    (segment,) = list(tmp_path.glob("*.jsonl"))
    size = segment.stat().st_size
    with segment.open("rb") as handle:
        offset = seek_time(handle, size, 90_000.0)
        handle.seek(offset)
        first = orjson.loads(handle.readline())["n"]
    assert 89_000 < first <= 90_000  # within one 4 KiB probe of the wanted record, never after it
    tail = PredictionLogTail(tmp_path, modified_since=99_990.0)
    numbers = [r["n"] for r in tail.poll()]
    assert numbers[-1] == 99_999
    assert min(numbers) >= 99_990 - SEEK_MARGIN_S - 100  # not the 100k records before
    assert 99_990 in numbers
    with segment.open("rb") as handle:
        assert seek_time(handle, size, 0.0) == 0
        assert seek_time(handle, size, 1e12) >= size - 4096
