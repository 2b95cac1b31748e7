"""gRPC inference messages to and from the HTTP binary tensor extension that replicas already speak.

Why translate at the router rather than teach replicas gRPC: a replica then has one decoder, one validator
and one prediction-log path for both transports, so a gRPC request is checked, answered, logged and
mirrored to shadows exactly like its HTTP twin (the router forwards the translated body as it forwards
any other). The translation is cheap because both sides carry raw tensors: ``raw_input_contents`` become
the binary section after a small JSON header, and the replica is asked for binary outputs, which become
``raw_output_contents``. Typed ``contents`` (a client that does not send raw) are packed to the same raw
layout, so the replica sees one shape of request.
"""

from __future__ import annotations

import struct
from typing import Any, Final

import numpy as np
import orjson

from workbench.errors import BadRequestError, PayloadTooLargeError
from workbench.serving.codec.oip_binary import split_body
from workbench.serving.oip_grpc import messages
from workbench.serving.schema import OIP_DATATYPES

_LENGTH: Final = struct.Struct("<I")
#: Which typed ``contents`` field holds each datatype (FP16 has none: raw only, as the protocol says).
CONTENTS_FIELD: Final[dict[str, str]] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
#: Parameters that belong to the HTTP binary extension: set here, never passed on to a gRPC client.
_TRANSPORT_PARAMETERS: Final = frozenset({"binary_data_size", "binary_data", "binary_data_output"})


# --------------------------------------------------------------------------------------------------------------
# Parameters


def parameters_to_json(parameters: Any) -> dict[str, Any]:
    """A protobuf ``map<string, InferParameter>`` as the JSON object HTTP carries."""
    out: dict[str, Any] = {}
    for key, value in parameters.items():
        choice = value.WhichOneof("parameter_choice")
        if choice is not None:
            out[key] = getattr(value, choice)
    return out


def parameters_from_json(target: Any, values: dict[str, Any]) -> None:
    """Fill a ``map<string, InferParameter>`` from JSON; values no choice can hold are left out."""
    for key, value in values.items():
        if key in _TRANSPORT_PARAMETERS:
            continue
        if isinstance(value, bool):
            target[key].bool_param = value
        elif isinstance(value, int) and -(2**63) <= value < 2**63:
            target[key].int64_param = value
        elif isinstance(value, int) and 0 <= value < 2**64:
            target[key].uint64_param = value
        elif isinstance(value, float):
            target[key].double_param = value
        elif isinstance(value, str):
            target[key].string_param = value


# --------------------------------------------------------------------------------------------------------------
# Requests


