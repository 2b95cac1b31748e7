"""JSON in and out: request bodies, response serialisation, and the pieces error messages are built from.

JSON has no NaN: a body that spells ``NaN``/``Infinity`` (as Python's ``json`` module does) is parsed anyway,
so the answer names the input instead of saying "malformed JSON".
"""

from __future__ import annotations

import base64
import json
from typing import Any, Final

import numpy as np
import orjson

from workbench.errors import BadRequestError, InvalidInputError
from workbench.serving.codec.decoded import Array

# --------------------------------------------------------------------------------------------------------------
# Requests


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        error = exc
    if isinstance(body, str):
        body = body.encode()
    # orjson refuses NaN/Infinity (not JSON) and numbers beyond float range; Python clients send them anyway.
    # Parse those bodies with the standard library so the answer names the input instead of "malformed JSON".
    if b"NaN" in body or b"Infinity" in body or "infinity" in str(error):
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            pass
    raise BadRequestError(f"malformed JSON: {error}") from None


# --------------------------------------------------------------------------------------------------------------
# Error messages


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _label(name: str, where: str | None) -> str:
    return f"input {name!r}" if where is None else f"input {where!r} (column {name!r})"


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _no_rows(detail: str) -> InvalidInputError:
    return InvalidInputError(f"the request holds no rows: {detail}")


def _forbidden(label: str, what: str, row: int, name: str) -> InvalidInputError:
    return InvalidInputError(
        f"{label} contains {what} at row {row}, which the model signature forbids", input=name, row=row
    )


# --------------------------------------------------------------------------------------------------------------
# Responses


_OPTIONS: Final = orjson.OPT_SERIALIZE_NUMPY


def _jsonable(array: Array) -> Any:
    """An array orjson serialises as is (native numeric, C-contiguous), or a nested list for the rest."""
    kind = array.dtype.kind
    if kind in "fiub":
        if array.dtype == np.float16:
            array = array.astype(np.float32)
        elif not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        if array.ndim == 0:
            return array.item()
        return np.ascontiguousarray(array)
    if kind == "M":
        return np.datetime_as_string(array).tolist()
    return _plain(array.tolist())


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, np.generic):
        return value.item()
    return value
