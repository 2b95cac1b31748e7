"""A batch's prediction-log line, written from real decoded requests and read back per request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from workbench.serving.codec import decode_mlflow, decode_oip
from workbench.serving.schema import ColumnSpec, ModelSchema, TensorSpec
from workbench.telemetry import PredictionLogWriter, read_records
from workbench.telemetry.batch_record import BatchRecord, expand
from workbench.telemetry.tail import PredictionLogTail

SCHEMA = ModelSchema(columns=(ColumnSpec("x", "double"), ColumnSpec("n", "long"), ColumnSpec("f", "float")))
HEAD = {"endpoint": "e", "model": "m", "version": 3, "replica": "r0", "inference_ms": 1.5, "batch_size": 3}


def _request(rows: list[list[Any]]) -> bytes:
    return orjson.dumps({"dataframe_split": {"columns": ["x", "n", "f"], "data": rows}})


def _batch(requests: list[list[list[Any]]], *, sampled: bool = True) -> dict[str, Any]:
    """Decode each request and add it to one batch line, as the replica does; the completed line."""
    record = BatchRecord(HEAD, len(requests), sampled=sampled)
    line = None
    for index, rows in enumerate(requests):
        decoded = decode_mlflow(_request(rows), SCHEMA)
        assert decoded.columns is not None
        outputs = {"p": np.arange(decoded.rows, dtype=np.float32) + index}
        assert line is None  # not complete before the last request
        line = record.add(
            100.0 + index,
            f"id-{index}",
            200,
            index == 1,
            decoded.rows,
            2.0 + index,
            0.5,
            decoded.columns,
            outputs,
        )
    assert line is not None
    return line


def _written(line: dict[str, Any], tmp_path: Path) -> list[dict[str, Any]]:
    with PredictionLogWriter(tmp_path, writer_id="w") as writer:
        writer.log(line)
    return list(read_records(tmp_path))


def test_a_batch_is_one_line_and_reads_back_as_one_record_per_request(tmp_path: Path) -> None:
    line = _batch([[[1.25, 7, 0.5]], [[2.5, 2**40, 1.5], [3.75, -1, 2.5]], [[4.0, 0, 3.5]]])
    records = _written(line, tmp_path)
    assert len(list(tmp_path.glob("*.jsonl"))) == 1
    assert (tmp_path / "w-000001.jsonl").read_bytes().count(b"\n") == 1
    assert [r["request_id"] for r in records] == ["id-0", "id-1", "id-2"]
    assert [r["ts"] for r in records] == [100.0, 101.0, 102.0]
    assert [r["rows"] for r in records] == [1, 2, 1]
    assert [r["shadow"] for r in records] == [False, True, False]
    assert all(r["model"] == "m" and r["version"] == 3 and r["batch_size"] == 3 for r in records)
    assert records[1]["inputs"] == {"x": [2.5, 3.75], "n": [2**40, -1], "f": [1.5, 2.5]}
    assert records[0]["inputs"] == {"x": [1.25], "n": [7], "f": [0.5]}
    assert records[1]["outputs"] == {"p": [1.0, 2.0]}
    assert records[2]["outputs"] == {"p": [2.0]}
    # Each column keeps its decoded type: the long column is written as integers, not floats.
    assert b'"n":[7,1099511627776,-1,0]' in (tmp_path / "w-000001.jsonl").read_bytes()


def test_integers_beyond_float64_precision_are_joined_exactly(tmp_path: Path) -> None:
    big = 2**60 + 1  # a float64 block holds it as 2**60: the join must take the decoded int column
    record = BatchRecord(HEAD, 2, sampled=True)
    line = None
    for index, n in enumerate((big, 3)):
        decoded = decode_mlflow(orjson.dumps({"dataframe_records": [{"x": 1.0, "n": n, "f": 0.5}]}), SCHEMA)
        assert decoded.columns is not None
        assert int(decoded.columns["n"][0]) == n
        line = record.add(1.0, f"id-{index}", 200, False, 1, 1.0, 0.1, decoded.columns, {"p": np.ones(1)})
    assert line is not None
    assert [r["inputs"]["n"] for r in _written(line, tmp_path)] == [[big], [3]]


def test_requests_the_block_path_does_not_decode_are_joined_in_the_writer(tmp_path: Path) -> None:
    schema = ModelSchema(columns=(ColumnSpec("s", "string"), ColumnSpec("x", "double")))
    record = BatchRecord(HEAD, 2, sampled=True)
    line = None
    for index, (text, value) in enumerate([("a", 1.0), ("b", 2.0)]):
        body = orjson.dumps({"dataframe_records": [{"s": text, "x": value}]})
        decoded = decode_mlflow(body, schema)
        assert decoded.columns is not None
        line = record.add(1.0, f"id-{index}", 200, False, 1, 1.0, 0.1, decoded.columns, {"p": np.ones(1)})
    assert line is not None
    records = _written(line, tmp_path)
    assert [r["inputs"] for r in records] == [{"s": ["a"], "x": [1.0]}, {"s": ["b"], "x": [2.0]}]


def test_tensor_requests_of_different_widths_are_written_one_part_per_request(tmp_path: Path) -> None:
    schema = ModelSchema(tensor=TensorSpec("t", "float32", (-1, -1)))
    record = BatchRecord(HEAD, 2, sampled=True)
    line = None
    for index, width in enumerate((2, 3)):
        body = orjson.dumps(
            {"inputs": [{"name": "t", "datatype": "FP32", "shape": [1, width], "data": [1.0] * width}]}
        )
        decoded = decode_oip(body, schema)
        line = record.add(
            1.0, f"id-{index}", 200, False, 1, 1.0, 0.1, {"matrix": decoded.matrix}, {"p": np.ones(1)}
        )
    assert line is not None
    records = _written(line, tmp_path)
    assert [r["inputs"] for r in records] == [{"matrix": [[1.0, 1.0]]}, {"matrix": [[1.0, 1.0, 1.0]]}]
    assert [r["outputs"] for r in records] == [{"p": [1.0]}, {"p": [1.0]}]


def test_an_unsampled_batch_has_no_inputs_and_a_probe_is_not_waited_for(tmp_path: Path) -> None:
    record = BatchRecord(HEAD, 3, sampled=False)
    decoded = decode_mlflow(_request([[1.0, 1, 1.0]]), SCHEMA)
    assert record.add(1.0, "a", 200, False, 1, 1.0, 0.1, decoded.columns, {"p": np.ones(1)}) is None
    assert record.skip() is None  # the probe: one fewer to wait for
    line = record.add(2.0, "b", 200, False, 1, 1.0, 0.1, decoded.columns, {"p": np.ones(1)})
    assert line is not None
    records = _written(line, tmp_path)
    assert [r["request_id"] for r in records] == ["a", "b"]
    assert all("inputs" not in r and "outputs" not in r for r in records)


def test_time_filters_and_the_tail_apply_to_each_request_of_a_batch(tmp_path: Path) -> None:
    line = _batch([[[1.0, 1, 1.0]], [[2.0, 2, 2.0]], [[3.0, 3, 3.0]]])
    with PredictionLogWriter(tmp_path, writer_id="w") as writer:
        writer.log({"ts": 99.0, "request_id": "alone", "status": 400, "rows": 0})
        writer.log(line)
    assert [r["request_id"] for r in read_records(tmp_path, since=101.0)] == ["id-1", "id-2"]
    assert [r["request_id"] for r in read_records(tmp_path, until=101.0)] == ["alone", "id-0"]
    assert [r["request_id"] for r in PredictionLogTail(tmp_path).poll()] == ["alone", "id-0", "id-1", "id-2"]


@pytest.mark.parametrize(
    "requests",
    [
        {
            "ts": [1.0, 2.0],
            "request_id": ["a"],
            "status": [200],
            "shadow": [False],
            "rows": [1],
            "latency_ms": [1.0],
            "queue_ms": [0.1],
        },
        {
            "ts": [1.0],
            "request_id": ["a"],
            "status": [200],
            "shadow": [False],
            "rows": ["1"],
            "latency_ms": [1.0],
            "queue_ms": [0.1],
        },
        {"ts": [1.0], "request_id": ["a"]},
    ],
)
def test_a_batch_line_that_does_not_hold_together_yields_no_records(requests: dict[str, Any]) -> None:
    assert list(expand({"ts": 1.0, "requests": requests})) == []


def test_consecutive_spans_of_one_batch_join_by_one_slice_and_others_by_copy() -> None:
    from workbench.telemetry.batch_record import ConcatenatedArrays, RowSpan

    batch = {"id": np.arange(6), "x": np.arange(6) * 0.5}
    joined = ConcatenatedArrays()
    joined.parts = [RowSpan(batch, 1, 3), RowSpan(batch, 3, 4)]
    whole = joined.joined_now()
    assert isinstance(whole, dict)
    assert whole["id"].tolist() == [1, 2, 3]
    assert np.shares_memory(whole["x"], batch["x"])  # sliced, not copied
    gap = ConcatenatedArrays()
    gap.parts = [RowSpan(batch, 0, 1), RowSpan(batch, 4, 6)]  # a request in between was not logged
    kept = gap.joined_now()
    result = kept.json_value() if isinstance(kept, ConcatenatedArrays) else kept
    assert isinstance(result, dict)
    assert result["id"].tolist() == [0, 4, 5]
    mixed = ConcatenatedArrays()
    mixed.parts = [RowSpan(batch, 0, 2), {"id": np.array([9]), "x": np.array([1.0])}]
    kept = mixed.joined_now()
    result = kept.json_value() if isinstance(kept, ConcatenatedArrays) else kept
    assert isinstance(result, dict)
    assert result["id"].tolist() == [0, 1, 9]
