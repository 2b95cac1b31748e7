"""One prediction-log line per inference batch, read back as one record per request.

A replica answering one-row requests at 15-20k req/s cannot afford a JSON line per request: building
the record, and encoding its inputs (a small array per column), took a fifth of the serving process's
GIL. Requests answered by the same forward pass share their model, version, batch and timing, and their
inputs and outputs concatenate into one array per column, so the replica logs them as one line:

    {"ts": ..., "endpoint": ..., "model": ..., "version": ..., "replica": ..., "inference_ms": ...,
     "batch_size": n, "requests": {"ts": [...], "request_id": [...], "status": [...], "shadow": [...],
     "rows": [...], "latency_ms": [...], "queue_ms": [...], "key": [...]},
     "inputs": {column: [all rows of the batch]}, "outputs": {name: [all rows]}}

Readers never see that shape: ``expand`` turns the line back into per-request records, the shape a
request refused before the model ran is still logged in (``read_records`` and ``PredictionLogTail``
call it), rows sliced
in the order of ``requests``. Inputs and outputs are sampled per batch (``log_sample_rate``), all of a
batch's requests or none.

``key`` is each request's routing key (``x-workbench-routing-key``, None without one): what an A/B
experiment assigns by, so the log says which unit saw which version. A batch where no request had a
key leaves the list out, so traffic without keys pays nothing for it.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["BatchRecord", "ConcatenatedArrays", "RowSpan", "expand"]

#: Per-request fields of a batch line, in the order ``BatchRecord.add`` takes them.
REQUEST_FIELDS = ("ts", "request_id", "status", "shadow", "rows", "latency_ms", "queue_ms")
#: Per-request fields a line may leave out (every request of the batch without one).
OPTIONAL_FIELDS = ("key",)


class RowSpan:
    """Rows ``start:end`` of a batch's columns, not yet sliced: what one caller of a batch gets of the
    inputs a runner prepared (the features a lookup fetched). Slicing every column for every caller cost
    the event loop more than the lookup; a line whose parts are consecutive spans of one batch's columns
    is joined by slicing each column once (``ConcatenatedArrays.joined_now``)."""

    __slots__ = ("end", "source", "start")

    def __init__(self, source: dict[str, Any], start: int, end: int) -> None:
        self.source = source
        self.start = start
        self.end = end

    def sliced(self) -> dict[str, Any]:
        return {name: column[self.start : self.end] for name, column in self.source.items()}


def _spans_joined(parts: list[Any]) -> dict[str, Any] | None:
    """Consecutive spans of one batch's columns, as one slice per column; None if they are not."""
    first = parts[0]
    if not isinstance(first, RowSpan):
        return None
    end = first.start
    for part in parts:
        if not isinstance(part, RowSpan) or part.source is not first.source or part.start != end:
            return None
        end = part.end
    return {name: column[first.start : end] for name, column in first.source.items()}


class ConcatenatedArrays:
    """The requests' inputs (or outputs) of one batch, joined into one array per column.

    ``joined_now`` does the cheap joins as the batch completes: one concatenate of the decoder's blocks,
    or of one output array per request, a few microseconds for the batch. The per-request arrays are
    then released at once instead of waiting in the log queue, where tens of thousands of small objects
    made the garbage collector's pauses the replica's p99. Anything else (columns without a block,
    strings) is joined column by column in the writer thread, off the request path, when it encodes
    them. Parts that cannot be joined (different columns, or tensors of different shapes) are written
    one per request, which ``expand`` also reads.
    """

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[Any] = []  # dicts of columns, or RowSpans

    def joined_now(self) -> dict[str, Any] | list[dict[str, Any]] | ConcatenatedArrays:
        parts = self.parts
        if any(isinstance(part, RowSpan) for part in parts):
            joined_spans = _spans_joined(parts)
            if joined_spans is not None:
                return joined_spans
            parts = self.parts = [p.sliced() if isinstance(p, RowSpan) else p for p in parts]
        if len(parts) == 1:
            single: dict[str, Any] = parts[0]
            return single
        names = parts[0].keys()
        if not all(part.keys() == names for part in parts):
            return parts  # written one per request
        joined = _join_blocks(parts)
        if joined is None and len(names) == 1:
            joined = _join_single(parts)
        return self if joined is None else joined

    def json_value(self) -> dict[str, Any] | list[dict[str, Any]]:
        """Column by column, in the writer thread: what ``joined_now`` left (same columns in every part)."""
        parts = self.parts
        try:
            return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        except (ValueError, TypeError):  # shapes that do not stack along rows
            return parts


