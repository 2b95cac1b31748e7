"""Request decoding (OIP v2, MLflow scoring JSON) and response encoding, the request path of a replica."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import numpy as np
import orjson
import pytest

from workbench.errors import BadRequestError, InvalidInputError
from workbench.serving.codec import Decoded, decode_mlflow, decode_oip, encode_mlflow, encode_oip
from workbench.serving.schema import (
    ACCEPTED_DATATYPES,
    COLUMN_NUMPY_DTYPES,
    COLUMN_TYPES,
    OIP_DATATYPES,
    ColumnSpec,
    ModelSchema,
    TensorSpec,
    numpy_dtype,
    schema_from_signature,
)

# The example signature: a double and a long, both required.
SIG = schema_from_signature(
    {
        "inputs": '[{"type": "double", "name": "a", "required": true}, '
        '{"type": "long", "name": "c", "required": true}]',
        "outputs": '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1]}}]',
        "params": None,
    }
)
WIDE = ModelSchema(columns=tuple(ColumnSpec(f"f{i}", "double") for i in range(20)))
OPTIONAL = ModelSchema(
    columns=(
        ColumnSpec("a", "double"),
        ColumnSpec("b", "double", required=False),
        ColumnSpec("n", "long", False),
    )
)
TENSOR = ModelSchema(tensor=TensorSpec("features", "float32", (-1, 3)))
UNSIGNED = ModelSchema()

A = [1.5, 2.5, -3.0]
C = [3, 4, 5]
EXPECTED = np.array([[1.5, 3], [2.5, 4], [-3.0, 5]], dtype=np.float32)


def oip(*inputs: Any, **extra: Any) -> bytes:
    return orjson.dumps({"inputs": list(inputs), **extra})


def col(name: str, data: Any, datatype: str = "FP64", shape: Any = None) -> dict[str, Any]:
    return {
        "name": name,
        "shape": shape if shape is not None else [len(data)],
        "datatype": datatype,
        "data": data,
    }


def nan_body(document: Any) -> bytes:
    """JSON as Python's json module writes it: NaN and Infinity literals included."""
    return json.dumps(document).encode()


def refused(call: Any, *words: str, cls: type[Exception] = InvalidInputError) -> str:
    with pytest.raises(cls) as info:
        call()
    assert type(info.value) is cls, f"{type(info.value).__name__}: {info.value}"
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return message


# --------------------------------------------------------------------------------------------- OIP: columns


def test_oip_per_column() -> None:
    decoded = decode_oip(oip(col("a", A), col("c", C, "INT64")), SIG)
    assert isinstance(decoded, Decoded)
    assert decoded.rows == 3
    assert decoded.matrix.dtype == np.float32
    assert decoded.matrix.flags.c_contiguous
    np.testing.assert_array_equal(decoded.matrix, EXPECTED)
    assert decoded.columns is not None
    assert list(decoded.columns) == ["a", "c"]
    assert decoded.columns["a"].dtype == np.float64
    assert decoded.columns["c"].dtype == np.int64
    np.testing.assert_array_equal(decoded.columns["a"], A)
    np.testing.assert_array_equal(decoded.columns["c"], C)
    assert decoded.request_id is None
    assert decoded.outputs is None
    assert decoded.parameters == {}


@pytest.mark.parametrize(
    "inputs",
    [
        [col("a", A), col("c", C, "INT64")],
        [col("c", C, "INT32"), col("a", A, "FP32")],  # any order, narrower datatypes
        [
            col("a", [[v] for v in A], shape=[3, 1]),
            col("c", [[v] for v in C], "INT64", [3, 1]),
        ],  # [n, 1] nested
        [
            col("a", A, shape=[3, 1]),
            col("c", [[v] for v in C], "INT64", [3, 1]),
        ],  # [n, 1] flat and nested mixed
        [col("a", A), col("c", [[v] for v in C], "UINT8", [3, 1])],
        [{"name": "m", "shape": [3, 2], "datatype": "FP64", "data": EXPECTED.tolist()}],  # matrix, nested
        [{"name": "m", "shape": [3, 2], "datatype": "FP32", "data": EXPECTED.reshape(-1).tolist()}],  # flat
        [{"name": "x", "shape": [3, 2], "datatype": "INT64", "data": [[2, 3], [3, 4], [-3, 5]]}],
    ],
    ids=[
        "per-column",
        "reordered",
        "n1-nested",
        "n1-mixed",
        "uint8",
        "matrix-nested",
        "matrix-flat",
        "matrix-int",
    ],
)
def test_every_form_gives_the_same_matrix(inputs: list[dict[str, Any]]) -> None:
    decoded = decode_oip(oip(*inputs), SIG)
    expected = EXPECTED.copy()
    if inputs[0]["datatype"] == "INT64" and len(inputs) == 1:
        expected[:, 0] = [2, 3, -3]
    np.testing.assert_array_equal(decoded.matrix, expected)
    assert decoded.matrix.shape == (3, 2)
    assert decoded.columns is not None
    assert decoded.columns["c"].dtype == np.int64
    np.testing.assert_array_equal(decoded.columns["c"], C)


def test_matrix_and_per_column_agree_on_wide_models() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(size=(5, 20)).round(6)
    per_column = decode_oip(oip(*(col(f"f{j}", values[:, j].tolist()) for j in range(20))), WIDE)
    matrix = decode_oip(
        oip({"name": "features", "shape": [5, 20], "datatype": "FP64", "data": values.tolist()}), WIDE
    )
    np.testing.assert_array_equal(per_column.matrix, matrix.matrix)
    np.testing.assert_array_equal(per_column.matrix, values.astype(np.float32))
    assert per_column.columns is not None
    assert matrix.columns is not None
    for name in per_column.columns:
        np.testing.assert_array_equal(per_column.columns[name], matrix.columns[name])


