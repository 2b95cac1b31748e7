"""The Open Inference Protocol's gRPC messages (package ``inference``), built at import from a table.

Why not generated ``_pb2`` modules: generated code pins the protobuf runtime it may run on (its version
check refuses an older runtime), and this package meets both majors: protobuf 7 beside Ray and Feast, 6
beside ``tritonclient[grpc]`` in the test environment. A descriptor built here from the protocol's field
table works on either, and lives in a private pool, so it never collides with a client's own copy of the
same names (tritonclient registers ``inference.*`` in the default pool).

The table is the protocol's six RPCs' messages with the field names and numbers the specification gives
(KServe's ``grpc_predict_v2``); ``InferParameter`` carries Triton's two extra choices (double, uint64),
which are wire-compatible additions. ``tests/unit/test_oip_grpc_messages.py`` checks every field against
tritonclient's generated descriptors.
"""

from __future__ import annotations

from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE: Final = "inference"
SERVICE: Final = f"{PACKAGE}.GRPCInferenceService"

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS: Final = {
    "bool": _F.TYPE_BOOL,
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE,
}

# message -> [(field, number, type)]; a type is a scalar, a message of this file, "repeated T", or
# "map T" (map<string, T>). A name with a dot is nested in the message before the dot. "oneof NAME T"
# puts the field in the oneof NAME.
_MESSAGES: Final[dict[str, list[tuple[str, int, str]]]] = {
    "ServerLiveRequest": [],
    "ServerLiveResponse": [("live", 1, "bool")],
    "ServerReadyRequest": [],
    "ServerReadyResponse": [("ready", 1, "bool")],
    "ModelReadyRequest": [("name", 1, "string"), ("version", 2, "string")],
    "ModelReadyResponse": [("ready", 1, "bool")],
    "ServerMetadataRequest": [],
    "ServerMetadataResponse": [
        ("name", 1, "string"),
        ("version", 2, "string"),
        ("extensions", 3, "repeated string"),
    ],
    "ModelMetadataRequest": [("name", 1, "string"), ("version", 2, "string")],
    "ModelMetadataResponse.TensorMetadata": [
        ("name", 1, "string"),
        ("datatype", 2, "string"),
        ("shape", 3, "repeated int64"),
    ],
    "ModelMetadataResponse": [
        ("name", 1, "string"),
        ("versions", 2, "repeated string"),
        ("platform", 3, "string"),
        ("inputs", 4, "repeated ModelMetadataResponse.TensorMetadata"),
        ("outputs", 5, "repeated ModelMetadataResponse.TensorMetadata"),
    ],
    "ModelInferRequest.InferInputTensor": [
        ("name", 1, "string"),
        ("datatype", 2, "string"),
        ("shape", 3, "repeated int64"),
        ("parameters", 4, "map InferParameter"),
        ("contents", 5, "InferTensorContents"),
    ],
    "ModelInferRequest.InferRequestedOutputTensor": [
        ("name", 1, "string"),
        ("parameters", 2, "map InferParameter"),
    ],
    "ModelInferRequest": [
        ("model_name", 1, "string"),
        ("model_version", 2, "string"),
        ("id", 3, "string"),
        ("parameters", 4, "map InferParameter"),
        ("inputs", 5, "repeated ModelInferRequest.InferInputTensor"),
        ("outputs", 6, "repeated ModelInferRequest.InferRequestedOutputTensor"),
        ("raw_input_contents", 7, "repeated bytes"),
    ],
    "ModelInferResponse.InferOutputTensor": [
        ("name", 1, "string"),
        ("datatype", 2, "string"),
        ("shape", 3, "repeated int64"),
        ("parameters", 4, "map InferParameter"),
        ("contents", 5, "InferTensorContents"),
    ],
    "ModelInferResponse": [
        ("model_name", 1, "string"),
        ("model_version", 2, "string"),
        ("id", 3, "string"),
        ("parameters", 4, "map InferParameter"),
        ("outputs", 5, "repeated ModelInferResponse.InferOutputTensor"),
        ("raw_output_contents", 6, "repeated bytes"),
    ],
    "InferParameter": [
        ("bool_param", 1, "oneof parameter_choice bool"),
        ("int64_param", 2, "oneof parameter_choice int64"),
        ("string_param", 3, "oneof parameter_choice string"),
        ("double_param", 4, "oneof parameter_choice double"),
        ("uint64_param", 5, "oneof parameter_choice uint64"),
    ],
    "InferTensorContents": [
        ("bool_contents", 1, "repeated bool"),
        ("int_contents", 2, "repeated int32"),
        ("int64_contents", 3, "repeated int64"),
        ("uint_contents", 4, "repeated uint32"),
        ("uint64_contents", 5, "repeated uint64"),
        ("fp32_contents", 6, "repeated float"),
        ("fp64_contents", 7, "repeated double"),
        ("bytes_contents", 8, "repeated bytes"),
    ],
}