def pack_bytes(elements: Any) -> bytes:
    """BYTES elements in the protocol's raw layout: each a 4-byte little-endian length, then its bytes."""
    parts = []
    for element in elements:
        raw = element.encode("utf-8") if isinstance(element, str) else bytes(element)
        parts.append(_LENGTH.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def _typed_contents(tensor: Any) -> bytes:
    """An input's typed ``contents`` as raw bytes in its datatype's little-endian layout."""
    field = CONTENTS_FIELD.get(tensor.datatype)
    if field is None:
        raise BadRequestError(
            f"input {tensor.name!r} has datatype {tensor.datatype!r}, which has no typed contents field: "
            "send it in raw_input_contents"
        )
    values = getattr(tensor.contents, field)
    others = [
        name
        for name in sorted(set(CONTENTS_FIELD.values()))
        if name != field and getattr(tensor.contents, name)
    ]
    if others:
        raise BadRequestError(
            f"input {tensor.name!r} is {tensor.datatype} but sets contents.{', contents.'.join(others)}; "
            f"its values belong in contents.{field}"
        )
    if tensor.datatype == "BYTES":
        return pack_bytes(values)
    try:
        return np.asarray(values, dtype=OIP_DATATYPES[tensor.datatype].newbyteorder("<")).tobytes()
    except (OverflowError, ValueError) as exc:
        raise BadRequestError(
            f"input {tensor.name!r} has a value {tensor.datatype} cannot hold: {exc}"
        ) from None


def check_size(request: Any, limit: int) -> None:
    """Refuse a request over the endpoint's payload limit before anything is built from it: its encoded
    size, and what its typed contents would take unpacked (a packed zero is one byte on the wire and
    eight in an INT64 tensor)."""
    size = request.ByteSize()
    for tensor in request.inputs:
        field = CONTENTS_FIELD.get(tensor.datatype)
        if field is not None and field != "bytes_contents" and tensor.HasField("contents"):
            size += len(getattr(tensor.contents, field)) * OIP_DATATYPES[tensor.datatype].itemsize
    if size > limit:
        raise PayloadTooLargeError(
            f"request of {size} bytes exceeds the endpoint's limit of {limit} bytes", limit=limit
        )


def request_body(request: Any) -> tuple[bytes, int]:
    """A ``ModelInferRequest`` as an HTTP binary-extension body, and its JSON header's length.

    Every output comes back as binary data (the request's ``binary_data_output``), which is what
    ``raw_output_contents`` carries.
    """
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise BadRequestError(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs: "
            "give one per input, in the inputs' order, or none"
        )
    chunks: list[bytes] = []
    inputs: list[dict[str, Any]] = []
    for i, tensor in enumerate(request.inputs):
        has_contents = tensor.HasField("contents")
        if raw and has_contents:
            raise BadRequestError(
                f"input {tensor.name!r} sets contents while the request has raw_input_contents: "
                "use one or the other for all inputs"
            )
        if raw:
            chunk = raw[i]
        elif has_contents:
            chunk = _typed_contents(tensor)
        else:
            raise BadRequestError(
                f"input {tensor.name!r} has no data: set its contents or raw_input_contents"
            )
        parameters = parameters_to_json(tensor.parameters)
        parameters["binary_data_size"] = len(chunk)
        inputs.append(
            {
                "name": tensor.name,
                "datatype": tensor.datatype,
                "shape": list(tensor.shape),
                "parameters": parameters,
            }
        )
        chunks.append(chunk)
    document: dict[str, Any] = {"inputs": inputs}
    if request.id:
        document["id"] = request.id
    parameters = parameters_to_json(request.parameters)
    parameters["binary_data_output"] = True
    document["parameters"] = parameters
    if request.outputs:
        document["outputs"] = [
            {
                "name": output.name,
                "parameters": {**parameters_to_json(output.parameters), "binary_data": True},
            }
            for output in request.outputs
        ]
    header = orjson.dumps(document)
    return header + b"".join(chunks), len(header)


# --------------------------------------------------------------------------------------------------------------
# Responses


def _raw_from_json(output: dict[str, Any]) -> bytes:
    """An output the replica answered as JSON ``data``, in the raw layout."""
    datatype = output.get("datatype", "")
    data = output.get("data", [])
    if datatype == "BYTES":
        return pack_bytes(np.asarray(data, dtype=object).reshape(-1))
    dtype = OIP_DATATYPES.get(datatype)
    if dtype is None:
        raise ValueError(f"output {output.get('name')!r} has datatype {datatype!r}")
    return np.asarray(data, dtype=dtype.newbyteorder("<")).reshape(-1).tobytes()


def infer_response(body: bytes, header_length: int | None) -> Any:
    """A replica's OIP answer (JSON, or JSON + binary outputs) as a ``ModelInferResponse``."""
    if header_length is None:
        document, binary = orjson.loads(body), memoryview(b"")
    else:
        head, binary = split_body(body, header_length)
        document = orjson.loads(head)
    response = messages.ModelInferResponse(
        model_name=str(document.get("model_name", "")),
        model_version=str(document.get("model_version", "")),
        id=str(document.get("id", "")),
    )
    parameters_from_json(response.parameters, document.get("parameters") or {})
    offset = 0
    for output in document.get("outputs", []):
        tensor = response.outputs.add(
            name=output["name"], datatype=output["datatype"], shape=[int(n) for n in output["shape"]]
        )
        output_parameters = output.get("parameters") or {}
        parameters_from_json(tensor.parameters, output_parameters)
        size = output_parameters.get("binary_data_size")
        if size is not None:
            response.raw_output_contents.append(bytes(binary[offset : offset + int(size)]))
            offset += int(size)
        else:
            response.raw_output_contents.append(_raw_from_json(output))
    return response


def metadata_response(document: dict[str, Any]) -> Any:
    """OIP model metadata (JSON) as a ``ModelMetadataResponse``; its ``parameters`` have no field there."""
    response = messages.ModelMetadataResponse(
        name=str(document.get("name", "")),
        versions=[str(v) for v in document.get("versions", [])],
        platform=str(document.get("platform", "")),
    )
    for kind in ("inputs", "outputs"):
        for tensor in document.get(kind, []):
            getattr(response, kind).add(
                name=tensor["name"], datatype=tensor["datatype"], shape=[int(n) for n in tensor["shape"]]
            )
    return response