def test_matrix_form_accepts_integral_floats_for_integer_columns() -> None:
    body = oip({"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [0.5, 7.0]})
    decoded = decode_oip(body, SIG)
    assert decoded.columns is not None
    assert decoded.columns["c"].dtype == np.int64
    assert decoded.columns["c"].tolist() == [7]


def test_long_columns_stay_exact_beyond_float_precision() -> None:
    big = 2**53 + 1
    decoded = decode_oip(oip(col("a", [0.5]), col("c", [big], "INT64")), SIG)
    assert decoded.columns is not None
    assert decoded.columns["c"].tolist() == [big]


def test_parameters_and_id_are_kept() -> None:
    decoded = decode_oip(oip(col("a", A), col("c", C, "INT64"), id="req-1", parameters={"k": [1, 2]}), SIG)
    assert decoded.request_id == "req-1"
    assert decoded.parameters == {"k": [1, 2]}


def test_outputs_selection_is_decoded() -> None:
    body = oip(
        col("a", A),
        col("c", C, "INT64"),
        outputs=[{"name": "probability"}, {"name": "label", "parameters": {}}],
    )
    assert decode_oip(body, SIG).outputs == ("probability", "label")
    assert decode_oip(oip(col("a", A), col("c", C, "INT64"), outputs=[]), SIG).outputs is None


# ------------------------------------------------------------------------------------ datatypes and columns

VALUES: dict[str, list[Any]] = {
    "BOOL": [True, False],
    "BYTES": ["x", "y"],
    **{name: [1, 0] for name in OIP_DATATYPES if name not in ("BOOL", "BYTES")},
}
COLUMN_VALUES: dict[str, list[Any]] = {
    "string": ["x", "y"],
    "binary": ["x", "y"],
    "datetime": ["2024-01-02T03:04:05", "2024-06-30"],
}


@pytest.mark.parametrize("datatype", list(OIP_DATATYPES))
def test_every_datatype_decodes_to_its_dtype_for_a_tensor_model(datatype: str) -> None:
    dtype = numpy_dtype(datatype)
    schema = ModelSchema(tensor=TensorSpec("t", dtype.name, (-1, 2)))
    data = VALUES[datatype] * 2
    decoded = decode_oip(oip({"name": "t", "shape": [2, 2], "datatype": datatype, "data": data}), schema)
    assert decoded.matrix.dtype == dtype
    assert decoded.matrix.shape == (2, 2)
    assert decoded.matrix.reshape(-1).tolist() == data
    assert decoded.columns is None
    assert decoded.rows == 2


@pytest.mark.parametrize("datatype", list(OIP_DATATYPES))
@pytest.mark.parametrize("column_type", COLUMN_TYPES)
def test_column_type_accepts_or_refuses_each_datatype(column_type: str, datatype: str) -> None:
    schema = ModelSchema(columns=(ColumnSpec("v", column_type),))
    data = COLUMN_VALUES.get(column_type, VALUES[datatype])
    body = oip(col("v", data, datatype))
    if datatype in ACCEPTED_DATATYPES[column_type]:
        decoded = decode_oip(body, schema)
        assert decoded.columns is not None
        assert decoded.columns["v"].dtype == COLUMN_NUMPY_DTYPES[column_type]
        assert decoded.rows == 2
    else:
        refused(lambda: decode_oip(body, schema), "input 'v'", datatype, "expected one of")


def test_fp_into_integer_column_says_what_to_send() -> None:
    refused(
        lambda: decode_oip(oip(col("a", A), col("c", [3.0, 4.0, 5.0], "FP64")), SIG), "'c'", "FP64", "INT64"
    )


def test_string_binary_and_datetime_columns() -> None:
    schema = ModelSchema(
        columns=(
            ColumnSpec("s", "string"),
            ColumnSpec("b", "binary"),
            ColumnSpec("t", "datetime"),
            ColumnSpec("x", "double"),
        )
    )
    raw = base64.b64encode(b"\x00\xff").decode()
    body = oip(
        col("s", ["hello", "wörld"], "BYTES"),
        {**col("b", [raw, raw], "BYTES"), "parameters": {"content_type": "base64"}},
        col("t", ["2024-01-02T03:04:05Z", "2024-01-02T05:04:05+02:00"], "BYTES"),
        col("x", [1.0, 2.0]),
    )
    decoded = decode_oip(body, schema)
    assert decoded.columns is not None
    assert decoded.columns["s"].tolist() == ["hello", "wörld"]
    assert decoded.columns["b"].tolist() == [b"\x00\xff", b"\x00\xff"]
    assert decoded.columns["t"].tolist() == [np.datetime64("2024-01-02T03:04:05", "ns").item()] * 2
    assert decoded.matrix.shape == (2, 0)  # not every column is numeric: consumers use the columns
    plain = decode_oip(
        oip(
            col("s", ["a"], "BYTES"),
            col("b", ["é"], "BYTES"),
            col("t", ["2024-01-01"], "BYTES"),
            col("x", [1]),
        ),
        schema,
    )
    assert plain.columns is not None
    assert plain.columns["b"].tolist() == ["é".encode()]


@pytest.mark.parametrize(
    ("column", "data", "words"),
    [
        (ColumnSpec("s", "string"), ["a", None], ["input 's' contains null at row 1", "forbids"]),
        (ColumnSpec("s", "string"), ["a", 3], ["input 's'", "non-string value 3 at row 1"]),
        (
            ColumnSpec("t", "datetime"),
            ["2024-01-01", "yesterday"],
            ["input 't'", "'yesterday' at row 1", "ISO 8601"],
        ),
        (ColumnSpec("t", "datetime"), [None], ["input 't' contains null at row 0"]),
    ],
)
def test_non_numeric_column_errors(column: ColumnSpec, data: list[Any], words: list[str]) -> None:
    schema = ModelSchema(columns=(column,))
    refused(lambda: decode_oip(oip(col(column.name, data, "BYTES")), schema), *words)


def test_optional_non_numeric_columns_keep_nulls() -> None:
    schema = ModelSchema(columns=(ColumnSpec("s", "string", False), ColumnSpec("t", "datetime", False)))
    decoded = decode_oip(oip(col("s", ["a", None], "BYTES"), col("t", [None, "2024-01-01"], "BYTES")), schema)
    assert decoded.columns is not None
    assert decoded.columns["s"].tolist() == ["a", None]
    assert np.isnat(decoded.columns["t"][0])
    absent = decode_oip(oip(col("s", ["a"], "BYTES")), schema)
    assert absent.columns is not None
    assert np.isnat(absent.columns["t"]).all()


def test_booleans_count_as_numbers_in_double_columns() -> None:
    decoded = decode_oip(oip(col("a", [True, False], "BOOL"), col("c", [1, 2], "INT64")), SIG)
    np.testing.assert_array_equal(decoded.matrix, [[1, 1], [0, 2]])


def test_a_str_body_is_read_too() -> None:
    decoded = decode_oip(oip(col("a", [1.0]), col("c", [1], "INT64")).decode(), SIG)  # type: ignore[arg-type]
    assert decoded.rows == 1


def test_schema_equality_survives_decoding() -> None:
    fresh = ModelSchema(columns=SIG.columns, outputs=SIG.outputs)
    decode_oip(oip(col("a", [1.0]), col("c", [1], "INT64")), fresh)
    assert fresh == SIG
    assert hash(fresh) == hash(SIG)


def test_boolean_column_from_integers() -> None:
    schema = ModelSchema(columns=(ColumnSpec("flag", "boolean"),))
    decoded = decode_oip(oip(col("flag", [1, 0, 1], "INT8")), schema)
    assert decoded.columns is not None
    assert decoded.columns["flag"].tolist() == [True, False, True]
    np.testing.assert_array_equal(decoded.matrix, [[1], [0], [1]])


# ------------------------------------------------------------------------------------------------- errors

MISSING = {"shape": [1], "datatype": "FP64", "data": [1.0]}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", ["malformed JSON"]),
        (b"", ["malformed JSON"]),
        (b"[1, 2]", ["JSON object", "a list"]),
        (b'{"input": []}', ["'inputs' list"]),
        (b'{"inputs": {"a": [1]}}', ["'inputs' list"]),
        (oip(7), ["inputs[0]", "must be an object"]),
        (oip({"shape": [1], "datatype": "FP64", "data": [1]}), ["inputs[0]", "'name'"]),
        (oip({"name": "a", "datatype": "FP64", "data": [1]}), ["input 'a'", "'shape'"]),
        (oip({"name": "a", "shape": [1], "data": [1]}), ["input 'a'", "'datatype'"]),
        (oip({"name": "a", "shape": [1], "datatype": "FP64"}), ["input 'a'", "'data'"]),
        (oip({"name": "a", "shape": [1], "datatype": "FP64", "data": None}), ["input 'a'", "'data'"]),
    ],
)
def test_malformed_bodies_are_bad_requests(body: bytes, words: list[str]) -> None:
    refused(lambda: decode_oip(body, SIG), *words, cls=BadRequestError)