#: rpc -> (request message, response message)
RPCS: Final[dict[str, tuple[str, str]]] = {
    name: (f"{name}Request", f"{name}Response")
    for name in ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer")
}


def _field(message: descriptor_pb2.DescriptorProto, owner: str, name: str, number: int, kind: str) -> None:
    field = message.field.add(name=name, number=number, label=_F.LABEL_OPTIONAL)
    words = kind.split()
    if words[0] == "oneof":
        oneofs = [o.name for o in message.oneof_decl]
        if words[1] not in oneofs:
            message.oneof_decl.add(name=words[1])
            oneofs.append(words[1])
        field.oneof_index = oneofs.index(words[1])
        words = words[2:]
    if words[0] == "repeated":
        field.label = _F.LABEL_REPEATED
        words = words[1:]
    elif words[0] == "map":
        entry = message.nested_type.add(name="".join(p.title() for p in name.split("_")) + "Entry")
        entry.options.map_entry = True
        _field(entry, f"{owner}.{entry.name}", "key", 1, "string")
        _field(entry, f"{owner}.{entry.name}", "value", 2, words[1])
        field.label = _F.LABEL_REPEATED
        field.type = _F.TYPE_MESSAGE
        field.type_name = f".{PACKAGE}.{owner}.{entry.name}"
        return
    (type_name,) = words
    if type_name in _SCALARS:
        field.type = _SCALARS[type_name]
    else:
        field.type = _F.TYPE_MESSAGE
        field.type_name = f".{PACKAGE}.{type_name}"


def _file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="workbench/oip_grpc_predict_v2.proto", package=PACKAGE, syntax="proto3"
    )
    built: dict[str, descriptor_pb2.DescriptorProto] = {}
    for full_name, fields in _MESSAGES.items():
        outer, _, inner = full_name.partition(".")
        if inner:
            parent = built.get(outer)
            if parent is None:
                parent = built[outer] = proto.message_type.add(name=outer)
            message = parent.nested_type.add(name=inner)
        else:
            message = built.get(outer) or proto.message_type.add(name=outer)
            built[outer] = message
        for name, number, kind in fields:
            _field(message, full_name, name, number, kind)
    service = proto.service.add(name=SERVICE.rpartition(".")[2])
    for rpc, (request, response) in RPCS.items():
        service.method.add(name=rpc, input_type=f".{PACKAGE}.{request}", output_type=f".{PACKAGE}.{response}")
    return proto


POOL: Final = descriptor_pool.DescriptorPool()
POOL.Add(_file())


def message(name: str) -> Any:
    """The message class for ``inference.<name>`` (nested names with a dot)."""
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(f"{PACKAGE}.{name}"))


ServerLiveResponse: Final = message("ServerLiveResponse")
ServerReadyResponse: Final = message("ServerReadyResponse")
ModelReadyRequest: Final = message("ModelReadyRequest")
ModelReadyResponse: Final = message("ModelReadyResponse")
ServerMetadataResponse: Final = message("ServerMetadataResponse")
ModelMetadataRequest: Final = message("ModelMetadataRequest")
ModelMetadataResponse: Final = message("ModelMetadataResponse")
ModelInferRequest: Final = message("ModelInferRequest")
ModelInferResponse: Final = message("ModelInferResponse")
InferParameter: Final = message("InferParameter")
