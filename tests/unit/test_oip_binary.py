"""The binary tensor data extension of OIP v2: requests built and responses read by ``tritonclient`` itself
(and the compressed bodies it sends when asked).

A binary request must decode to exactly what its JSON twin decodes to (the model, the batcher and the
prediction log cannot tell them apart); malformed binary data is a 400 that names the input.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from typing import Any

import numpy as np
import orjson
import pytest
from tritonclient.http import (  # type: ignore[import-untyped]
    InferenceServerClient,
    InferInput,
    InferRequestedOutput,
)

from workbench.errors import BadRequestError, InvalidInputError, PayloadTooLargeError
from workbench.serving.asgi import UnsupportedEncodingError, decode_content
from workbench.serving.codec import Decoded, decode_oip
from workbench.serving.codec.oip import encode_oip_response
from workbench.serving.codec.oip_binary import attach_binary_inputs, parse_header_length, split_body
from workbench.serving.schema import OIP_DATATYPES, ColumnSpec, ModelSchema, TensorSpec

COLUMNS = ModelSchema(
    columns=(
        ColumnSpec("x", "double"),
        ColumnSpec("n", "long"),
        ColumnSpec("f", "float"),
        ColumnSpec("b", "boolean"),
    )
)
TEXT = ModelSchema(columns=(ColumnSpec("name", "string"), ColumnSpec("x", "double")))
BLOB = ModelSchema(columns=(ColumnSpec("blob", "binary"),))
TENSOR = ModelSchema(tensor=TensorSpec("t", "float32", (-1, 3)))
INT_TENSOR = ModelSchema(tensor=TensorSpec("t", "int64", (-1, 2)))
UNSIGNED = ModelSchema()


def _input(name: str, array: np.ndarray[Any, Any], datatype: str, *, binary: bool) -> InferInput:
    tensor = InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


def _body(
    inputs: list[tuple[str, np.ndarray[Any, Any], str]],
    *,
    binary: bool,
    outputs: list[InferRequestedOutput] | None = None,
    request_id: str = "",
) -> tuple[bytes, int | None]:
    """The body and Inference-Header-Content-Length that tritonclient sends for these inputs."""
    body, json_size = InferenceServerClient.generate_request_body(
        [_input(name, array, datatype, binary=binary) for name, array, datatype in inputs],
        outputs=outputs,
        request_id=request_id,
    )
    return body, json_size


def _twins(
    schema: ModelSchema, inputs: list[tuple[str, np.ndarray[Any, Any], str]]
) -> tuple[Decoded, Decoded]:
    body, length = _body(inputs, binary=True)
    assert length is not None
    assert length < len(body)
    json_body, json_length = _body(inputs, binary=False)
    assert json_length is None
    return decode_oip(body, schema, header_length=length), decode_oip(json_body, schema)


def _same(binary: Decoded, json: Decoded) -> None:
    assert binary.rows == json.rows
    assert binary.matrix.dtype == json.matrix.dtype
    np.testing.assert_array_equal(binary.matrix, json.matrix)
    if json.columns is None:
        assert binary.columns is None
        return
    assert binary.columns is not None
    assert list(binary.columns) == list(json.columns)
    for name, column in json.columns.items():
        assert binary.columns[name].dtype == column.dtype, name
        np.testing.assert_array_equal(binary.columns[name], column)


X = np.array([1.5, -2.25, 1e30])
N = np.array([3, -4, 2**62], dtype=np.int64)
F = np.array([0.1, 2.5, -3.0], dtype=np.float32)
B = np.array([True, False, True])


@pytest.mark.parametrize(
    ("x_type", "n_type", "f_type"),
    [("FP64", "INT64", "FP32"), ("FP32", "INT32", "FP64"), ("FP16", "UINT8", "FP16")],
)
def test_binary_columns_decode_exactly_as_their_json_twin(x_type: str, n_type: str, f_type: str) -> None:
    x = X.astype(OIP_DATATYPES[x_type]) if x_type != "FP16" else np.array([1.5, -2.25, 6e4], np.float16)
    n = np.array([3, 4, 200], dtype=OIP_DATATYPES[n_type])
    f = F.astype(OIP_DATATYPES[f_type])
    binary, json = _twins(COLUMNS, [("x", x, x_type), ("n", n, n_type), ("f", f, f_type), ("b", B, "BOOL")])
    _same(binary, json)
    assert binary.columns is not None
    assert binary.columns["n"].tolist() == n.tolist()


def test_int64_beyond_float_precision_survives_binary_form() -> None:
    binary, json = _twins(COLUMNS, [("x", X, "FP64"), ("n", N, "INT64"), ("f", F, "FP32"), ("b", B, "BOOL")])
    _same(binary, json)
    assert binary.columns is not None
    assert binary.columns["n"][2] == 2**62


def test_a_binary_matrix_decodes_as_its_json_twin() -> None:
    matrix = np.array([[1.0, 2.0, 0.5, 1.0], [3.0, 4.0, 0.25, 0.0]])
    binary, json = _twins(COLUMNS, [("features", matrix, "FP64")])
    _same(binary, json)
    np.testing.assert_array_equal(binary.matrix, matrix.astype(np.float32))


@pytest.mark.parametrize(
    ("schema", "array", "datatype"),
    [
        (TENSOR, np.arange(6, dtype=np.float32).reshape(2, 3), "FP32"),
        (TENSOR, np.linspace(-1, 1, 9).reshape(3, 3), "FP64"),
        (TENSOR, np.arange(6, dtype=np.int64).reshape(2, 3), "INT64"),
        (INT_TENSOR, np.array([[2**62, -1], [7, 8]], dtype=np.int64), "INT64"),
        (UNSIGNED, np.arange(8, dtype=np.float64).reshape(2, 4), "FP64"),
    ],
)
def test_binary_tensors_decode_as_their_json_twin(
    schema: ModelSchema, array: np.ndarray[Any, Any], datatype: str
) -> None:
    binary, json = _twins(schema, [("t", array, datatype)])
    _same(binary, json)


def test_bytes_inputs_decode_as_strings() -> None:
    names = np.array(["ana", "zoë", ""], dtype=object)
    binary, json = _twins(TEXT, [("name", names, "BYTES"), ("x", X, "FP64")])
    _same(binary, json)
    assert binary.columns is not None
    assert binary.columns["name"].tolist() == ["ana", "zoë", ""]


def test_bytes_that_are_not_utf8_go_to_a_binary_column_and_are_refused_by_a_string_column() -> None:
    blobs = np.array([b"\xff\x00", b"ok"], dtype=object)
    body, length = _body([("blob", blobs, "BYTES")], binary=True)
    decoded = decode_oip(body, BLOB, header_length=length)
    assert decoded.columns is not None
    assert decoded.columns["blob"].tolist() == [b"\xff\x00", b"ok"]
    body, length = _body([("name", blobs, "BYTES"), ("x", X[:2], "FP64")], binary=True)
    with pytest.raises(InvalidInputError, match="input 'name' holds bytes that are not UTF-8 at row 0"):
        decode_oip(body, TEXT, header_length=length)


def test_numeric_binary_data_is_read_in_place() -> None:
    body, length = _body([("x", X, "FP64"), ("n", N, "INT64")], binary=True)
    assert length is not None
    head, binary = split_body(body, length)
    inputs = orjson.loads(head)["inputs"]
    attach_binary_inputs(inputs, binary)
    whole = np.frombuffer(body, dtype=np.uint8)
    for item, expected in zip(inputs, (X, N), strict=True):
        data = item["data"]
        assert isinstance(data, np.ndarray)
        assert np.shares_memory(data, whole), "binary data was copied"
        np.testing.assert_array_equal(data, expected)


def test_mixed_binary_and_json_inputs_in_one_request() -> None:
    tensors = [_input("x", X, "FP64", binary=True), _input("n", N, "INT64", binary=False)]
    tensors += [_input("f", F, "FP32", binary=True), _input("b", B, "BOOL", binary=False)]
    body, length = InferenceServerClient.generate_request_body(tensors)
    mixed = decode_oip(body, COLUMNS, header_length=length)
    json_body, _ = _body(
        [("x", X, "FP64"), ("n", N, "INT64"), ("f", F, "FP32"), ("b", B, "BOOL")], binary=False
    )
    _same(mixed, decode_oip(json_body, COLUMNS))


# --------------------------------------------------------------------------------------------------------------
# Outputs


OUTPUTS: dict[str, np.ndarray[Any, Any]] = {
    "probability": np.array([0.25, 0.75], dtype=np.float32),
    "label": np.array([0, 1], dtype=np.int64),
    "flag": np.array([False, True]),
    "half": np.array([[1.5, 2.0], [0.5, -1.0]], dtype=np.float16),
    "name": np.array(["no", "sí"], dtype=object),
}


def _respond(decoded: Decoded) -> Any:
    body, length = encode_oip_response(
        model_name="m",
        model_version="3",
        request_id=decoded.request_id,
        outputs=OUTPUTS,
        selected=decoded.outputs,
        binary=decoded.binary_outputs,
    )
    return InferenceServerClient.parse_response_body(body, header_length=length), length


def test_tritonclient_defaults_get_every_output_as_binary_data() -> None:
    body, length = _body(
        [("x", X, "FP64"), ("n", N, "INT64"), ("f", F, "FP32"), ("b", B, "BOOL")], binary=True
    )
    result, header_length = _respond(decode_oip(body, COLUMNS, header_length=length))
    assert header_length is not None
    for output in result.get_response()["outputs"]:
        assert "data" not in output
        assert output["parameters"]["binary_data_size"] > 0
    for name, expected in OUTPUTS.items():
        got = result.as_numpy(name)
        if expected.dtype == object:
            assert [v.decode() for v in got.tolist()] == expected.tolist()
        else:
            assert got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected)


def test_binary_outputs_are_chosen_per_output_and_the_output_wins_over_the_request() -> None:
    outputs = [
        InferRequestedOutput("probability", binary_data=True),
        InferRequestedOutput("label", binary_data=False),
    ]
    body, length = _body(
        [("x", X, "FP64"), ("n", N, "INT64"), ("f", F, "FP32"), ("b", B, "BOOL")],
        binary=True,
        outputs=outputs,
    )
    result, header_length = _respond(decode_oip(body, COLUMNS, header_length=length))
    assert header_length is not None
    described = {o["name"]: o for o in result.get_response()["outputs"]}
    assert list(described) == ["probability", "label"]
    assert described["probability"]["parameters"] == {"binary_data_size": 8}
    assert described["label"]["data"] == [0, 1]
    np.testing.assert_array_equal(result.as_numpy("probability"), OUTPUTS["probability"])
    doc = {
        "inputs": [{"name": "t", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}],
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "label", "parameters": {"binary_data": False}}, {"name": "flag"}],
    }
    result, header_length = _respond(decode_oip(orjson.dumps(doc), TENSOR))
    described = {o["name"]: o for o in result.get_response()["outputs"]}
    assert described["label"]["data"] == [0, 1]
    assert described["flag"]["parameters"] == {"binary_data_size": 2}
    np.testing.assert_array_equal(result.as_numpy("flag"), OUTPUTS["flag"])


def test_json_requests_that_ask_for_nothing_binary_get_plain_json() -> None:
    json_body, _ = _body(
        [("t", np.ones((1, 3), np.float32), "FP32")],
        binary=False,
        outputs=[InferRequestedOutput("label", binary_data=False)],
    )
    body, length = encode_oip_response(
        model_name="m",
        model_version="3",
        request_id=None,
        outputs=OUTPUTS,
        selected=("label",),
        binary=decode_oip(json_body, TENSOR).binary_outputs,
    )
    assert length is None
    assert orjson.loads(body)["outputs"] == [
        {"name": "label", "datatype": "INT64", "shape": [2], "data": [0, 1]}
    ]


# --------------------------------------------------------------------------------------------------------------
# Malformed binary data: each a 400 naming the problem


def _raw(
    inputs: list[dict[str, Any]], tail: bytes, *, header_length: int | None = -1
) -> tuple[bytes, int | None]:
    head = orjson.dumps({"inputs": inputs})
    return head + tail, len(head) if header_length == -1 else header_length


def _fp32(name: str, shape: list[int], size: Any) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": "FP32", "parameters": {"binary_data_size": size}}


FOUR = np.arange(4, dtype=np.float32).tobytes()


@pytest.mark.parametrize(
    ("inputs", "tail", "header_length", "fragment"),
    [
        (
            [_fp32("t", [1, 3], 12)],
            FOUR[:12],
            10_000,
            "says the JSON header has 10000 bytes, but the whole body has",
        ),
        ([_fp32("t", [1, 3], 12)], FOUR[:12], 20, "are not the JSON header: malformed JSON"),
        (
            [_fp32("t", [1, 3], 12)],
            FOUR[:8],
            -1,
            "input 't' declares 12 bytes of binary data from byte 0, but only 8",
        ),
        (
            [_fp32("t", [1, 3], 12)],
            FOUR,
            -1,
            "16 bytes of binary data follow the JSON header, but the inputs' binary_data_size add up to 12",
        ),
        (
            [_fp32("t", [1, 3], 16)],
            FOUR,
            -1,
            "input 't' has 16 bytes of binary data, but shape [1, 3] of FP32 takes 12",
        ),
        ([_fp32("t", [1, 3], -4)], FOUR, -1, "input 't' has binary_data_size -4: expected a byte count"),
        ([_fp32("t", [1, 3], "12")], FOUR, -1, "binary_data_size '12'"),
        ([{**_fp32("t", [1, 3], 12), "data": [1, 2, 3]}], FOUR[:12], -1, "both 'data' and binary_data_size"),
        ([{**_fp32("t", [1, 3], 12), "datatype": "FP128"}], FOUR[:12], -1, "unknown datatype 'FP128'"),
        ([_fp32("t", [1, -3], 12)], FOUR[:12], -1, "invalid shape [1, -3]"),
        (
            [_fp32("t", [1, 3], 12)],
            FOUR[:12],
            None,
            "12 bytes after its JSON object, and its inputs declare binary_data_size, but the request has no "
            "Inference-Header-Content-Length header",
        ),
        ([_fp32("t", [1, 3], 12)], b"", None, "input 't' declares binary_data_size, but the request has no"),
    ],
)
def test_malformed_binary_requests_are_refused(
    inputs: list[dict[str, Any]], tail: bytes, header_length: int | None, fragment: str
) -> None:
    body, length = _raw(inputs, tail, header_length=header_length)
    with pytest.raises(BadRequestError) as info:
        decode_oip(body, TENSOR, header_length=length)
    assert info.value.status_code == 400
    assert fragment in info.value.message, info.value.message


def _bytes_input(shape: list[int], tail: bytes) -> tuple[bytes, int]:
    body, length = _raw(
        [{"name": "s", "shape": shape, "datatype": "BYTES", "parameters": {"binary_data_size": len(tail)}}],
        tail,
    )
    assert length is not None
    return body, length


@pytest.mark.parametrize(
    ("shape", "tail", "fragment"),
    [
        (
            [2],
            struct.pack("<I", 2) + b"ab" + b"\x01\x00",
            "BYTES element 1 has a truncated length prefix (2 of 4 bytes)",
        ),
        (
            [2],
            struct.pack("<I", 2) + b"ab" + struct.pack("<I", 9) + b"abc",
            "BYTES element 1 says it has 9 bytes, but only 3 remain",
        ),
        (
            [3],
            struct.pack("<I", 1) + b"a" + struct.pack("<I", 0),
            "holds 2 BYTES elements, but its shape [3] needs 3",
        ),
    ],
)
def test_malformed_bytes_tensors_are_refused(shape: list[int], tail: bytes, fragment: str) -> None:
    body, length = _bytes_input(shape, tail)
    schema = ModelSchema(columns=(ColumnSpec("s", "string"),))
    with pytest.raises(InvalidInputError) as info:
        decode_oip(body, schema, header_length=length)
    assert fragment in info.value.message, info.value.message


def test_bool_bytes_other_than_0_and_1_are_refused() -> None:
    body, length = _raw(
        [{"name": "b", "shape": [3], "datatype": "BOOL", "parameters": {"binary_data_size": 3}}],
        b"\x01\x00\x02",
    )
    schema = ModelSchema(columns=(ColumnSpec("b", "boolean"),))
    with pytest.raises(InvalidInputError, match="input 'b' BOOL element 2 is the byte 2"):
        decode_oip(body, schema, header_length=length)


@pytest.mark.parametrize(
    ("parameters", "outputs", "fragment"),
    [
        ({"binary_data_output": "yes"}, None, "'binary_data_output' must be a boolean"),
        (
            {},
            [{"name": "p", "parameters": {"binary_data": 1}}],
            "output 'p' parameter 'binary_data' must be a boolean",
        ),
        ({}, [{"name": "p", "parameters": {"classification": 2}}], "classification extension"),
    ],
)
def test_bad_binary_output_requests_are_refused(
    parameters: dict[str, Any], outputs: list[dict[str, Any]] | None, fragment: str
) -> None:
    doc: dict[str, Any] = {"inputs": [{"name": "t", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    doc["parameters"] = parameters
    if outputs is not None:
        doc["outputs"] = outputs
    with pytest.raises(InvalidInputError) as info:
        decode_oip(orjson.dumps(doc), TENSOR)
    assert fragment in info.value.message, info.value.message


@pytest.mark.parametrize(("raw", "expected"), [(None, None), (b"0", 0), (b" 128", 128)])
def test_the_header_length_header(raw: bytes | None, expected: int | None) -> None:
    assert parse_header_length(raw) == expected


@pytest.mark.parametrize("raw", [b"-1", b"12a", b"", b"1e3"])
def test_a_header_length_that_is_not_a_byte_count_is_refused(raw: bytes) -> None:
    with pytest.raises(BadRequestError, match="Inference-Header-Content-Length header must be"):
        parse_header_length(raw)


# --------------------------------------------------------------------------------------------------------------
# Compressed bodies (tritonclient compresses only when asked)


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate", b"GZIP"])
def test_compressed_bodies_are_decoded(encoding: bytes) -> None:
    body, _ = _body([("t", np.ones((2, 3), np.float32), "FP32")], binary=True)
    packed = gzip.compress(body) if encoding.lower() == b"gzip" else zlib.compress(body)
    assert decode_content(packed, encoding, limit=len(body)) == body
    assert decode_content(body, None, limit=len(body)) is body
    assert decode_content(body, b"identity", limit=len(body)) is body


def test_compressed_bodies_are_bounded_and_checked() -> None:
    bomb = gzip.compress(b"\x00" * 1_000_000)
    with pytest.raises(PayloadTooLargeError, match="decompressed request body exceeds the endpoint's limit"):
        decode_content(bomb, b"gzip", limit=64 * 1024)
    with pytest.raises(BadRequestError, match="truncated"):
        decode_content(gzip.compress(b"{}" * 100)[:-12], b"gzip", limit=1024)
    with pytest.raises(BadRequestError, match="not valid deflate data"):
        decode_content(b"{}", b"deflate", limit=1024)
    with pytest.raises(UnsupportedEncodingError) as info:
        decode_content(b"{}", b"br", limit=1024)
    assert info.value.status_code == 415