@pytest.mark.parametrize(
    ("inputs", "extra", "words"),
    [
        ([col("a", A, "FLOAT"), col("c", C, "INT64")], {}, ["input 'a'", "unknown datatype 'FLOAT'", "FP32"]),
        ([col("a", A, shape=[2]), col("c", C[:2], "INT64")], {}, ["input 'a'", "3 values", "[2]", "needs 2"]),
        ([col("a", A, shape=[-3]), col("c", C, "INT64")], {}, ["input 'a'", "invalid shape [-3]"]),
        ([col("a", A, shape=[1.5]), col("c", C, "INT64")], {}, ["input 'a'", "invalid shape [1.5]"]),
        ([col("a", A, shape="3"), col("c", C, "INT64")], {}, ["input 'a'", "invalid shape '3'"]),
        ([col("a", A)], {}, ["missing input(s) ['c']", "the model expects ['a', 'c']"]),
        ([col("a", A), col("c", C, "INT64"), col("x", A)], {}, ["unexpected input(s) ['x']"]),
        ([col("a", A), col("x", C, "INT64")], {}, ["missing input(s) ['c']", "unexpected input(s) ['x']"]),
        ([col("a", A), col("a", A), col("c", C, "INT64")], {}, ["duplicate input name(s) ['a']"]),
        ([col("a", A), col("c", C[:2], "INT64")], {}, ["inconsistent row counts", "'a' has 3", "'c' has 2"]),
        ([col("a", A, "BYTES"), col("c", C, "INT64")], {}, ["input 'a'", "BYTES", "double"]),
        ([col("a", A), col("c", C, "FP32")], {}, ["input 'c'", "FP32", "long"]),
        (
            [col("a", [1.0, "x", 2.0], "FP32"), col("c", C, "INT64")],
            {},
            ["input 'a'", "non-numeric value 'x' at row 1"],
        ),
        ([col("a", ["1.5", 2.0, 3.0], "FP32"), col("c", C, "INT64")], {}, ["input 'a'", "'1.5' at row 0"]),
        (
            [col("a", [1.0, None, 2.0]), col("c", C, "INT64")],
            {},
            ["input 'a' contains null at row 1", "forbids"],
        ),
        ([col("a", A), col("c", [3, 4.5, 5], "INT64")], {}, ["input 'c'", "non-integer value 4.5 at row 1"]),
        ([col("a", []), col("c", [], "INT64")], {}, ["no rows"]),
        (
            [col("a", [[1.0], [2.0, 3.0]], shape=[2, 1]), col("c", C[:2], "INT64")],
            {},
            ["input 'a'", "ragged"],
        ),
        ([col("a", A, shape=[3, 2]), col("c", C, "INT64")], {}, ["input 'a'", "[n] or [n, 1]"]),
        ([col("a", A), col("c", C, "INT64")], {"outputs": "p"}, ["'outputs'", "list"]),
        ([col("a", A), col("c", C, "INT64")], {"outputs": [{"nom": "p"}]}, ["outputs[0]", "'name'"]),
        ([col("a", A), col("c", C, "INT64")], {"id": 7}, ["'id'", "string"]),
        ([col("a", A), col("c", C, "INT64")], {"parameters": [1]}, ["'parameters'", "object"]),
        ([{**col("a", A), "parameters": 3}, col("c", C, "INT64")], {}, ["input 'a'", "parameters"]),
        ([col("a", 1.5, shape=[3]), col("c", C, "INT64")], {}, ["input 'a'", "must be a list"]),
        ([], {}, ["missing input(s) ['a', 'c']"]),
        (
            [{"name": "m", "shape": [3, 3], "datatype": "FP32", "data": [0.0] * 9}],
            {},
            ["input 'm'", "2 columns"],
        ),
        (
            [{"name": "m", "shape": [2, 2], "datatype": "BYTES", "data": ["a"] * 4}],
            {},
            ["input 'm'", "BYTES"],
        ),
        (
            [{"name": "m", "shape": [2, 2], "datatype": "FP32", "data": [0.0] * 3}],
            {},
            ["input 'm'", "needs 4"],
        ),
        ([{"name": "m", "shape": [0, 2], "datatype": "FP32", "data": []}], {}, ["input 'm'", "no rows"]),
        (
            [{"name": "m", "shape": [2, 2], "datatype": "FP64", "data": [[1.0, 2.0], [3.0, 2.5]]}],
            {},
            ["input 'm' (column 'c')", "non-integer value 2.5 at row 1"],
        ),
        (
            [{"name": "m", "shape": [2, 2], "datatype": "FP64", "data": [[1.0, 2.0], ["x", 2.0]]}],
            {},
            ["input 'm' (column 'a')", "non-numeric value 'x' at row 1"],
        ),
    ],
)
def test_invalid_inputs_are_named(
    inputs: list[dict[str, Any]], extra: dict[str, Any], words: list[str]
) -> None:
    refused(lambda: decode_oip(oip(*inputs, **extra), SIG), *words)


