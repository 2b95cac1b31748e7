"""The router's gRPC messages against Triton's generated ones, and the translation to the HTTP binary form.

Wire compatibility is field names, numbers, types and labels: every field of ours must be Triton's, so
``tritonclient.grpc`` reads what the router writes and the other way round (Triton's messages are a
superset of the protocol's).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
import pytest
from tritonclient.grpc import service_pb2  # type: ignore[import-untyped]

from workbench.errors import BadRequestError, PayloadTooLargeError
from workbench.serving.oip_grpc import messages, status_code, tensors


def _fields(descriptor: Any) -> dict[str, tuple[Any, ...]]:
    return {
        f.name: (
            f.number,
            f.type,
            f.is_repeated,
            f.message_type.full_name if f.message_type else None,
            f.containing_oneof.name if f.containing_oneof else None,
        )
        for f in descriptor.fields
    }


def _same(ours: Any, theirs: Any) -> None:
    assert ours.full_name == theirs.full_name
    # Every field of the protocol's messages, no more and no fewer than Triton's (whose six messages are
    # the protocol's, with InferParameter's two extra choices, which the table carries too).
    assert _fields(ours) == _fields(theirs), ours.full_name
    for nested in ours.nested_types:
        _same(nested, theirs.nested_types_by_name[nested.name])


@pytest.mark.parametrize("name", [n for n in messages._MESSAGES if "." not in n])
def test_every_field_is_tritons(name: str) -> None:
    ours = messages.POOL.FindMessageTypeByName(f"inference.{name}")
    _same(ours, service_pb2.DESCRIPTOR.message_types_by_name[name])


def test_the_service_has_the_protocols_six_rpcs_with_tritons_types() -> None:
    ours = messages.POOL.FindServiceByName(messages.SERVICE)
    theirs = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert [m.name for m in ours.methods] == list(messages.RPCS)
    for method in ours.methods:
        other = theirs.methods_by_name[method.name]
        assert (method.input_type.full_name, method.output_type.full_name) == (
            other.input_type.full_name,
            other.output_type.full_name,
        )


def test_a_request_tritonclient_serialises_parses_here_and_back() -> None:
    theirs = service_pb2.ModelInferRequest(model_name="churn", model_version="2", id="r-1")
    theirs.parameters["priority"].int64_param = 3
    theirs.parameters["ratio"].double_param = 0.5
    tensor = theirs.inputs.add(name="x", datatype="FP32", shape=[2])
    tensor.parameters["note"].string_param = "kept"
    theirs.raw_input_contents.append(np.array([1.5, -2.0], dtype="<f4").tobytes())
    ours = messages.ModelInferRequest.FromString(theirs.SerializeToString())
    assert (ours.model_name, ours.model_version, ours.id) == ("churn", "2", "r-1")
    assert tensors.parameters_to_json(ours.parameters) == {"priority": 3, "ratio": 0.5}
    assert service_pb2.ModelInferRequest.FromString(ours.SerializeToString()) == theirs


# --------------------------------------------------------------------------------------------------------------
# Requests


def _split(body: bytes, length: int) -> tuple[dict[str, Any], bytes]:
    return orjson.loads(body[:length]), body[length:]


def test_raw_inputs_become_the_binary_section_in_order() -> None:
    request = messages.ModelInferRequest(model_name="m", id="abc")
    request.inputs.add(name="a", datatype="INT64", shape=[2])
    request.inputs.add(name="b", datatype="BYTES", shape=[1])
    a = np.array([7, 8], dtype="<i8").tobytes()
    b = struct.pack("<I", 2) + b"hi"
    request.raw_input_contents.extend([a, b])
    document, binary = _split(*tensors.request_body(request))
    assert document["id"] == "abc"
    assert document["parameters"] == {"binary_data_output": True}
    assert [(i["name"], i["datatype"], i["shape"], i["parameters"]) for i in document["inputs"]] == [
        ("a", "INT64", [2], {"binary_data_size": 16}),
        ("b", "BYTES", [1], {"binary_data_size": 6}),
    ]
    assert "outputs" not in document
    assert binary == a + b


@pytest.mark.parametrize(
    ("datatype", "field", "values", "raw"),
    [
        ("FP32", "fp32_contents", [1.0, 2.5], np.array([1.0, 2.5], dtype="<f4").tobytes()),
        ("FP64", "fp64_contents", [1.0, 2.5], np.array([1.0, 2.5], dtype="<f8").tobytes()),
        ("INT16", "int_contents", [-3, 4], np.array([-3, 4], dtype="<i2").tobytes()),
        ("UINT8", "uint_contents", [0, 255], bytes([0, 255])),
        ("BOOL", "bool_contents", [True, False], bytes([1, 0])),
        ("BYTES", "bytes_contents", [b"ab", "zoë".encode()], b"\x02\x00\x00\x00ab\x04\x00\x00\x00zo\xc3\xab"),
    ],
)
def test_typed_contents_are_packed_to_the_raw_layout(
    datatype: str, field: str, values: list[Any], raw: bytes
) -> None:
    request = messages.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype=datatype, shape=[2])
    getattr(tensor.contents, field).extend(values)
    document, binary = _split(*tensors.request_body(request))
    assert binary == raw
    assert document["inputs"][0]["parameters"]["binary_data_size"] == len(raw)


def test_requested_outputs_are_asked_for_as_binary() -> None:
    request = messages.ModelInferRequest(model_name="m")
    request.inputs.add(name="x", datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0)
    output = request.outputs.add(name="predictions")
    output.parameters["classification"].int64_param = 2
    document, _ = _split(*tensors.request_body(request))
    assert document["outputs"] == [
        {"name": "predictions", "parameters": {"classification": 2, "binary_data": True}}
    ]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        ("no data", "input 'x' has no data"),
        ("raw count", "raw_input_contents has 2 entries for 1 inputs"),
        ("both", "input 'x' sets contents while the request has raw_input_contents"),
        ("wrong field", "input 'x' is FP32 but sets contents.int64_contents"),
        ("fp16 typed", "input 'x' has datatype 'FP16', which has no typed contents field"),
    ],
)
def test_requests_the_protocol_does_not_allow_are_refused(build: str, message: str) -> None:
    request = messages.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype="FP16" if build == "fp16 typed" else "FP32", shape=[1])
    if build == "raw count":
        request.raw_input_contents.extend([b"\x00" * 4, b"\x00" * 4])
    elif build == "both":
        tensor.contents.fp32_contents.append(1.0)
        request.raw_input_contents.append(b"\x00" * 4)
    elif build == "wrong field":
        tensor.contents.fp32_contents.append(1.0)
        tensor.contents.int64_contents.append(1)
    elif build == "fp16 typed":
        tensor.contents.fp32_contents.append(1.0)
    with pytest.raises(BadRequestError, match=message):
        tensors.request_body(request)


# --------------------------------------------------------------------------------------------------------------
# Responses


def test_binary_and_json_outputs_both_become_raw_output_contents() -> None:
    scores = np.array([0.25, 0.75], dtype="<f4").tobytes()
    document = {
        "model_name": "churn",
        "model_version": "2",
        "id": "r-1",
        "parameters": {"binary_data_output": True, "note": "x"},
        "outputs": [
            {"name": "score", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}},
            {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["yes", "no"]},
            {"name": "count", "datatype": "INT64", "shape": [2, 1], "data": [1, 2]},
        ],
    }
    head = orjson.dumps(document)
    response = tensors.infer_response(head + scores, len(head))
    assert (response.model_name, response.model_version, response.id) == ("churn", "2", "r-1")
    assert tensors.parameters_to_json(response.parameters) == {"note": "x"}
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("score", "FP32", [2]),
        ("label", "BYTES", [2]),
        ("count", "INT64", [2, 1]),
    ]
    assert list(response.raw_output_contents) == [
        scores,
        b"\x03\x00\x00\x00yes\x02\x00\x00\x00no",
        np.array([1, 2], dtype="<i8").tobytes(),
    ]
    assert all(not o.parameters for o in response.outputs[:1])


def test_model_metadata_keeps_names_datatypes_and_shapes() -> None:
    response = tensors.metadata_response(
        {
            "name": "churn",
            "versions": ["1", "2"],
            "platform": "pytorch",
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [{"name": "predictions", "datatype": "FP32", "shape": [-1]}],
            "parameters": {"model": "churn"},
        }
    )
    theirs = service_pb2.ModelMetadataResponse.FromString(response.SerializeToString())
    assert theirs.name == "churn"
    assert list(theirs.versions) == ["1", "2"]
    assert [(t.name, t.datatype, list(t.shape)) for t in theirs.inputs] == [("x", "FP32", [-1, 4])]


@pytest.mark.parametrize(
    ("http", "grpc_name"),
    [
        (400, "INVALID_ARGUMENT"),
        (404, "NOT_FOUND"),
        (413, "RESOURCE_EXHAUSTED"),
        (503, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
        (500, "INTERNAL"),
        (418, "UNKNOWN"),
    ],
)
def test_http_statuses_map_to_grpc_codes(http: int, grpc_name: str) -> None:
    assert status_code(http).name == grpc_name


@pytest.mark.parametrize(
    ("datatype", "field", "count", "limit", "refused"),
    [
        ("INT64", "int64_contents", 1000, 10_000, False),
        ("INT64", "int64_contents", 2000, 10_000, True),  # 2,000 zeros: ~2 KB on the wire, 16 KB unpacked
        ("BOOL", "bool_contents", 4000, 10_000, False),  # wire and unpacked both count: ~8 KB
    ],
)
def test_typed_contents_count_at_their_unpacked_size(
    datatype: str, field: str, count: int, limit: int, refused: bool
) -> None:
    request = messages.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype=datatype, shape=[count])
    getattr(tensor.contents, field).extend([0] * count if datatype != "BOOL" else [False] * count)
    if refused:
        with pytest.raises(PayloadTooLargeError, match=f"exceeds the endpoint's limit of {limit} bytes"):
            tensors.check_size(request, limit)
    else:
        tensors.check_size(request, limit)


def test_a_typed_value_its_datatype_cannot_hold_is_a_bad_request() -> None:
    request = messages.ModelInferRequest(model_name="m")
    request.inputs.add(name="x", datatype="INT8", shape=[1]).contents.int_contents.append(300)
    with pytest.raises(BadRequestError, match="input 'x' has a value INT8 cannot hold"):
        tensors.request_body(request)
