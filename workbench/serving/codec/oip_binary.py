"""The binary tensor data extension of OIP v2 (KServe, Triton): tensors as raw bytes after the JSON, both ways.

A request or response that carries binary data has an ``Inference-Header-Content-Length`` header giving the
length of its JSON header; the body is that JSON followed by the binary tensors, in the order the JSON lists
them, each saying how many bytes are its own (``parameters.binary_data_size``). A numeric tensor is
little-endian and row-major in its datatype's native size (BOOL: one byte, 0 or 1); a BYTES tensor is, per
element, a 4-byte little-endian length followed by that many bytes. A request asks for binary outputs with
``parameters.binary_data`` on an output, or for all of them with ``parameters.binary_data_output`` (an
output's own parameter wins).

Numeric inputs become numpy arrays over the request body (``np.frombuffer`` on a memoryview: no copy), BYTES
inputs an object array of str (bytes where an element is not UTF-8). Either is set as the input's ``data``, where the
JSON path (:mod:`workbench.serving.codec.oip`) validates and decodes it as it does a JSON list: a binary
request is checked, decoded and logged exactly as its JSON twin.
"""

from __future__ import annotations

import struct
from typing import Any, Final

import numpy as np

from workbench.errors import BadRequestError, InvalidInputError
from workbench.serving.codec._json import _show
from workbench.serving.codec.decoded import Array
from workbench.serving.schema import OIP_DATATYPES, oip_datatype

__all__ = [
    "attach_binary_inputs",
    "binary_tensor",
    "parse_header_length",
    "split_body",
]

_LENGTH: Final = struct.Struct("<I")
_LITTLE_ENDIAN: Final = {
    name: dtype.newbyteorder("<") for name, dtype in OIP_DATATYPES.items() if name != "BYTES"
}


# --------------------------------------------------------------------------------------------------------------
# Requests


def parse_header_length(raw: bytes | None) -> int | None:
    """The ``Inference-Header-Content-Length`` value, or None when the request has no such header."""
    if raw is None:
        return None
    value = raw.strip()
    if not value.isdigit():
        raise BadRequestError(
            "the Inference-Header-Content-Length header must be the JSON header's length in bytes, "
            f"got {_show(raw.decode('latin-1'))}"
        )
    return int(value)


def split_body(body: bytes, header_length: int) -> tuple[bytes, memoryview]:
    """The JSON header, and a view (no copy) of the binary data that follows it."""
    if header_length > len(body):
        raise BadRequestError(
            f"the Inference-Header-Content-Length header says the JSON header has {header_length} bytes, "
            f"but the whole body has {len(body)}"
        )
    return body[:header_length], memoryview(body)[header_length:]


def attach_binary_inputs(inputs: list[Any], binary: memoryview) -> None:
    """Set the ``data`` of every input that declares ``binary_data_size``, in order, from ``binary``.

    The sizes must add up to exactly the bytes after the JSON header, and each must be what the input's shape
    and datatype take. Entries that are not objects are left to the JSON path, which names the problem.
    """
    offset = 0
    available = len(binary)
    for i, item in enumerate(inputs):
        if type(item) is not dict:
            continue
        parameters = item.get("parameters")
        if type(parameters) is not dict or "binary_data_size" not in parameters:
            continue
        size = parameters["binary_data_size"]
        if type(size) is not int or size < 0:
            raise BadRequestError(
                f"{_label(item, i)} has binary_data_size {_show(size)}: expected a byte count"
            )
        if "data" in item:
            raise BadRequestError(
                f"{_label(item, i)} has both 'data' and binary_data_size: send its data one way"
            )
        end = offset + size
        if end > available:
            raise BadRequestError(
                f"{_label(item, i)} declares {size} bytes of binary data from byte {offset}, but only {available} "
                "bytes follow the JSON header"
            )
        item["data"] = _binary_data(item, i, binary[offset:end])
        offset = end
    if offset != available:
        raise BadRequestError(
            f"{available} bytes of binary data follow the JSON header, but the inputs' binary_data_size "
            f"add up to {offset}"
        )