@pytest.mark.parametrize(
    ("value", "what"),
    [(float("nan"), "NaN"), (float("inf"), "inf"), (float("-inf"), "-inf")],
)
def test_non_finite_values_in_required_columns_are_refused(value: float, what: str) -> None:
    body = nan_body({"inputs": [col("a", [1.0, 2.0, 3.0, value]), col("c", [1, 2, 3, 4], "INT64")]})
    message = refused(lambda: decode_oip(body, SIG), f"input 'a' contains {what} at row 3")
    assert message == f"input 'a' contains {what} at row 3, which the model signature forbids"
    matrix = nan_body(
        {"inputs": [{"name": "m", "shape": [2, 2], "datatype": "FP64", "data": [[1, 2], [value, 3]]}]}
    )
    refused(lambda: decode_oip(matrix, SIG), f"input 'm' (column 'a') contains {what} at row 1")


def test_values_float32_cannot_hold_are_refused() -> None:
    refused(lambda: decode_oip(oip(col("a", [1e39]), col("c", [1], "INT64")), SIG), "input 'a'", "float32")


def test_json_numbers_beyond_double_range_read_as_infinity() -> None:
    body = b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1e400]}, ' + (
        b'{"name": "c", "shape": [1], "datatype": "INT64", "data": [1]}]}'
    )
    refused(lambda: decode_oip(body, SIG), "input 'a' contains inf at row 0")


@pytest.mark.parametrize(
    ("column_type", "value", "words"),
    [
        ("integer", 2**31, ["input 'v'", "out of range for integer"]),
        ("integer", -(2**31) - 1, ["out of range for integer"]),
        ("long", 2**63, ["out of range for long"]),
        ("boolean", 2, ["input 'v'", "not a boolean"]),
    ],
)
def test_integer_ranges(column_type: str, value: int, words: list[str]) -> None:
    schema = ModelSchema(columns=(ColumnSpec("v", column_type),))
    datatype = "UINT64" if value >= 2**63 else "INT64"
    refused(lambda: decode_oip(oip(col("v", [0, value], datatype)), schema), *words, "at row 1")


def test_optional_columns_allow_missing_values() -> None:
    body = nan_body(
        {
            "inputs": [
                col("a", [1.0, 2.0]),
                col("b", [float("nan"), float("inf")]),
                col("n", [None, 4], "INT64"),
            ]
        }
    )
    decoded = decode_oip(body, OPTIONAL)
    assert decoded.columns is not None
    assert math.isnan(decoded.columns["b"][0])
    assert decoded.columns["b"][1] == math.inf
    assert decoded.columns["n"].dtype == np.float64  # an integer column with missing values
    assert math.isnan(decoded.columns["n"][0])
    assert decoded.columns["n"][1] == 4
    assert np.isnan(decoded.matrix[0, 1:]).all()


