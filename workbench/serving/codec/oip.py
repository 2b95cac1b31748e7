"""OIP v2 (Open Inference Protocol) inference requests and responses.

What :func:`decode_oip` accepts, for a model whose signature has (the rules shared with MLflow JSON are in the
package docstring, :mod:`workbench.serving.codec`)

* **columns** — one input per column (shape ``[n]`` or ``[n, 1]``), or a single ``[n, k]`` matrix (any
  name) in signature column order. A per-column input's datatype must suit its column (``ACCEPTED_DATATYPES``:
  no FP for integer columns); a matrix carries one datatype for every column, so there an integer column
  takes any number that is integral and in range.
* **a tensor** — exactly one input whose shape matches the spec; the batch dimension is free.
* **no signature** — a single numeric input, passed through as float32 ``[n, k]``; or several inputs, each an
  optional column typed by its datatype.

Any input may come as binary tensor data, and any output may be asked for as binary tensor data
(:mod:`workbench.serving.codec.oip_binary`): the rules above are the same for them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import orjson

from workbench.errors import BadRequestError, InvalidInputError
from workbench.serving.codec._columns import (
    _columns_from_lists,
    _finish_block,
    _names_error,
    _Plan,
    _plan,
)
from workbench.serving.codec._json import _OPTIONS, _json_type, _jsonable, _loads, _no_rows, _show
from workbench.serving.codec._numeric import _as_array
from workbench.serving.codec._tensor import _tensor
from workbench.serving.codec.decoded import JSON_OUTPUTS, Array, BinaryOutputs, Decoded
from workbench.serving.codec.oip_binary import attach_binary_inputs, binary_tensor, split_body
from workbench.serving.schema import (
    FLOAT_DATATYPES,
    INTEGER_DATATYPES,
    NUMERIC_DATATYPES,
    OIP_DATATYPES,
    ColumnSpec,
    ModelSchema,
    TensorSpec,
    oip_datatype,
    tensor_accepted_datatypes,
)

__all__ = ["decode_oip", "encode_oip", "encode_oip_response"]


# --------------------------------------------------------------------------------------------------------------
# Requests


_Input = tuple[list[int], str, "list[Any] | Array", dict[str, Any] | None]


_DATATYPE_COLUMN: Final[Mapping[str, str]] = {
    **dict.fromkeys(FLOAT_DATATYPES, "double"),
    **dict.fromkeys(INTEGER_DATATYPES, "long"),
    "BOOL": "boolean",
    "BYTES": "string",
}


def decode_oip(body: bytes, schema: ModelSchema, *, header_length: int | None = None) -> Decoded:
    """Decode an OIP v2 inference request against the model's schema (see the module docstring).

    ``header_length`` is the request's ``Inference-Header-Content-Length``: the body is then a JSON header of
    that many bytes followed by binary tensor data.
    """
    if header_length is None:
        try:
            doc = _loads(body)
        except BadRequestError:
            _refuse_unannounced_binary(body)
            raise
        binary = None
    else:
        head, binary = split_body(body, header_length)
        try:
            doc = _loads(head)
        except BadRequestError as exc:
            raise BadRequestError(
                f"the body's first {header_length} bytes (Inference-Header-Content-Length) are not the JSON "
                f"header: {exc.message}"
            ) from None
    if type(doc) is not dict:
        raise BadRequestError(
            f"the request body must be a JSON object with an 'inputs' list, got {_json_type(doc)}"
        )
    raw_inputs = doc.get("inputs")
    if type(raw_inputs) is not list:
        raise BadRequestError("the request body has no 'inputs' list")
    request_id = doc.get("id")
    if request_id is not None and type(request_id) is not str:
        raise InvalidInputError(f"the request 'id' must be a string, got {_json_type(request_id)}")
    parameters = doc.get("parameters")
    if parameters is None:
        parameters = {}
    elif type(parameters) is not dict:
        raise InvalidInputError(f"the request 'parameters' must be an object, got {_json_type(parameters)}")
    outputs, binary_outputs = _requested_outputs(doc.get("outputs"), parameters)
    if binary is not None:
        attach_binary_inputs(raw_inputs, binary)

    columns: dict[str, Array] | None = None
    if schema.columns is not None:
        matrix, columns, rows = _oip_columns(_plan(schema), raw_inputs)
    elif schema.tensor is not None:
        matrix = _oip_tensor(schema.tensor, _parse_inputs(raw_inputs))
        rows = matrix.shape[0]
    else:
        if not raw_inputs:
            raise InvalidInputError("the request has no inputs")
        matrix, columns, rows = _oip_unsigned(raw_inputs)
    return Decoded(matrix, rows, columns, request_id, outputs, parameters, binary_outputs)


def _refuse_unannounced_binary(body: bytes) -> None:
    """Name the likely cause when a body is a JSON object followed by binary data, but no header says so."""
    try:
        _, end = json.JSONDecoder().raw_decode(body.decode("latin-1"))
    except ValueError:
        return
    if 0 < end < len(body) and b"binary_data_size" in body[:end]:
        raise BadRequestError(
            f"the body holds {len(body) - end} bytes after its JSON object, and its inputs declare "
            "binary_data_size, but the request has no Inference-Header-Content-Length header, "
            f"which binary tensor data needs ({end} here)"
        )


def _requested_outputs(raw: Any, parameters: dict[str, Any]) -> tuple[tuple[str, ...] | None, BinaryOutputs]:
    """The outputs the request names (None: all), and which of them it wants as binary tensor data."""
    default = parameters.get("binary_data_output", False)
    if type(default) is not bool:
        raise InvalidInputError(
            f"the request parameter 'binary_data_output' must be a boolean, got {_json_type(default)}"
        )
    if raw is None:
        return None, BinaryOutputs(default) if default else JSON_OUTPUTS
    if type(raw) is not list:
        raise InvalidInputError(
            f"the request 'outputs' must be a list of objects with a name, got {_json_type(raw)}"
        )
    names = []
    flipped = []
    for i, item in enumerate(raw):
        if type(item) is not dict or type(item.get("name")) is not str:
            raise InvalidInputError(f"outputs[{i}] must be an object with a 'name' string")
        name = item["name"]
        names.append(name)
        output_parameters = item.get("parameters")
        if output_parameters is None:
            continue
        if type(output_parameters) is not dict:
            raise InvalidInputError(f"output {name!r} parameters must be an object")
        if "classification" in output_parameters:
            raise InvalidInputError(
                f"output {name!r} asks for the classification extension, which this server does not support"
            )
        wanted = output_parameters.get("binary_data", default)
        if type(wanted) is not bool:
            raise InvalidInputError(
                f"output {name!r} parameter 'binary_data' must be a boolean, got {_json_type(wanted)}"
            )
        if wanted != default:
            flipped.append(name)
    if not default and not flipped:
        return tuple(names) or None, JSON_OUTPUTS
    return tuple(names) or None, BinaryOutputs(default, frozenset(flipped))


def _parse_inputs(raw_inputs: list[Any]) -> dict[str, _Input]:
    inputs: dict[str, _Input] = {}
    for i, item in enumerate(raw_inputs):
        name, found = _parse_input(i, item)
        if name in inputs:
            raise InvalidInputError(f"duplicate input name(s) [{name!r}]", duplicates=[name])
        inputs[name] = found
    return inputs


def _parse_input(i: int, item: Any) -> tuple[str, _Input]:
    """Validate one entry of ``inputs`` (structure, shape, datatype, data type) and unpack it."""
    if type(item) is not dict:
        raise BadRequestError(f"inputs[{i}] must be an object with name, shape, datatype and data")
    name = item.get("name")
    if type(name) is not str:
        raise BadRequestError(f"inputs[{i}] has no 'name' string")
    shape = item.get("shape")
    datatype = item.get("datatype")
    data = item.get("data")
    if shape is None or datatype is None or data is None:
        field = "shape" if shape is None else ("datatype" if datatype is None else "data")
        parameters = item.get("parameters")
        if field == "data" and type(parameters) is dict and "binary_data_size" in parameters:
            raise BadRequestError(
                f"input {name!r} declares binary_data_size, but the request has no "
                "Inference-Header-Content-Length header, so its body holds no binary data",
                input=name,
            )
        raise BadRequestError(f"input {name!r} has no {field!r}", input=name)
    if type(shape) is not list:
        raise _bad_shape(name, shape)
    for d in shape:
        if type(d) is not int or d < 0:
            raise _bad_shape(name, shape)
    if type(datatype) is not str or datatype not in OIP_DATATYPES:
        raise InvalidInputError(
            f"input {name!r} has unknown datatype {_show(datatype)}: expected one of {', '.join(OIP_DATATYPES)}",
            input=name,
        )
    if type(data) is not list and type(data) is not np.ndarray:
        raise InvalidInputError(f"input {name!r} data must be a list, got {_json_type(data)}", input=name)
    parameters = item.get("parameters")
    if parameters is not None and type(parameters) is not dict:
        raise InvalidInputError(f"input {name!r} parameters must be an object", input=name)
    return name, (shape, datatype, data, parameters)


def _bad_shape(name: str, shape: Any) -> InvalidInputError:
    return InvalidInputError(
        f"input {name!r} has an invalid shape {_show(shape)}: expected a list of non-negative integers",
        input=name,
    )


def _refuse_datatype(
    name: str, datatype: str, what: str, accepted: frozenset[str], integer: bool
) -> InvalidInputError:
    expected = ", ".join(d for d in OIP_DATATYPES if d in accepted)
    hint = (
        " (floating-point data cannot go into an integer column: send INT64)"
        if integer and datatype in FLOAT_DATATYPES
        else ""
    )
    return InvalidInputError(
        f"input {name!r} has datatype {datatype}, which {what} does not accept{hint}: expected one of {expected}",
        input=name,
        datatype=datatype,
    )


def _oip_columns(plan: _Plan, raw_inputs: list[Any]) -> tuple[Array, dict[str, Array], int]:
    if len(raw_inputs) == 1:
        single, found = _parse_input(0, raw_inputs[0])
        if single not in plan.index and len(found[0]) == 2:
            return _oip_matrix(plan, single, found)
    k = plan.k
    index = plan.index
    accepted = plan.accepted
    datas: list[Any] = [None] * k
    filled = 0
    shapes: list[list[int] | None] = [None] * k
    b64: list[bool] | bool = False
    extra: list[str] = []
    rows = -1
    first: Any = ""
    for i, item in enumerate(raw_inputs):
        # Fast path: a well-formed input for a known column, checked inline; anything else is re-examined by
        # _parse_input, which names what is wrong.
        j = None
        n = -1
        if type(item) is dict:
            name = item.get("name")
            shape = item.get("shape")
            datatype = item.get("datatype")
            data = item.get("data")
            parameters = item.get("parameters")
            if (
                type(name) is str
                and type(shape) is list
                and type(datatype) is str
                and (type(data) is list or type(data) is np.ndarray)
            ):
                j = index.get(name)
                if j is not None:
                    rank = len(shape)
                    if rank == 1 or (rank == 2 and shape[1] == 1 and type(shape[1]) is int):
                        n = shape[0]
                        if type(n) is not int or n < 0 or datatype not in accepted[j]:
                            n = -1
                    if parameters is not None and type(parameters) is not dict:
                        n = -1
        if n < 0:
            name, (shape, datatype, data, parameters) = _parse_input(i, item)
            j = index.get(name)
            if j is None:
                if name in extra:
                    raise InvalidInputError(f"duplicate input name(s) [{name!r}]", duplicates=[name])
                extra.append(name)
                continue
            if datatype not in accepted[j]:
                column_type = plan.specs[j].dtype
                raise _refuse_datatype(
                    name,
                    datatype,
                    f"the model signature's {column_type} column",
                    accepted[j],
                    column_type in ("long", "integer"),
                )
            rank = len(shape)
            if rank != 1 and not (rank == 2 and shape[1] == 1):
                raise InvalidInputError(
                    f"input {name!r} has shape {shape}: a column input must have shape [n] or [n, 1]",
                    input=name,
                )
            n = shape[0]
        assert j is not None
        if datas[j] is not None:
            raise InvalidInputError(f"duplicate input name(s) [{name!r}]", duplicates=[name])
        if rows < 0:
            rows, first = n, name
        elif n != rows:
            raise InvalidInputError(
                f"inconsistent row counts: input {first!r} has {rows} rows, input {name!r} has {n}",
                input=name,
            )
        datas[j] = data
        filled += 1
        shapes[j] = shape
        if parameters is not None and parameters.get("content_type") == "base64":
            if b64 is False:
                b64 = [False] * k
            assert isinstance(b64, list)
            b64[j] = True
    absent = k - filled
    if extra or absent:
        given = [plan.names[j] for j in range(k) if datas[j] is not None] + extra
        _names_error(
            plan, given, f" (one input per column, or a single [n, {k}] matrix in this column order)"
        )
    if rows <= 0:
        raise _no_rows(f"input {first!r} has shape [0]" if first else "the request has no inputs")
    matrix, columns = _columns_from_lists(
        plan, datas, rows, shapes=shapes, base64_binary=b64, complete=absent == 0
    )
    return matrix, columns, rows


def _oip_matrix(plan: _Plan, name: str, found: _Input) -> tuple[Array, dict[str, Array], int]:
    shape, datatype, data, _ = found
    if not plan.numeric:
        raise InvalidInputError(
            f"input {name!r} is a matrix, but the model has string, binary or datetime columns: "
            f"send one input per column {list(plan.names)}",
            input=name,
        )
    if shape[1] != plan.k:
        raise InvalidInputError(
            f"input {name!r} has shape {shape}, but the model takes {plan.k} columns {list(plan.names)}: "
            f"send a [n, {plan.k}] matrix in this column order, or one input per column",
            input=name,
        )
    if datatype not in NUMERIC_DATATYPES:
        raise _refuse_datatype(
            name, datatype, "a matrix of the model's numeric columns", NUMERIC_DATATYPES, False
        )
    n = shape[0]
    if n == 0:
        raise _no_rows(f"input {name!r} has shape {shape}")
    label = f"input {name!r}"
    array = _as_array(data, label)
    if array.size != n * plan.k:
        raise InvalidInputError(
            f"{label} has {array.size} values, but its shape {shape} needs {n * plan.k}", input=name
        )
    array = array.reshape(n, plan.k)
    if array.dtype.kind in "fiub":
        matrix, columns = _finish_block(plan, array.T, name)
        return matrix, columns, n
    if array.dtype.kind != "O":
        array = np.array(data, dtype=object).reshape(n, plan.k)
    matrix, columns = _columns_from_lists(plan, list(array.T), n, where=name, try_block=False)
    return matrix, columns, n


def _oip_tensor(spec: TensorSpec, inputs: dict[str, _Input]) -> Array:
    if len(inputs) != 1:
        raise InvalidInputError(
            f"the model takes one tensor input{f' {spec.name!r}' if spec.name else ''}, "
            f"got {len(inputs)}: {list(inputs)}"
        )
    name, (shape, datatype, data, _) = next(iter(inputs.items()))
    accepted = tensor_accepted_datatypes(spec.numpy_dtype)
    if datatype not in accepted:
        raise _refuse_datatype(
            name, datatype, f"the model's {spec.dtype} tensor", accepted, spec.numpy_dtype.kind in "iu"
        )
    return _tensor(spec, data, shape, f"input {name!r}")


def _oip_unsigned(raw_inputs: list[Any]) -> tuple[Array, dict[str, Array] | None, int]:
    inputs = _parse_inputs(raw_inputs)
    if len(inputs) == 1:
        name, (shape, datatype, data, _) = next(iter(inputs.items()))
        if datatype not in NUMERIC_DATATYPES:
            raise _refuse_datatype(name, datatype, "a model without signature", NUMERIC_DATATYPES, False)
        matrix = _tensor(None, data, shape, f"input {name!r}")
        return matrix, None, matrix.shape[0]
    specs = tuple(
        ColumnSpec(name, _DATATYPE_COLUMN[found[1]], required=False) for name, found in inputs.items()
    )
    return _oip_columns(_Plan(specs), raw_inputs)


# --------------------------------------------------------------------------------------------------------------
# Responses


def encode_oip(
    *,
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Mapping[str, Any],
    selected: tuple[str, ...] | None,
) -> bytes:
    """An OIP v2 inference response in JSON; ``selected`` (the request's ``outputs``) picks and orders them."""
    body, _ = encode_oip_response(
        model_name=model_name,
        model_version=model_version,
        request_id=request_id,
        outputs=outputs,
        selected=selected,
    )
    return body


def encode_oip_response(
    *,
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Mapping[str, Any],
    selected: tuple[str, ...] | None,
    binary: BinaryOutputs = JSON_OUTPUTS,
) -> tuple[bytes, int | None]:
    """An OIP v2 inference response, and the length of its JSON header when some output is binary data.

    ``selected`` (the request's ``outputs``) picks and orders the outputs; those in ``binary`` are sent as
    binary tensor data after the JSON header, whose length then goes in ``Inference-Header-Content-Length``.
    """
    if selected is None:
        names: Sequence[str] = tuple(outputs)
    else:
        unknown = [name for name in selected if name not in outputs]
        if unknown:
            raise InvalidInputError(
                f"unknown output(s) {unknown}: the model produces {list(outputs)}", unknown=unknown
            )
        names = selected
    encoded = []
    blobs: list[Any] = []
    for name in names:
        array = np.asarray(outputs[name])
        if binary is not JSON_OUTPUTS and name in binary:
            datatype, blob, size = binary_tensor(array)
            encoded.append(
                {
                    "name": name,
                    "datatype": datatype,
                    "shape": list(array.shape),
                    "parameters": {"binary_data_size": size},
                }
            )
            blobs.append(blob)
            continue
        encoded.append(
            {
                "name": name,
                "datatype": oip_datatype(array.dtype),
                "shape": list(array.shape),
                "data": _jsonable(array.reshape(-1)),
            }
        )
    response: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        response["id"] = request_id
    response["parameters"] = {}
    response["outputs"] = encoded
    header = orjson.dumps(response, option=_OPTIONS)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)
