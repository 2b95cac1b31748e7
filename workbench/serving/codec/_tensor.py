"""Tensor inputs: an array of the spec's dtype and shape, or a float32 matrix for a model without signature.

The batch dimension is free; every other dimension must match the spec (-1: any size). A tensor model's input
may hold no null, NaN or ±inf at all; a model without signature takes nulls as NaN.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from workbench.errors import InvalidInputError
from workbench.serving.codec._json import _no_rows, _show
from workbench.serving.codec._numeric import (
    _all_finite,
    _as_array,
    _integer_rows,
    _IntTargets,
    _narrow,
    _nonfinite,
)
from workbench.serving.codec.decoded import Array
from workbench.serving.schema import TensorSpec


def _tensor(spec: TensorSpec | None, data: Any, shape: list[int] | None, label: str) -> Array:
    """A tensor input → array of the spec's dtype and shape; no spec (unsigned model) → float32 ``[n, k]``."""
    array = _as_array(data, label)
    if array.dtype.kind in "US":
        array = np.array(data, dtype=object).reshape(array.shape)
    if shape is not None:
        count = math.prod(shape)
        if array.size != count:
            raise InvalidInputError(f"{label} has {array.size} values, but its shape {shape} needs {count}")
        array = array.reshape(shape)
    else:
        shape = list(array.shape)
    if spec is not None:
        expected = spec.shape
        if len(shape) != len(expected) or any(
            e not in (-1, d) for e, d in zip(expected[1:], shape[1:], strict=True)
        ):
            raise InvalidInputError(
                f"{label} has shape {shape}, but the model expects {list(expected)} (-1: any size)"
            )
        target = spec.numpy_dtype
    else:
        if array.ndim == 0:
            raise InvalidInputError(f"{label} must be a list of rows, got a single value")
        if array.ndim == 1:
            array = array.reshape(-1, 1)
        target = np.dtype(np.float32)
    rows = array.shape[0]
    if rows == 0:
        raise _no_rows(f"{label} has shape {list(array.shape)}")
    row_size = array.size // rows
    kind = array.dtype.kind
    if target.kind not in "fiub":
        return _tensor_strings(array, label, row_size)
    if kind == "O":
        array = _tensor_numbers(array, label, row_size, allow_null=spec is None)
    elif kind not in "fiub":
        raise InvalidInputError(
            f"{label} holds the non-numeric value {_show(array.flat[0].item())} at row 0, but the model takes {target}"
        )
    if target.kind == "f":
        out = _narrow(array, target)
        if spec is not None and not _all_finite(out):
            flat_out = out.reshape(-1)
            position = int(np.argmax(~np.isfinite(flat_out)))
            value = array.reshape(-1)[position].item()
            row = position // row_size
            if isinstance(value, float) and not math.isfinite(value):
                what = _nonfinite(value)
                raise InvalidInputError(
                    f"{label} contains {what} at row {row}, which the model signature forbids", row=row
                )
            raise InvalidInputError(
                f"{label} value {_show(value)} at row {row} does not fit in {target}", row=row
            )
        return out
    if kind == "f" and not _all_finite(array):
        position = int(np.argmax(~np.isfinite(array.reshape(-1))))
        value = float(array.reshape(-1)[position])
        what = _nonfinite(value)
        row = position // row_size
        raise InvalidInputError(
            f"{label} contains {what} at row {row}, which the model signature forbids", row=row
        )
    converted = _integer_rows(
        array.reshape(1, -1), _IntTargets([target], [target.name]), lambda _: label, row_size
    )[0]
    return converted.reshape(array.shape)


def _tensor_numbers(array: Array, label: str, row_size: int, *, allow_null: bool) -> Array:
    flat = array.reshape(-1).tolist()
    out = np.empty(len(flat), dtype=np.float64)
    for position, value in enumerate(flat):
        if value is None:
            if not allow_null:
                raise InvalidInputError(
                    f"{label} contains null at row {position // row_size}, which the model signature forbids",
                    row=position // row_size,
                )
            out[position] = np.nan
        elif type(value) in (float, int, bool):
            out[position] = value
        else:
            raise InvalidInputError(
                f"{label} holds the non-numeric value {_show(value)} at row {position // row_size}",
                row=position // row_size,
            )
    return out.reshape(array.shape)


def _tensor_strings(array: Array, label: str, row_size: int) -> Array:
    for position, value in enumerate(array.reshape(-1).tolist()):
        if type(value) is not str:
            row = position // row_size
            raise InvalidInputError(
                f"{label} holds the non-string value {_show(value)} at row {row}", row=row
            )
    return array.astype(object)