def test_optional_columns_may_be_absent() -> None:
    decoded = decode_oip(oip(col("a", [1.0, 2.0])), OPTIONAL)
    assert decoded.columns is not None
    assert np.isnan(decoded.columns["b"]).all()
    assert np.isnan(decoded.columns["n"]).all()
    assert decoded.matrix.shape == (2, 3)
    refused(lambda: decode_oip(oip(col("b", [1.0])), OPTIONAL), "missing input(s) ['a']")


def test_optional_integer_column_keeps_its_dtype_without_missing_values() -> None:
    body = nan_body({"inputs": [col("a", [1.0]), col("b", [float("nan")]), col("n", [4], "INT64")]})
    decoded = decode_oip(body, OPTIONAL)
    assert decoded.columns is not None
    assert decoded.columns["n"].dtype == np.int64


# ---------------------------------------------------------------------------------------------- tensors


def test_tensor_model() -> None:
    data = [[1, 2, 3], [4, 5, 6]]
    for payload in (data, [v for row in data for v in row]):
        decoded = decode_oip(
            oip({"name": "anything", "shape": [2, 3], "datatype": "FP64", "data": payload}), TENSOR
        )
        assert decoded.matrix.dtype == np.float32
        np.testing.assert_array_equal(decoded.matrix, data)
        assert decoded.rows == 2
        assert decoded.columns is None


@pytest.mark.parametrize(
    ("inputs", "words"),
    [
        (
            [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [0.0] * 8}],
            ["input 'x'", "[2, 4]", "[-1, 3]"],
        ),
        (
            [{"name": "x", "shape": [6], "datatype": "FP32", "data": [0.0] * 6}],
            ["input 'x'", "[6]", "[-1, 3]"],
        ),
        (
            [col("x", [0.0] * 3, shape=[1, 3]), col("y", [0.0] * 3, shape=[1, 3])],
            ["one tensor input", "'x'", "'y'"],
        ),
        ([{"name": "x", "shape": [1, 3], "datatype": "BYTES", "data": ["a"] * 3}], ["input 'x'", "BYTES"]),
        (
            [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [0.0, "a", 1.0]}],
            ["input 'x'", "'a'", "row 0"],
        ),
        (
            [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [0.0] * 5 + [None]}],
            ["input 'x'", "null at row 1"],
        ),
        ([{"name": "x", "shape": [0, 3], "datatype": "FP32", "data": []}], ["no rows"]),
        ([], ["one tensor input", "got 0"]),
    ],
)
def test_tensor_model_errors(inputs: list[dict[str, Any]], words: list[str]) -> None:
    refused(lambda: decode_oip(oip(*inputs), TENSOR), *words)


@pytest.mark.parametrize(
    ("value", "what"), [(float("nan"), "NaN"), (float("inf"), "inf"), (float("-inf"), "-inf")]
)
def test_tensor_model_forbids_non_finite_values(value: float, what: str) -> None:
    body = nan_body(
        {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [0, 1, 2, 3, value, 5]}]}
    )
    refused(
        lambda: decode_oip(body, TENSOR),
        f"input 'x' contains {what} at row 1, which the model signature forbids",
    )


def test_integer_tensor_refuses_floats_and_out_of_range() -> None:
    schema = ModelSchema(tensor=TensorSpec("ids", "int8", (-1, 2)))
    refused(lambda: decode_oip(oip(col("ids", [1.0, 2.0], "FP32", [1, 2])), schema), "input 'ids'", "FP32")
    refused(
        lambda: decode_oip(oip(col("ids", [1, 300], "INT64", [1, 2])), schema), "300", "out of range for int8"
    )
    decoded = decode_oip(oip(col("ids", [1, -2, 3, 4], "INT64", [2, 2])), schema)
    assert decoded.matrix.dtype == np.int8
    assert decoded.matrix.tolist() == [[1, -2], [3, 4]]


def test_tensor_model_with_a_one_dimensional_spec() -> None:
    schema = ModelSchema(tensor=TensorSpec(None, "float64", (-1,)))
    decoded = decode_oip(oip(col("x", [1, 2, 3], "INT32")), schema)
    assert decoded.matrix.shape == (3,)
    assert decoded.matrix.dtype == np.float64


# -------------------------------------------------------------------------------------------- no signature


def test_unsigned_model_passes_a_numeric_tensor_through() -> None:
    decoded = decode_oip(
        oip({"name": "x", "shape": [2, 2], "datatype": "INT64", "data": [1, 2, 3, 4]}), UNSIGNED
    )
    assert decoded.matrix.dtype == np.float32
    assert decoded.matrix.tolist() == [[1, 2], [3, 4]]
    assert decoded.columns is None
    one_dim = decode_oip(oip(col("x", [1.0, 2.0])), UNSIGNED)
    assert one_dim.matrix.shape == (2, 1)
    with_nan = decode_oip(nan_body({"inputs": [col("x", [float("nan"), 1.0])]}), UNSIGNED)
    assert np.isnan(with_nan.matrix[0, 0])


def test_unsigned_model_errors() -> None:
    refused(lambda: decode_oip(oip(col("x", ["a"], "BYTES")), UNSIGNED), "input 'x'", "without signature")
    refused(lambda: decode_oip(oip(), UNSIGNED), "no inputs")


def test_unsigned_model_with_several_inputs_gets_columns() -> None:
    decoded = decode_oip(
        oip(col("x", [1.5, 2.5]), col("k", [1, 2], "INT32"), col("s", ["a", "b"], "BYTES")), UNSIGNED
    )
    assert decoded.columns is not None
    assert list(decoded.columns) == ["x", "k", "s"]
    assert decoded.columns["k"].dtype == np.int64
    assert decoded.columns["s"].tolist() == ["a", "b"]


# ------------------------------------------------------------------------------------------------- MLflow

RECORDS = [{"a": a, "c": c} for a, c in zip(A, C, strict=True)]