def _join_single(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A one-array part per request (a model's single output, a tensor input): one concatenate."""
    (name,) = parts[0]
    try:
        return {name: np.concatenate([part[name] for part in parts])}
    except (ValueError, TypeError):
        return None


#: Integers a float64 holds exactly: an integer column joined through the float block must stay below.
_EXACT_INTEGERS = float(2**53)


def _join_blocks(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """One array per column from the decoder's per-request blocks (``BlockColumns.block``), if all have
    one: a single concatenate for the batch, then one cast per column type that is not the block's
    float64 (a cast per column cost a busy replica more than the rest of its prediction log)."""
    blocks: list[Any] = [getattr(part, "block", None) for part in parts]
    if any(block is None for block in blocks):
        return None
    first = parts[0]
    try:
        block = np.concatenate(blocks, axis=1)
    except ValueError:
        return None
    if block.ndim != 2 or block.shape[0] != len(first):
        return None
    layout = _layout(first)
    joined: dict[str, Any] = dict(zip(layout.names, block, strict=True))
    for dtype, take, names, integer in layout.casts:
        rows = block.take(take, axis=0)
        if integer and not (np.abs(rows) < _EXACT_INTEGERS).all():
            return None
        joined.update(zip(names, rows.astype(dtype), strict=True))
    return joined


_dtype_of = operator.attrgetter("dtype")


class _Layout:
    """Which of a block's rows are cast to what, for one set of decoded columns (computed once)."""

    __slots__ = ("casts", "names")

    def __init__(self, names: tuple[str, ...], dtypes: tuple[np.dtype[Any], ...]) -> None:
        self.names = names
        groups: dict[np.dtype[Any], list[int]] = {}
        for index, dtype in enumerate(dtypes):
            if dtype != np.float64:
                groups.setdefault(dtype, []).append(index)
        self.casts = [
            (dtype, np.array(indices, dtype=np.intp), [names[i] for i in indices], dtype.kind in "iub")
            for dtype, indices in groups.items()
        ]


_LAYOUTS: dict[tuple[tuple[str, ...], tuple[np.dtype[Any], ...]], _Layout] = {}
_MAX_LAYOUTS = 256


def _layout(first: dict[str, Any]) -> _Layout:
    names = tuple(first)
    dtypes = tuple(map(_dtype_of, first.values()))
    key = (names, dtypes)
    layout = _LAYOUTS.get(key)
    if layout is None:
        if len(_LAYOUTS) >= _MAX_LAYOUTS:  # a replica serves one schema; never grow without bound
            _LAYOUTS.clear()
        layout = _LAYOUTS[key] = _Layout(names, dtypes)
    return layout


class BatchRecord:
    """The log line of one batch, filled in as each of its ``expected`` requests finishes.

    Each request costs one tuple append on the request path; the per-field lists of the line are built
    once, by transposing, when the batch is complete.
    """

    __slots__ = ("_requests", "expected", "head", "inputs", "lookup", "outputs")

    def __init__(self, head: dict[str, Any], expected: int, *, sampled: bool) -> None:
        self.head = head
        self.expected = expected
        self._requests: list[tuple[Any, ...]] = []
        self.inputs = ConcatenatedArrays() if sampled else None
        self.outputs = ConcatenatedArrays() if sampled else None
        self.lookup: ConcatenatedArrays | None = None

    def add(
        self,
        ts: float,
        request_id: str,
        status: int,
        shadow: bool,
        rows: int,
        latency_ms: float,
        queue_ms: float,
        inputs: dict[str, Any] | RowSpan | None,
        outputs: dict[str, Any] | None,
        key: str | None = None,
        lookup: dict[str, Any] | RowSpan | None = None,
    ) -> dict[str, Any] | None:
        """Add one finished request; the complete line once the last of the batch is in, else None.

        ``lookup`` is what a feature lookup adds per row (feature age, defaults used), when it ran."""
        requests = self._requests
        requests.append((ts, request_id, status, shadow, rows, latency_ms, queue_ms, key))
        if self.inputs is not None and self.outputs is not None:
            self.inputs.parts.append(inputs if inputs is not None else {})
            self.outputs.parts.append(outputs if outputs is not None else {})
            if lookup is not None:
                if self.lookup is None:
                    self.lookup = ConcatenatedArrays()
                self.lookup.parts.append(lookup)
        return self._line() if len(requests) >= self.expected else None

    def skip(self) -> dict[str, Any] | None:
        """One of the batch's requests is not logged (a probe): the line no longer waits for it."""
        self.expected -= 1
        return self._line() if len(self._requests) >= self.expected else None

    def _line(self) -> dict[str, Any] | None:
        if not self._requests:
            return None
        line = dict(self.head)
        line["ts"] = self._requests[0][0]
        columns = list(zip(*self._requests, strict=True))
        fields = {name: list(values) for name, values in zip(REQUEST_FIELDS, columns, strict=False)}
        keys = columns[len(REQUEST_FIELDS)]
        if any(key is not None for key in keys):
            fields["key"] = list(keys)
        line["requests"] = fields
        if self.inputs is not None and self.outputs is not None:
            line["inputs"] = self.inputs.joined_now()
            line["outputs"] = self.outputs.joined_now()
            if self.lookup is not None and len(self.lookup.parts) == len(self.inputs.parts):
                line["lookup"] = self.lookup.joined_now()
        return line


def expand(record: dict[str, Any], *, inputs: bool = True, outputs: bool = True) -> Iterator[dict[str, Any]]:
    """The per-request records of a line: itself for a single request, one per request for a batch.

    ``inputs=False`` leaves each request's inputs (and feature lookup) out, ``outputs=False`` its outputs:
    slicing every column per request is most of what expanding costs, and readers that only count or
    index requests never look at them.

    A batch line that does not hold together (lists of different lengths, rows that do not add up) is
    skipped whole rather than attributing one request's rows to another.
    """
    requests = record.get("requests")
    if not isinstance(requests, dict):
        yield record
        return
    columns: list[list[Any]] = []
    for name in REQUEST_FIELDS:
        values = requests.get(name)
        if not isinstance(values, list):
            return
        columns.append(values)
    count = len(columns[0])
    optional = {name: requests[name] for name in OPTIONAL_FIELDS if name in requests}
    if any(len(values) != count for values in columns) or any(
        not isinstance(values, list) or len(values) != count for values in optional.values()
    ):
        return
    logged, answered, lookup = record.get("inputs"), record.get("outputs"), record.get("lookup")
    if not inputs:
        lookup = None
    shared = {k: v for k, v in record.items() if k not in ("requests", "inputs", "outputs", "lookup", "ts")}
    offset = 0
    for index in range(count):
        rows = columns[4][index]
        if not isinstance(rows, int) or rows < 0:
            return
        one = dict(shared)
        for name, values in zip(REQUEST_FIELDS, columns, strict=True):
            one[name] = values[index]
        for name, values in optional.items():
            one[name] = values[index]
        if logged is not None:
            if inputs:
                one["inputs"] = _share(logged, index, offset, rows)
            if outputs:
                one["outputs"] = _share(answered, index, offset, rows)
            if lookup is not None:
                one["lookup"] = _share(lookup, index, offset, rows)
        offset += rows
        yield one


def _share(values: Any, index: int, offset: int, rows: int) -> Any:
    if isinstance(values, list):  # one part per request
        return values[index] if index < len(values) else None
    if not isinstance(values, dict):
        return None
    return {name: column[offset : offset + rows] for name, column in values.items()}
