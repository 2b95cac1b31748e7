"""The prediction log: a record per inference request, written off the request path.

A replica hands over one record per batch of requests answered together (``batch_record``), which
``read_records`` and the tail expand back into one record per request; a request refused before the
model ran, and any other writer, logs one record per line.

``PredictionLogWriter.log`` only appends the record (a plain dict, possibly holding numpy arrays) to an
in-memory queue under a lock, which costs about a microsecond and never touches the disk. A daemon
thread wakes every ``flush_interval`` (sooner when many records are waiting), serialises everything
pending with orjson and appends it to the current segment with a single ``os.write`` per batch.

Segments are files ``{writer_id}-{seq:06d}.jsonl``. A writer never appends to a segment it did not
create (it may have been left torn by a killed process): it continues after the highest existing seq.

Crash safety: a SIGKILLed process loses at most the records of the last flush interval. Its last
segment may end with a line missing its newline (a torn write); ``read_records`` skips such a line.
A failed write (ENOSPC, EIO...) is cut back with ``os.ftruncate`` to the last good size, so a partial
line never stays in the middle of a file; the batch is counted in ``dropped_io_error`` and the writer
tries again on the next flush, in case the disk frees up. Nothing ever raises into the caller of ``log``.
"""

from __future__ import annotations

import atexit
import errno
import logging
import os
import re
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from workbench.telemetry.batch_record import expand

__all__ = ["PredictionLogWriter", "WriterStats", "list_segments", "read_records"]

_ENCODE_SLICE = 256
logger = logging.getLogger(__name__)

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE
_WRITER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SEGMENT_NAME = re.compile(r"(?P<writer>.+)-(?P<seq>[0-9]{6,})\.jsonl")
#: Wake the writer thread early once this many records are waiting (capped by half of ``max_pending``).
WAKE_AT_PENDING = 5_000
#: Upper bound of one ``os.write``: a large backlog is written in several batches of about this size.
MAX_WRITE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class WriterStats:
    """Counters of one writer since it was created (records, unless the name says bytes)."""

    written: int
    dropped_overload: int
    dropped_io_error: int
    pending: int
    segments: int
    bytes_written: int
    last_error: str | None
    #: Records that orjson could not encode even with the fallbacks (e.g. integers beyond 64 bits).
    dropped_invalid: int = 0
    #: Records handed to ``log`` after ``close``.
    dropped_closed: int = 0


def _default(obj: Any) -> Any:
    """orjson fallback: a batch's joined inputs, and arrays orjson refuses (float16 on old orjson,
    non-contiguous, strings, objects...)."""
    json_value = getattr(obj, "json_value", None)  # ConcatenatedArrays, joined in the writer thread
    if callable(json_value):
        return json_value()
    tolist = getattr(obj, "tolist", None)  # numpy arrays and numpy scalars, without importing numpy
    if callable(tolist):
        return tolist()
    if isinstance(obj, set | frozenset):
        return list(obj)
    if isinstance(obj, bytes | bytearray | memoryview):
        return bytes(obj).decode("utf-8", "backslashreplace")
    return str(obj)


def _encode(records: list[dict[str, Any]]) -> tuple[list[bytes], int, str | None]:
    """Encode records as JSON lines; returns (lines, unserialisable count, last error)."""
    try:
        return [orjson.dumps(record, default=_default, option=_OPTIONS) for record in records], 0, None
    except (TypeError, ValueError):  # orjson.JSONEncodeError is a TypeError: find the bad ones
        lines: list[bytes] = []
        invalid, error = 0, None
        for record in records:
            try:
                lines.append(orjson.dumps(record, default=_default, option=_OPTIONS))
            except (TypeError, ValueError) as exc:
                invalid += 1
                error = _describe(exc)
        return lines, invalid, error


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{errno.errorcode.get(exc.errno, 'OSError')}: {exc}"
    return f"{type(exc).__name__}: {exc}"