@pytest.mark.parametrize(
    "document",
    [
        {"dataframe_split": {"columns": ["a", "c"], "data": [[a, c] for a, c in zip(A, C, strict=True)]}},
        {"dataframe_split": {"columns": ["c", "a"], "data": [[c, a] for a, c in zip(A, C, strict=True)]}},
        {"dataframe_split": {"data": [[a, c] for a, c in zip(A, C, strict=True)]}},
        {
            "dataframe_split": {
                "index": [10, 11, 12],
                "columns": ["a", "c"],
                "data": [[a, c] for a, c in zip(A, C, strict=True)],
            }
        },
        {"dataframe_records": RECORDS},
        {"dataframe_records": [{"c": r["c"], "a": r["a"]} for r in RECORDS]},
        {"instances": [[a, c] for a, c in zip(A, C, strict=True)]},
        {"instances": RECORDS},
        {"inputs": {"a": A, "c": C}},
        {"inputs": [[a, c] for a, c in zip(A, C, strict=True)]},
        {"inputs": RECORDS, "params": {"threshold": 0.5}},
    ],
    ids=[
        "split",
        "split-reordered",
        "split-no-columns",
        "split-index",
        "records",
        "records-reordered",
        "instances-rows",
        "instances-dicts",
        "inputs-columnar",
        "inputs-rows",
        "inputs-records-params",
    ],
)
def test_mlflow_formats_give_the_oip_matrix(document: dict[str, Any]) -> None:
    reference = decode_oip(oip(col("a", A), col("c", C, "INT64")), SIG)
    decoded = decode_mlflow(orjson.dumps(document), SIG)
    np.testing.assert_array_equal(decoded.matrix, reference.matrix)
    assert decoded.matrix.dtype == np.float32
    assert decoded.rows == 3
    assert decoded.columns is not None
    assert reference.columns is not None
    for name in ("a", "c"):
        assert decoded.columns[name].dtype == reference.columns[name].dtype
        np.testing.assert_array_equal(decoded.columns[name], reference.columns[name])
    assert decoded.request_id is None
    assert decoded.outputs is None
    assert decoded.parameters == document.get("params", {})


def test_mlflow_wide_split_matches_oip() -> None:
    values = np.random.default_rng(3).normal(size=(4, 20)).round(5)
    names = [f"f{j}" for j in range(20)]
    split = decode_mlflow(
        orjson.dumps({"dataframe_split": {"columns": names, "data": values.tolist()}}), WIDE
    )
    records = decode_mlflow(
        orjson.dumps({"dataframe_records": [dict(zip(names, row, strict=True)) for row in values.tolist()]}),
        WIDE,
    )
    np.testing.assert_array_equal(split.matrix, values.astype(np.float32))
    np.testing.assert_array_equal(records.matrix, split.matrix)


def test_mlflow_null_values() -> None:
    records = [{"a": 1.0, "b": None, "n": 2}, {"a": 2.0, "n": None}]
    decoded = decode_mlflow(orjson.dumps({"dataframe_records": records}), OPTIONAL)
    assert decoded.columns is not None
    assert np.isnan(decoded.columns["b"]).all()
    assert decoded.columns["n"].dtype == np.float64
    assert decoded.columns["n"][0] == 2
    assert np.isnan(decoded.columns["n"][1])
    refused(
        lambda: decode_mlflow(
            orjson.dumps({"dataframe_records": [{"a": 1.0, "c": 1}, {"a": None, "c": 2}]}), SIG
        ),
        "input 'a' contains null at row 1",
    )
    refused(
        lambda: decode_mlflow(orjson.dumps({"dataframe_records": [{"a": 1.0, "c": 1}, {"a": 2.0}]}), SIG),
        "input 'c' contains null at row 1",
    )
    refused(
        lambda: decode_mlflow(
            orjson.dumps({"dataframe_split": {"columns": ["a", "c"], "data": [[1.0, 1], [2.0, None]]}}), SIG
        ),
        "input 'c' contains null at row 1",
    )