def _label(item: dict[str, Any], i: int) -> str:
    name = item.get("name")
    return f"input {name!r}" if type(name) is str else f"inputs[{i}]"


def _binary_data(item: dict[str, Any], i: int, chunk: memoryview) -> Array:
    """A flat array: numeric over ``chunk`` (no copy), or an object array of BYTES elements.

    Runs once per input of every binary request: the checks are inlined, messages built only on failure.
    """
    datatype = item.get("datatype")
    shape = item.get("shape")
    dtype = _LITTLE_ENDIAN.get(datatype) if type(datatype) is str else None
    if dtype is None and datatype != "BYTES":
        raise InvalidInputError(
            f"{_label(item, i)} has unknown datatype {_show(datatype)}: "
            f"expected one of {', '.join(OIP_DATATYPES)}"
        )
    count = 1
    if type(shape) is list:
        for d in shape:
            if type(d) is not int or d < 0:
                count = -1
                break
            count *= d
    if type(shape) is not list or count < 0:
        raise InvalidInputError(
            f"{_label(item, i)} has an invalid shape {_show(shape)}: expected a list of non-negative integers"
        )
    if dtype is None:
        return _bytes_elements(_label(item, i), chunk, count, shape)
    if len(chunk) != count * dtype.itemsize:
        raise InvalidInputError(
            f"{_label(item, i)} has {len(chunk)} bytes of binary data, but shape {shape} of {datatype} takes "
            f"{count * dtype.itemsize} ({count} x {dtype.itemsize})"
        )
    if datatype == "BOOL" and count:
        raw = np.frombuffer(chunk, dtype=np.uint8)
        bad = raw > 1
        if np.count_nonzero(bad):
            position = int(np.argmax(bad))
            raise InvalidInputError(
                f"{_label(item, i)} BOOL element {position} is the byte {int(raw[position])}: "
                "booleans are bytes 0 and 1"
            )
    return np.frombuffer(chunk, dtype=dtype)


def _bytes_elements(label: str, chunk: memoryview, count: int, shape: list[int]) -> Array:
    elements: list[str | bytes] = []
    position = 0
    end = len(chunk)
    unpack = _LENGTH.unpack_from
    while position < end:
        index = len(elements)
        if position + 4 > end:
            raise InvalidInputError(
                f"{label} BYTES element {index} has a truncated length prefix ({end - position} of 4 bytes)"
            )
        (length,) = unpack(chunk, position)
        position += 4
        if position + length > end:
            raise InvalidInputError(
                f"{label} BYTES element {index} says it has {length} bytes, but only {end - position} remain"
            )
        element = chunk[position : position + length]
        try:
            elements.append(str(element, "utf-8"))
        except UnicodeDecodeError:
            elements.append(element.tobytes())
        position += length
    if len(elements) != count:
        raise InvalidInputError(
            f"{label} holds {len(elements)} BYTES elements, but its shape {shape} needs {count}"
        )
    out = np.empty(count, dtype=object)
    out[:] = elements
    return out


# --------------------------------------------------------------------------------------------------------------
# Responses


def binary_tensor(array: Array) -> tuple[str, bytes | Array, int]:
    """An output as binary tensor data: its OIP datatype, its data (bytes or a buffer) and their size in bytes.

    A numeric array is its own buffer (little-endian, C order: copied only when it is neither); strings,
    bytes, objects and datetimes are BYTES, an element at a time.
    """
    datatype = oip_datatype(array.dtype)
    if datatype != "BYTES":
        flat = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).reshape(-1)
        return datatype, flat, flat.nbytes
    values = np.datetime_as_string(array) if array.dtype.kind == "M" else array
    parts: list[bytes] = []
    for value in values.reshape(-1).tolist():
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
        parts.append(_LENGTH.pack(len(raw)))
        parts.append(raw)
    data = b"".join(parts)
    return datatype, data, len(data)