class PredictionLogWriter:
    """Appends prediction records to JSON-lines segments from a background thread.

    ``log`` is thread-safe (event loop and worker threads may call it concurrently), O(1), never blocks
    on I/O and never raises. At most ``max_pending`` records wait in memory; beyond that ``log`` refuses
    and counts a drop, so a stalled disk costs records, never memory or latency.
    """

    def __init__(
        self,
        directory: Path,
        *,
        writer_id: str,
        flush_interval: float = 0.2,
        max_pending: int = 100_000,
        segment_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        if not _WRITER_ID.fullmatch(writer_id):
            raise ValueError(f"writer_id must match {_WRITER_ID.pattern!r}, got {writer_id!r}")
        if not flush_interval > 0:
            raise ValueError(f"flush_interval must be positive, got {flush_interval!r}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending!r}")
        if segment_bytes < 1:
            raise ValueError(f"segment_bytes must be at least 1, got {segment_bytes!r}")
        self.directory = Path(directory)
        self.writer_id = writer_id
        self.flush_interval = float(flush_interval)
        self.max_pending = max_pending
        self.segment_bytes = segment_bytes
        self.directory.mkdir(parents=True, exist_ok=True)

        self._lock = threading.Lock()
        self._pending: deque[dict[str, Any]] = deque()
        self._wake = threading.Event()
        self._wake_at = max(1, min(WAKE_AT_PENDING, max_pending // 2))
        self._thread: threading.Thread | None = None
        self._closed = False
        self._stopping = False

        # Writer-thread state (only touched by the writer thread, or by close() when it never started).
        self._seq = max((seq for _, seq in _segments_of(self.directory, writer_id)), default=0)
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0  # bytes of complete lines in the current segment: the size to truncate back to
        self._failing = False

        # Counters (under _lock).
        self._in_flight = 0
        self._written = 0
        self._dropped_overload = 0
        self._dropped_io_error = 0
        self._dropped_invalid = 0
        self._dropped_closed = 0
        self._segments = 0
        self._bytes_written = 0
        self._last_error: str | None = None
        _live_writers.add(self)

    # ------------------------------------------------------------------ request path
    def log(self, record: dict[str, Any]) -> bool:
        """Queue ``record`` for writing; False (and a counted drop) when the queue is full or closed."""
        try:
            with self._lock:
                if self._closed:
                    self._dropped_closed += 1
                    return False
                pending = self._pending
                if len(pending) >= self.max_pending:
                    self._dropped_overload += 1
                    return False
                pending.append(record)
                waiting = len(pending)
            if waiting == self._wake_at:
                self._wake.set()
            return True
        except Exception:  # pragma: no cover - the contract is "never raises"
            return False

    @property
    def stats(self) -> WriterStats:
        with self._lock:
            return WriterStats(
                written=self._written,
                dropped_overload=self._dropped_overload,
                dropped_io_error=self._dropped_io_error,
                pending=len(self._pending) + self._in_flight,
                segments=self._segments,
                bytes_written=self._bytes_written,
                last_error=self._last_error,
                dropped_invalid=self._dropped_invalid,
                dropped_closed=self._dropped_closed,
            )

    @property
    def current_segment(self) -> Path | None:
        """The segment being appended to, if one is open."""
        return self._path

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the background writer thread (a daemon)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("prediction log writer is closed")
            if self._thread is not None:
                raise RuntimeError("prediction log writer already started")
            self._thread = threading.Thread(
                target=self._run, name=f"prediction-log-{self.writer_id}", daemon=True
            )
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Write everything pending, close the segment and stop the thread (idempotent).

        Records logged after ``close`` begins are refused. If the thread does not finish within
        ``timeout`` (a hung disk), ``close`` returns anyway and the thread finishes on its own.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        self._stopping = True
        self._wake.set()
        if thread is None:
            self._flush()
            self._close_segment()
        else:
            thread.join(timeout)
            if thread.is_alive():
                logger.warning(
                    "prediction log %s: writer thread still busy after %.1fs; %d records pending",
                    self.writer_id,
                    timeout,
                    self.stats.pending,
                )
        _live_writers.discard(self)

    def __enter__(self) -> PredictionLogWriter:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        while True:
            if not self._stopping and len(self._pending) < self._wake_at:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
            stopping = self._stopping  # read before draining: close() refuses new records before setting it
            try:
                self._flush()
            except Exception as exc:  # pragma: no cover - keep logging alive whatever happens
                logger.exception("prediction log %s: unexpected error in the writer thread", self.writer_id)
                with self._lock:
                    self._last_error = _describe(exc)
            if stopping:
                break
        self._close_segment()

    def _flush(self) -> None:
        """Serialise and write everything pending, in batches of at most ``MAX_WRITE_BYTES``.

        Records are encoded a slice at a time with one comprehension (the interpreter's per-record
        bookkeeping, not orjson, was most of the cost: 5 µs a record against 0.3 µs), and the GIL is
        handed back between slices so the serving thread never waits long for it.
        """
        with self._lock:
            if not self._pending:
                return
            batch = list(self._pending)
            self._pending = deque()
            self._in_flight = len(batch)

        chunk: list[bytes] = []
        chunk_bytes = 0
        invalid = 0
        invalid_error: str | None = None
        for first in range(0, len(batch), _ENCODE_SLICE):
            if first:
                time.sleep(0)  # hand the GIL back between slices
            records = batch[first : first + _ENCODE_SLICE]
            lines, bad, error = _encode(records)
            invalid += bad
            invalid_error = error or invalid_error
            slice_bytes = sum(map(len, lines))
            if (
                chunk_bytes + slice_bytes <= MAX_WRITE_BYTES
                and self._size + chunk_bytes + slice_bytes <= self.segment_bytes
            ):
                chunk.extend(lines)  # the usual case: the whole slice fits the current write
                chunk_bytes += slice_bytes
                continue
            for index, line in enumerate(lines):
                if chunk and (
                    chunk_bytes + len(line) > MAX_WRITE_BYTES
                    or self._size + chunk_bytes + len(line) > self.segment_bytes
                ):
                    # Not yet written if this write fails: this slice's lines from here, and later slices.
                    left = (len(lines) - index) + (len(batch) - first - len(records))
                    written = self._write(chunk, chunk_bytes, remaining=left)
                    chunk, chunk_bytes = [], 0
                    if not written:
                        break  # the rest of the batch was counted as dropped: try again on the next flush
                chunk.append(line)
                chunk_bytes += len(line)
            else:
                continue
            chunk = []
            break
        if chunk:
            self._write(chunk, chunk_bytes, remaining=0)
        with self._lock:
            self._in_flight = 0
            if invalid:
                self._dropped_invalid += invalid
                self._last_error = invalid_error
        if invalid:
            logger.warning("prediction log %s: dropped %d unserialisable records", self.writer_id, invalid)

    def _write(self, lines: list[bytes], size: int, *, remaining: int) -> bool:
        """Append ``lines`` in one ``os.write``; on failure drop them and the ``remaining`` records of the batch."""
        if self._fd is not None and self._size > 0 and self._size + size > self.segment_bytes:
            self._close_segment()
        fd: int | None = None
        try:
            fd = self._fd if self._fd is not None else self._open_segment()
            data = b"".join(lines)
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                if n <= 0:
                    raise OSError(errno.EIO, "write made no progress")
                view = view[n:]
        except OSError as exc:
            if fd is not None:
                self._truncate_back(fd)
            dropped = len(lines) + remaining
            with self._lock:
                self._dropped_io_error += dropped
                self._in_flight -= dropped
                self._last_error = _describe(exc)
            if not self._failing:
                logger.warning(
                    "prediction log %s: write failed (%s); dropping records until it succeeds again",
                    self.writer_id,
                    _describe(exc),
                )
                self._failing = True
            return False
        self._size += size
        with self._lock:
            self._written += len(lines)
            self._in_flight -= len(lines)
            self._bytes_written += size
        if self._failing:
            logger.warning("prediction log %s: writing again", self.writer_id)
            self._failing = False
        if self._size >= self.segment_bytes:
            self._close_segment()
        return True

    def _truncate_back(self, fd: int) -> None:
        try:
            os.ftruncate(fd, self._size)
        except OSError:
            # Could not cut the partial line off: abandon the segment, so the torn line stays its last one
            # (which readers skip), and start a fresh segment on the next flush.
            logger.warning(
                "prediction log %s: could not truncate %s; abandoning it", self.writer_id, self._path
            )
            self._close_segment(sync=False)

    def _open_segment(self) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        while True:
            self._seq += 1
            path = self.directory / f"{self.writer_id}-{self._seq:06d}.jsonl"
            try:
                fd = os.open(path, flags, 0o644)
            except FileExistsError:  # another process with the same writer_id: never share a segment
                continue
            break
        self._fd, self._path, self._size = fd, path, 0
        with self._lock:
            self._segments += 1
        return fd

    def _close_segment(self, *, sync: bool = True) -> None:
        fd, self._fd, self._path, self._size = self._fd, None, None, 0
        if fd is None:
            return
        try:
            if sync:
                os.fsync(fd)
        except OSError as exc:
            with self._lock:
                self._last_error = _describe(exc)
        finally:
            os.close(fd)


_live_writers: weakref.WeakSet[PredictionLogWriter] = weakref.WeakSet()


@atexit.register
def _close_live_writers() -> None:
    """On a normal interpreter exit, write what is pending instead of losing it with the daemon thread."""
    for writer in list(_live_writers):
        try:
            writer.close(timeout=2.0)
        except Exception:  # pragma: no cover
            logger.exception("prediction log %s: close at exit failed", writer.writer_id)


# ---------------------------------------------------------------------- reading
def _segments_of(directory: Path, writer_id: str | None = None) -> list[tuple[str, int]]:
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for name in names:
        match = _SEGMENT_NAME.fullmatch(name)
        if match and (writer_id is None or match["writer"] == writer_id):
            found.append((match["writer"], int(match["seq"])))
    return found


def list_segments(directory: Path) -> list[Path]:
    """All segments in ``directory``, ordered by writer id then sequence number."""
    directory = Path(directory)
    return [
        directory / f"{writer}-{seq:06d}.jsonl"
        for writer, seq in sorted(_segments_of(directory))
        if (directory / f"{writer}-{seq:06d}.jsonl").is_file()
    ]


def read_records(
    directory: Path, *, since: float | None = None, until: float | None = None
) -> Iterator[dict[str, Any]]:
    """Yield every record of every segment, in file order, with ``since <= ts < until`` when given.

    A last line without its newline (a torn write, or a write in progress) is skipped; a corrupt line
    anywhere else is skipped with a warning. Records without a numeric ``ts`` are skipped when filtering.
    """
    for path in list_segments(directory):
        yield from _read_segment(path, since, until)


def _read_segment(path: Path, since: float | None, until: float | None) -> Iterator[dict[str, Any]]:
    filtering = since is not None or until is not None
    corrupt = 0
    try:
        handle = path.open("rb")
    except FileNotFoundError:  # removed since it was listed (retention)
        return
    with handle:
        for line in handle:
            if not line.endswith(b"\n"):
                break  # torn last line
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                corrupt += 1
                continue
            if not isinstance(record, dict):
                corrupt += 1
                continue
            for one in expand(record):  # a batch's line: one record per request
                if filtering:
                    ts = one.get("ts")
                    if isinstance(ts, bool) or not isinstance(ts, int | float):
                        continue
                    if (since is not None and ts < since) or (until is not None and ts >= until):
                        continue
                yield one
    if corrupt:
        logger.warning("prediction log: skipped %d corrupt lines in %s", corrupt, path)