def test_mlflow_string_and_binary_columns() -> None:
    schema = ModelSchema(
        columns=(ColumnSpec("s", "string"), ColumnSpec("b", "binary"), ColumnSpec("x", "long"))
    )
    raw = base64.b64encode(b"\x01\x02").decode()
    decoded = decode_mlflow(
        orjson.dumps({"dataframe_split": {"columns": ["s", "b", "x"], "data": [["hi", raw, 3]]}}), schema
    )
    assert decoded.columns is not None
    assert decoded.columns["s"].tolist() == ["hi"]
    assert decoded.columns["b"].tolist() == [b"\x01\x02"]
    assert decoded.columns["x"].tolist() == [3]
    refused(
        lambda: decode_mlflow(orjson.dumps({"inputs": {"s": [1], "b": [raw], "x": [1]}}), schema),
        "input 's'",
        "non-string value 1 at row 0",
    )
    refused(
        lambda: decode_mlflow(orjson.dumps({"inputs": {"s": ["a"], "b": ["***"], "x": [1]}}), schema),
        "input 'b'",
        "base64",
    )


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"dataframe_split": {"columns": ["a"], "data": [[1.0]]}}, ["missing input(s) ['c']"]),
        (
            {"dataframe_split": {"columns": ["a", "c", "z"], "data": [[1.0, 2, 3]]}},
            ["unexpected input(s) ['z']"],
        ),
        (
            {"dataframe_split": {"columns": ["a", "a", "c"], "data": [[1.0, 1.0, 2]]}},
            ["duplicate input name(s) ['a']"],
        ),
        (
            {"dataframe_split": {"columns": ["a", "c"], "data": [[1.0, 2], [1.0]]}},
            ["row 1 has 1 values", "2 columns"],
        ),
        ({"dataframe_split": {"columns": ["a", "c"], "data": [[1.0, 2], 5]}}, ["row 1 must be a list"]),
        ({"dataframe_split": {"columns": ["a", "c"], "data": []}}, ["no rows"]),
        (
            {"dataframe_split": {"columns": ["a", "c"], "index": [0, 1], "data": [[1.0, 2]]}},
            ["'index' has 2", "1 rows"],
        ),
        (
            {"dataframe_split": {"columns": ["a", "c"], "data": [["x", 2]]}},
            ["input 'a'", "non-numeric value 'x' at row 0"],
        ),
        (
            {"dataframe_split": {"columns": ["a", "c"], "data": [[1.0, 2.5]]}},
            ["input 'c'", "non-integer value 2.5"],
        ),
        ({"dataframe_records": [{"a": 1.0, "c": 1, "d": 2}]}, ["unexpected input(s) ['d']"]),
        ({"dataframe_records": [{"a": 1.0, "c": 1}, 3]}, ["record 1", "object"]),
        ({"dataframe_records": []}, ["no rows"]),
        ({"instances": []}, ["no rows"]),
        ({"instances": [1.0, 2.0]}, ["'instances' must be a list of rows"]),
        ({"inputs": {"a": [1.0, 2.0], "c": [1]}}, ["inconsistent row counts", "'c' has 1"]),
        ({"inputs": {"a": 1.0, "c": [1]}}, ["input 'a'", "list of values"]),
        ({"inputs": {"a": [], "c": []}}, ["no rows"]),
        ({"inputs": {"a": [1.0], "c": [1], "e": [0]}}, ["unexpected input(s) ['e']"]),
        ({"inputs": {"a": [[1.0]], "c": [1]}}, ["input 'a'", "one value per row"]),
        ({"inputs": {"a": [True], "c": ["1"]}}, ["input 'c'", "non-numeric value '1'"]),
    ],
)
def test_mlflow_invalid_inputs(document: dict[str, Any], words: list[str]) -> None:
    refused(lambda: decode_mlflow(orjson.dumps(document), SIG), *words)


def test_mlflow_non_finite_values() -> None:
    body = nan_body({"dataframe_split": {"columns": ["a", "c"], "data": [[1.0, 1], [float("nan"), 2]]}})
    refused(
        lambda: decode_mlflow(body, SIG), "input 'a' contains NaN at row 1, which the model signature forbids"
    )
    allowed = nan_body({"inputs": {"a": [1.0], "b": [float("-inf")]}})
    decoded = decode_mlflow(allowed, OPTIONAL)
    assert decoded.columns is not None
    assert decoded.columns["b"][0] == -math.inf


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"nope", ["malformed JSON"]),
        (b"[]", ["JSON object"]),
        (b"{}", ["exactly one of"]),
        (orjson.dumps({"instances": [[1, 2]], "inputs": [[1, 2]]}), ["exactly one of"]),
        (orjson.dumps({"instances": [[1, 2]], "extra": 1}), ["exactly one of", "'extra'"]),
        (orjson.dumps({"instances": [[1, 2]], "params": [1]}), ["'params'", "object"]),
        (orjson.dumps({"dataframe_split": [[1, 2]]}), ["'dataframe_split'", "object"]),
        (orjson.dumps({"dataframe_split": {"columns": ["a", "c"]}}), ["'data'"]),
        (orjson.dumps({"dataframe_split": {"columns": "a", "data": [[1, 2]]}}), ["'columns'"]),
        (orjson.dumps({"dataframe_records": {"a": 1}}), ["'dataframe_records'", "list"]),
        (orjson.dumps({"instances": {"a": 1}}), ["'instances'", "list"]),
    ],
)
def test_mlflow_malformed_bodies(body: bytes, words: list[str]) -> None:
    refused(lambda: decode_mlflow(body, SIG), *words, cls=BadRequestError)


@pytest.mark.parametrize(
    "document",
    [
        {"inputs": [[1, 2, 3], [4, 5, 6]]},
        {"instances": [[1, 2, 3], [4, 5, 6]]},
        {"inputs": {"features": [[1, 2, 3], [4, 5, 6]]}},
        {"dataframe_split": {"columns": ["x", "y", "z"], "data": [[1, 2, 3], [4, 5, 6]]}},
    ],
)
def test_mlflow_tensor_model(document: dict[str, Any]) -> None:
    decoded = decode_mlflow(orjson.dumps(document), TENSOR)
    assert decoded.matrix.dtype == np.float32
    assert decoded.matrix.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert decoded.columns is None
    assert decoded.rows == 2


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"dataframe_records": [{"x": 1}]}, ["'dataframe_records'", "tensor"]),
        ({"inputs": [[1, 2]]}, ["input 'features'", "[1, 2]", "[-1, 3]"]),
        ({"inputs": {"a": [[1, 2, 3]], "b": [[1, 2, 3]]}}, ["one tensor input", "'a'", "'b'"]),
        ({"inputs": {"x": 3}}, ["input 'x'", "list"]),
        ({"instances": [[1, 2, 3], [4, 5]]}, ["ragged"]),
        ({"instances": []}, ["shape [0]"]),
    ],
)
def test_mlflow_tensor_model_errors(document: dict[str, Any], words: list[str]) -> None:
    refused(lambda: decode_mlflow(orjson.dumps(document), TENSOR), *words)


