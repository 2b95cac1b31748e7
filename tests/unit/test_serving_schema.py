"""Model schemas from MLflow signatures, and the OIP datatype tables."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest

from workbench.errors import InvalidInputError
from workbench.serving.schema import (
    ACCEPTED_DATATYPES,
    COLUMN_TYPES,
    OIP_DATATYPES,
    ColumnSpec,
    ModelSchema,
    TensorSpec,
    accepted_datatypes,
    numpy_dtype,
    oip_datatype,
    schema_from_signature,
    tensor_accepted_datatypes,
)

COLUMNS = [{"type": "double", "name": "a", "required": True}, {"type": "long", "name": "c", "required": True}]
TENSOR = [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 20]}, "name": "features"}]
OUTPUT = [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1]}}]


@pytest.mark.parametrize("encode", [json.dumps, lambda value: value], ids=["json-strings", "parsed-lists"])
def test_column_signature(encode: Any) -> None:
    schema = schema_from_signature({"inputs": encode(COLUMNS), "outputs": encode(OUTPUT), "params": None})
    assert schema.kind == "columns"
    assert schema.columns == (ColumnSpec("a", "double", True), ColumnSpec("c", "long", True))
    assert schema.tensor is None
    assert schema.input_names == ("a", "c")
    assert schema.n_features == 2
    assert schema.outputs == (TensorSpec(None, "float32", (-1,)),)


def test_required_defaults_to_true_and_legacy_optional_is_read() -> None:
    schema = schema_from_signature(
        {"inputs": [{"type": "double", "name": "a"}, {"type": "string", "name": "b", "optional": True}]}
    )
    assert schema.columns == (ColumnSpec("a", "double", True), ColumnSpec("b", "string", False))


def test_unnamed_columns_are_named_by_position() -> None:
    schema = schema_from_signature({"inputs": [{"type": "double"}, {"type": "double"}]})
    assert schema.input_names == ("0", "1")


@pytest.mark.parametrize(
    ("entry", "names", "features"),
    [
        (TENSOR[0], ("features",), 20),
        ({"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}, (), 1),
        ({"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 3, 4]}}, (), 12),
        ({"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1, -1]}}, (), -1),
    ],
)
def test_tensor_signature(entry: dict[str, Any], names: tuple[str, ...], features: int) -> None:
    schema = schema_from_signature({"inputs": json.dumps([entry]), "outputs": None})
    assert schema.kind == "tensor"
    assert schema.columns is None
    assert schema.tensor is not None
    assert schema.tensor.dtype == entry["tensor-spec"]["dtype"]
    assert schema.tensor.shape == tuple(entry["tensor-spec"]["shape"])
    assert schema.input_names == names
    assert schema.n_features == features


@pytest.mark.parametrize("signature", [None, {}, {"inputs": None}, {"inputs": "[]"}, {"inputs": "null"}])
def test_no_signature(signature: dict[str, Any] | None) -> None:
    schema = schema_from_signature(signature)
    assert schema.kind == "none"
    assert schema.columns is None
    assert schema.tensor is None
    assert schema.input_names == ()
    assert schema.n_features == -1


@pytest.mark.parametrize(
    ("signature", "words"),
    [
        ({"inputs": json.dumps(TENSOR * 2)}, ["2 tensor inputs", "not supported yet"]),
        ({"inputs": [TENSOR[0], COLUMNS[0]]}, ["mixes a tensor"]),
        (
            {"inputs": [{"type": "array", "items": {"type": "double"}, "name": "x"}]},
            ["'x'", "'array'", "not support"],
        ),
        ({"inputs": "[{not json"}, ["not valid JSON"]),
        ({"inputs": {"a": "double"}}, ["must be a list"]),
        ({"inputs": [COLUMNS[0], COLUMNS[0]]}, ["'a'", "twice"]),
        ({"inputs": [{"name": "a"}]}, ["no type"]),
        ({"inputs": ["double"]}, ["must be an object"]),
        (
            {"inputs": [{"type": "tensor", "tensor-spec": {"dtype": "nope", "shape": [-1]}}]},
            ["unknown dtype"],
        ),
        (
            {"inputs": [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-2]}}]},
            ["invalid shape"],
        ),
        (
            {"inputs": [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": []}}]},
            ["at least one"],
        ),
        ({"inputs": [{"type": "tensor"}]}, ["without a dtype"]),
        ({"inputs": [{"type": "double", "name": "a", "required": "yes"}]}, ["non-boolean"]),
        ("inputs", ["must be a mapping"]),
    ],
)
def test_signatures_it_cannot_serve(signature: Any, words: list[str]) -> None:
    with pytest.raises(ValueError, match=re.escape(words[0])) as info:
        schema_from_signature(signature)
    for word in words:
        assert word in str(info.value)


def test_outputs_keep_unknown_column_types() -> None:
    schema = schema_from_signature({"inputs": COLUMNS, "outputs": [{"type": "array", "name": "scores"}]})
    assert schema.outputs == (ColumnSpec("scores", "array", True),)


def test_model_schema_refuses_both_and_empty_columns() -> None:
    with pytest.raises(ValueError, match="not both"):
        ModelSchema(columns=(ColumnSpec("a", "double"),), tensor=TensorSpec(None, "float32", (-1,)))
    with pytest.raises(ValueError, match="at least one column"):
        ModelSchema(columns=())
    with pytest.raises(ValueError, match="'list'"):
        ModelSchema(columns=(ColumnSpec("a", "list"),))


def test_schema_is_hashable_and_comparable() -> None:
    one = schema_from_signature({"inputs": COLUMNS})
    two = schema_from_signature({"inputs": json.dumps(COLUMNS)})
    assert one == two
    assert hash(one) == hash(two)
    assert one.input_names == two.input_names  # cached properties do not disturb equality
    assert one == two


def test_oip_metadata() -> None:
    schema = schema_from_signature({"inputs": COLUMNS, "outputs": OUTPUT})
    assert schema.oip_metadata() == {
        "inputs": [
            {"name": "a", "datatype": "FP64", "shape": [-1]},
            {"name": "c", "datatype": "INT64", "shape": [-1]},
        ],
        "outputs": [{"name": "output-0", "datatype": "FP32", "shape": [-1]}],
    }
    tensor = schema_from_signature({"inputs": TENSOR})
    assert tensor.oip_metadata()["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 20]}]


# ------------------------------------------------------------------------------------------------- datatypes


@pytest.mark.parametrize("datatype", list(OIP_DATATYPES))
def test_datatype_round_trip(datatype: str) -> None:
    assert oip_datatype(numpy_dtype(datatype)) == datatype


@pytest.mark.parametrize(
    ("dtype", "datatype"),
    [
        (np.bool_, "BOOL"),
        (np.uint8, "UINT8"),
        (np.uint16, "UINT16"),
        (np.uint32, "UINT32"),
        (np.uint64, "UINT64"),
        (np.int8, "INT8"),
        (np.int16, "INT16"),
        (np.int32, "INT32"),
        (np.int64, "INT64"),
        (np.float16, "FP16"),
        (np.float32, "FP32"),
        (np.float64, "FP64"),
        (object, "BYTES"),
        ("<U5", "BYTES"),
        ("S3", "BYTES"),
        ("datetime64[ns]", "BYTES"),
        (">f4", "FP32"),
    ],
)
def test_oip_datatype(dtype: Any, datatype: str) -> None:
    assert oip_datatype(dtype) == datatype
    assert oip_datatype(np.dtype(dtype)) == datatype


def test_oip_datatype_refuses_what_oip_cannot_carry() -> None:
    with pytest.raises(ValueError, match="complex128"):
        oip_datatype(np.complex128)


@pytest.mark.parametrize("datatype", ["FLOAT", "fp32", "", None, 3])
def test_unknown_datatype_is_an_input_error(datatype: Any) -> None:
    with pytest.raises(InvalidInputError) as info:
        numpy_dtype(datatype)
    assert repr(datatype) in info.value.message
    assert "FP32" in info.value.message


NUMERIC = {
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
}
INTEGERS = NUMERIC - {"FP16", "FP32", "FP64"}
EXPECTED_ACCEPTANCE = {
    "double": NUMERIC,
    "float": NUMERIC,
    "long": INTEGERS,
    "integer": INTEGERS,
    "boolean": INTEGERS,
    "string": {"BYTES"},
    "binary": {"BYTES"},
    "datetime": {"BYTES"},
}


@pytest.mark.parametrize("column_type", COLUMN_TYPES)
def test_accepted_datatypes(column_type: str) -> None:
    assert accepted_datatypes(column_type) == EXPECTED_ACCEPTANCE[column_type]
    assert ACCEPTED_DATATYPES[column_type] == EXPECTED_ACCEPTANCE[column_type]


def test_accepted_datatypes_of_unknown_type() -> None:
    with pytest.raises(ValueError, match="'map'"):
        accepted_datatypes("map")


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        ("float32", NUMERIC),
        ("float16", NUMERIC),
        ("int64", INTEGERS),
        ("uint8", INTEGERS),
        ("bool", INTEGERS),
    ],
)
def test_tensor_accepted_datatypes(dtype: str, expected: set[str]) -> None:
    assert tensor_accepted_datatypes(np.dtype(dtype)) == expected
    assert tensor_accepted_datatypes(np.dtype(object)) == {"BYTES"}