def test_mlflow_unsigned_model() -> None:
    matrix = decode_mlflow(orjson.dumps({"instances": [[1, 2], [3, 4]]}), UNSIGNED)
    assert matrix.matrix.tolist() == [[1, 2], [3, 4]]
    assert matrix.columns is None
    frame = decode_mlflow(
        orjson.dumps({"dataframe_split": {"columns": ["x", "s"], "data": [[1.5, "a"], [2, "b"]]}}), UNSIGNED
    )
    assert frame.columns is not None
    assert frame.columns["x"].tolist() == [1.5, 2.0]
    assert frame.columns["s"].tolist() == ["a", "b"]
    records = decode_mlflow(orjson.dumps({"dataframe_records": [{"x": 1, "y": True}, {"x": 2}]}), UNSIGNED)
    assert records.columns is not None
    assert records.columns["x"].dtype == np.int64
    assert records.matrix.shape == (2, 2)
    columnar = decode_mlflow(orjson.dumps({"inputs": {"x": [1.0, 2.0]}}), UNSIGNED)
    assert columnar.matrix.tolist() == [[1.0], [2.0]]
    refused(lambda: decode_mlflow(orjson.dumps({"inputs": {"x": [1, "a"]}}), UNSIGNED), "input 'x'", "mixes")


# -------------------------------------------------------------------------------------------------- encode


def test_encode_oip() -> None:
    outputs = {"probability": np.array([0.25, 0.75], dtype=np.float32), "label": np.array([0, 1])}
    body = orjson.loads(
        encode_oip(model_name="churn", model_version="3", request_id="r-9", outputs=outputs, selected=None)
    )
    assert body == {
        "model_name": "churn",
        "model_version": "3",
        "id": "r-9",
        "parameters": {},
        "outputs": [
            {"name": "probability", "datatype": "FP32", "shape": [2], "data": [0.25, 0.75]},
            {"name": "label", "datatype": "INT64", "shape": [2], "data": [0, 1]},
        ],
    }
    no_id = orjson.loads(
        encode_oip(model_name="m", model_version="1", request_id=None, outputs=outputs, selected=None)
    )
    assert "id" not in no_id


def test_encode_oip_selection() -> None:
    outputs = {"a": np.zeros(1), "b": np.ones(1), "c": np.ones(1)}
    body = orjson.loads(
        encode_oip(model_name="m", model_version="1", request_id=None, outputs=outputs, selected=("c", "a"))
    )
    assert [o["name"] for o in body["outputs"]] == ["c", "a"]
    message = refused(
        lambda: encode_oip(
            model_name="m", model_version="1", request_id=None, outputs=outputs, selected=("z",)
        ),
        "unknown output(s) ['z']",
    )
    assert "['a', 'b', 'c']" in message


@pytest.mark.parametrize(
    ("array", "datatype", "data"),
    [
        (np.array([[0.5, 1.5]], dtype=np.float16), "FP16", [0.5, 1.5]),
        (np.array([True, False]), "BOOL", [True, False]),
        (np.array([[1, 2], [3, 4]], dtype=np.uint8).T, "UINT8", [1, 3, 2, 4]),  # not C-contiguous
        (np.array([1.5], dtype=">f8"), "FP64", [1.5]),  # not native byte order
        (np.array(["a", "é"]), "BYTES", ["a", "é"]),
        (np.array([b"\x00"], dtype=object), "BYTES", ["AA=="]),
        (np.array(7.0), "FP64", [7.0]),
        (np.array([np.nan], dtype=np.float32), "FP32", [None]),
        (np.array(["2024-01-02T03:04:05"], dtype="datetime64[s]"), "BYTES", ["2024-01-02T03:04:05"]),
    ],
)
def test_encode_oip_datatypes(array: Any, datatype: str, data: list[Any]) -> None:
    body = orjson.loads(
        encode_oip(model_name="m", model_version="1", request_id=None, outputs={"y": array}, selected=None)
    )
    (output,) = body["outputs"]
    assert output["datatype"] == datatype
    assert output["shape"] == list(array.shape)
    assert output["data"] == data


@pytest.mark.parametrize("datatype", [d for d in OIP_DATATYPES if d != "BYTES"])
def test_encode_then_decode_round_trips(datatype: str) -> None:
    dtype = numpy_dtype(datatype)
    array = np.array([[1, 0, 1], [0, 1, 1]]).astype(dtype)
    response = orjson.loads(
        encode_oip(model_name="m", model_version="1", request_id=None, outputs={"t": array}, selected=None)
    )
    schema = ModelSchema(tensor=TensorSpec("t", dtype.name, (-1, 3)))
    decoded = decode_oip(orjson.dumps({"inputs": response["outputs"]}), schema)
    assert decoded.matrix.dtype == dtype
    np.testing.assert_array_equal(decoded.matrix, array)


@pytest.mark.parametrize(
    ("outputs", "predictions"),
    [
        ({"y": np.array([0.25, 0.5], dtype=np.float32)}, [0.25, 0.5]),
        ({"y": np.array([[0.25, 0.75], [0.5, 0.5]])}, [[0.25, 0.75], [0.5, 0.5]]),
        ({"y": np.array([0.5], dtype=np.float16)}, [0.5]),
        ({"y": np.array(["a", "b"])}, ["a", "b"]),
        (
            {
                "p": np.array([0.25, 0.5]),
                "label": np.array([0, 1]),
                "v": np.array([[1, 2], [3, 4]], dtype=np.float16),
            },
            [{"p": 0.25, "label": 0, "v": [1.0, 2.0]}, {"p": 0.5, "label": 1, "v": [3.0, 4.0]}],
        ),
        ({}, []),
    ],
)
def test_encode_mlflow(outputs: dict[str, Any], predictions: Any) -> None:
    assert orjson.loads(encode_mlflow(outputs)) == {"predictions": predictions}


def test_encode_mlflow_refuses_outputs_of_different_lengths() -> None:
    with pytest.raises(ValueError, match="different row counts"):
        encode_mlflow({"a": np.zeros(2), "b": np.zeros(3)})
