"""Request and response bodies of the data plane: OIP v2 and MLflow scoring JSON, to numpy and back.

Every request is decoded on the request path, so the common case is a handful of C calls: orjson parses the
body, one ``np.array`` call turns all columns into a block, and vectorised checks validate it. Only a request
that fails that fast path (nulls, strings, mixed nesting, a bad value) takes the per-column path, which finds
and names the offending input, row and value. Rows in messages count from 0.

What the decoders accept, for a model whose signature has

* **columns** — OIP: one input per column (shape ``[n]`` or ``[n, 1]``), or a single ``[n, k]`` matrix (any
  name) in signature column order. MLflow: ``dataframe_split``, ``dataframe_records``, ``instances`` (rows
  as lists in column order, or objects), ``inputs`` (column → values, or rows).
  A per-column input's datatype must suit its column (``ACCEPTED_DATATYPES``: no FP for integer columns); a
  matrix carries one datatype for every column, so there (and in MLflow JSON, which has no datatypes) an
  integer column takes any number that is integral and in range.
* **a tensor** — exactly one input whose shape matches the spec; the batch dimension is free.
* **no signature** — a single numeric input, passed through as float32 ``[n, k]``; or named columns (several
  OIP inputs, an MLflow data frame), each optional, typed by what the request sends.

A required column must be present and hold no null, NaN or ±inf; an optional one may be absent (all missing)
or hold missing values (NaN in numeric columns; an integer or boolean column with missing values decodes as
float64). A tensor model's input may hold no NaN or ±inf at all. JSON has no NaN: a body that spells
``NaN``/``Infinity`` (as Python's ``json`` module does) is parsed anyway, so the answer names the input.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson

from workbench.errors import BadRequestError, InvalidInputError
from workbench.serving.schema import (
    COLUMN_NUMPY_DTYPES,
    FLOAT_DATATYPES,
    INTEGER_DATATYPES,
    NUMERIC_COLUMN_TYPES,
    NUMERIC_DATATYPES,
    OIP_DATATYPES,
    ColumnSpec,
    ModelSchema,
    TensorSpec,
    accepted_datatypes,
    oip_datatype,
    tensor_accepted_datatypes,
)

Array = npt.NDArray[Any]

__all__ = ["Decoded", "decode_mlflow", "decode_oip", "encode_mlflow", "encode_oip"]


@dataclass(frozen=True)
class Decoded:
    """One decoded request.

    ``matrix`` is what a torch model consumes: float32 ``[rows, n_features]`` in signature column order for
    column models (``[rows, 0]`` when a column is a string, binary or datetime: use ``columns``), the spec's
    dtype and shape for tensor models, float32 ``[rows, k]`` for a model without signature.
    ``columns`` holds one 1-D array per signature column (for pyfunc models and the prediction log), None for
    tensor models.
    """

    matrix: Array
    rows: int
    columns: dict[str, Array] | None
    request_id: str | None
    outputs: tuple[str, ...] | None
    parameters: dict[str, Any]


# --------------------------------------------------------------------------------------------------------------
# JSON


_OPTIONS: Final = orjson.OPT_SERIALIZE_NUMPY


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


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _label(name: str, where: str | None) -> str:
    return f"input {name!r}" if where is None else f"input {where!r} (column {name!r})"


def _no_rows(detail: str) -> InvalidInputError:
    return InvalidInputError(f"the request holds no rows: {detail}")


# --------------------------------------------------------------------------------------------------------------
# Per-schema plan (computed once per schema, kept on the instance)


_INT64_MAX: Final = 2**63 - 1
_INTEGER_COLUMN_TYPES: Final = frozenset({"long", "integer", "boolean"})


class _Plan:
    """What decoding against a column schema needs, precomputed: names, indices, checks to run."""

    __slots__ = (
        "accepted",
        "float32_idx",
        "index",
        "int_idx",
        "int_take",
        "int_targets",
        "k",
        "name_set",
        "names",
        "numeric",
        "required_numeric_idx",
        "specs",
    )

    def __init__(self, columns: tuple[ColumnSpec, ...]) -> None:
        self.specs = columns
        self.names = tuple(c.name for c in columns)
        self.index = {name: j for j, name in enumerate(self.names)}
        self.name_set = frozenset(self.names)
        self.k = len(columns)
        self.numeric = all(c.dtype in NUMERIC_COLUMN_TYPES for c in columns)
        self.accepted = tuple(accepted_datatypes(c.dtype) for c in columns)
        self.int_idx = [j for j, c in enumerate(columns) if c.dtype in _INTEGER_COLUMN_TYPES]
        self.int_take = np.array(self.int_idx, dtype=np.intp)
        self.int_targets = _IntTargets(
            [COLUMN_NUMPY_DTYPES[columns[j].dtype] for j in self.int_idx],
            [columns[j].dtype for j in self.int_idx],
        )
        self.float32_idx = [j for j, c in enumerate(columns) if c.dtype == "float"]
        self.required_numeric_idx = [
            j for j, c in enumerate(columns) if c.required and c.dtype in NUMERIC_COLUMN_TYPES
        ]


def _plan(schema: ModelSchema) -> _Plan:
    # ModelSchema is a frozen dataclass without slots: cache on its __dict__, as functools.cached_property does.
    plan: _Plan | None = schema.__dict__.get("_codec_plan")
    if plan is None:
        assert schema.columns is not None
        plan = _Plan(schema.columns)
        schema.__dict__["_codec_plan"] = plan
    return plan


def _names_error(plan: _Plan, given: Sequence[str], hint: str = "") -> None:
    """Raise for missing required or unexpected columns; return when the names fit."""
    present = set(given)
    extra = [name for name in given if name not in plan.index]
    missing = [c.name for c in plan.specs if c.required and c.name not in present]
    problems = []
    if missing:
        problems.append(f"missing input(s) {missing}")
    if extra:
        problems.append(f"unexpected input(s) {extra}")
    if problems:
        raise InvalidInputError(
            f"{' and '.join(problems)}: the model expects {list(plan.names)}{hint}",
            missing=missing,
            unexpected=extra,
        )


def _check_duplicates(names: Sequence[str]) -> None:
    if len(set(names)) != len(names):
        seen: set[str] = set()
        dups: list[str] = []
        for name in names:
            if name in seen and name not in dups:
                dups.append(name)
            seen.add(name)
        raise InvalidInputError(f"duplicate input name(s) {dups}", duplicates=dups)


# --------------------------------------------------------------------------------------------------------------
# Columns: the fast block path and the per-column path


def _narrow(array: Array, dtype: np.dtype[Any]) -> Array:
    """``array.astype(dtype)`` (C order); values the dtype cannot hold become ±inf for the finiteness check."""
    try:
        return array.astype(dtype, order="C")
    except RuntimeWarning:
        # Only when warnings are errors (an overflow warns); errstate costs a microsecond, so not by default.
        with np.errstate(over="ignore"):
            return array.astype(dtype, order="C")


def _block(datas: list[Any], k: int, n: int) -> Array | None:
    """One numeric ``(k, n)`` array from k value lists of n values each (flat or nested), or None."""
    try:
        block = np.array(datas)
    except (ValueError, TypeError):
        return None
    if block.dtype.kind in "fiub" and block.ndim >= 2 and block.shape[0] == k and block.size == k * n:
        return block.reshape(k, n)
    return None


def _finish_block(
    plan: _Plan, block: Array, where: str | None, int_block: Array | None = None
) -> tuple[Array, dict[str, Array]]:
    """Columns and matrix from a numeric ``(k, n)`` block whose row j is signature column j (all numeric).

    ``int_block`` optionally holds the integer/boolean columns alone, as sent (see ``plan.int_idx``).
    """
    kind = block.dtype.kind
    fblock = block if block.dtype == np.float64 else block.astype(np.float64)
    matrix = _narrow(fblock.T, np.dtype(np.float32))
    names = plan.names
    columns = dict(zip(names, fblock, strict=True))
    for j in plan.float32_idx:
        columns[names[j]] = _narrow(fblock[j], np.dtype(np.float32))
    if plan.int_idx:
        idx = plan.int_idx
        if int_block is None:
            int_block = (block if kind in "iub" else fblock).take(plan.int_take, axis=0)
        converted = _integer_rows(int_block, plan.int_targets, lambda i: _label(names[idx[i]], where))
        for j, array in zip(idx, converted, strict=True):
            columns[names[j]] = array
    _check_finite(plan, matrix, columns, where)
    return matrix, columns


def _columns_from_lists(
    plan: _Plan,
    datas: list[Any],
    n: int,
    *,
    shapes: list[list[int] | None] | None = None,
    base64_binary: Sequence[bool] | bool = False,
    where: str | None = None,
    try_block: bool = True,
    complete: bool | None = None,
) -> tuple[Array, dict[str, Array]]:
    """Columns and matrix from one value list per signature column (None: an absent optional column)."""
    if complete is None:
        complete = not any(d is None for d in datas)
    if try_block and plan.numeric and complete:
        block = _block(datas, plan.k, n)
        if block is not None:
            int_block = None
            if plan.int_idx and block.dtype.kind == "f":
                # Integer columns straight from their values: exact beyond 2**53, and no integrality checks
                # when the values are integers.
                int_block = _block([datas[j] for j in plan.int_idx], len(plan.int_idx), n)
            return _finish_block(plan, block, where, int_block)
    columns: dict[str, Array] = {}
    for j, spec in enumerate(plan.specs):
        data = datas[j]
        if data is None:
            columns[spec.name] = _absent(spec, n)
            continue
        b64 = base64_binary if isinstance(base64_binary, bool) else base64_binary[j]
        columns[spec.name] = _convert_column(
            data, spec, _label(spec.name, where), n, shapes[j] if shapes is not None else None, b64
        )
    if plan.numeric:
        matrix = np.empty((n, plan.k), dtype=np.float32)
        with np.errstate(over="ignore"):
            for j, name in enumerate(plan.names):
                matrix[:, j] = columns[name]
    else:
        matrix = np.empty((n, 0), dtype=np.float32)
    _check_finite(plan, matrix, columns, where)
    return matrix, columns


def _absent(spec: ColumnSpec, n: int) -> Array:
    """An optional column the request left out: all missing."""
    if spec.dtype in NUMERIC_COLUMN_TYPES:
        return np.full(n, np.nan, dtype=np.float32 if spec.dtype == "float" else np.float64)
    if spec.dtype == "datetime":
        return np.full(n, np.datetime64("NaT"), dtype=COLUMN_NUMPY_DTYPES["datetime"])
    return np.full(n, None, dtype=object)


def _as_array(values: Any, label: str) -> Array:
    try:
        return np.asarray(values)
    except (ValueError, TypeError):
        raise InvalidInputError(f"{label} data is ragged: its nested lists differ in length") from None


def _convert_column(
    values: Any, spec: ColumnSpec, label: str, n: int, shape: list[int] | None, base64_binary: bool
) -> Array:
    """One column's values (flat or ``[n, 1]``-nested) → a 1-D array of the column's dtype, or a named error."""
    array = _as_array(values, label)
    if array.dtype.kind in "US":
        # numpy turns [1.5, "x"] into strings: look at the values as sent.
        array = np.array(values, dtype=object).reshape(array.shape)
    if shape is not None:
        count = math.prod(shape)
        if array.size != count:
            raise InvalidInputError(
                f"{label} has {array.size} values, but its shape {shape} needs {count}", input=spec.name
            )
        array = array.reshape(n)
    elif array.shape != (n,):
        raise InvalidInputError(f"{label} must hold one value per row, got nested values", input=spec.name)
    column_type = spec.dtype
    if column_type in ("double", "float"):
        return _narrow(_numbers(array, spec, label), COLUMN_NUMPY_DTYPES[column_type])
    if column_type in _INTEGER_COLUMN_TYPES:
        numbers = _numbers(array, spec, label)
        targets = _IntTargets([COLUMN_NUMPY_DTYPES[column_type]], [column_type])
        return _integer_rows(numbers.reshape(1, n), targets, lambda _: label)[0]
    strings = _strings(array, spec, label)
    if column_type == "string":
        return strings
    if column_type == "binary":
        return _binary(strings, spec, label, base64_binary)
    return _datetimes(strings, spec, label)


def _numbers(array: Array, spec: ColumnSpec, label: str) -> Array:
    """A numeric array (kind f/i/u/b); nulls become NaN where the column is optional."""
    kind = array.dtype.kind
    if kind in "fiub":
        return array
    if kind != "O":
        r = 0
        raise InvalidInputError(
            f"{label} holds the non-numeric value {_show(array.flat[0].item())} at row {r}, "
            f"but the model signature says {spec.dtype}",
            input=spec.name,
            row=r,
        )
    out = np.empty(array.shape, dtype=np.float64)
    for r, value in enumerate(array.tolist()):
        if value is None:
            if spec.required:
                raise _forbidden(label, "null", r, spec.name)
            out[r] = np.nan
        elif type(value) in (float, int, bool):
            out[r] = value
        else:
            raise InvalidInputError(
                f"{label} holds the non-numeric value {_show(value)} at row {r}, "
                f"but the model signature says {spec.dtype}",
                input=spec.name,
                row=r,
            )
    return out


def _forbidden(label: str, what: str, row: int, name: str) -> InvalidInputError:
    return InvalidInputError(
        f"{label} contains {what} at row {row}, which the model signature forbids", input=name, row=row
    )


def _strings(array: Array, spec: ColumnSpec, label: str) -> Array:
    kind = array.dtype.kind
    if kind == "U":
        return array.astype(object)
    values = array.tolist()
    for r, value in enumerate(values):
        if value is None:
            if spec.required:
                raise _forbidden(label, "null", r, spec.name)
        elif type(value) is not str:
            what = " (ISO 8601 strings)" if spec.dtype == "datetime" else ""
            raise InvalidInputError(
                f"{label} holds the non-string value {_show(value)} at row {r}, "
                f"but the model signature says {spec.dtype}{what}",
                input=spec.name,
                row=r,
            )
    return np.array(values, dtype=object)


def _binary(strings: Array, spec: ColumnSpec, label: str, base64_binary: bool) -> Array:
    out = np.empty(len(strings), dtype=object)
    for r, value in enumerate(strings.tolist()):
        if value is None:
            out[r] = None
        elif base64_binary:
            try:
                out[r] = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidInputError(
                    f"{label} value at row {r} is not valid base64 (binary columns are base64-encoded)",
                    input=spec.name,
                    row=r,
                ) from None
        else:
            out[r] = value.encode("utf-8")
    return out


def _datetimes(strings: Array, spec: ColumnSpec, label: str) -> Array:
    values: list[datetime | None] = []
    for r, value in enumerate(strings.tolist()):
        if value is None:
            values.append(None)
            continue
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInputError(
                f"{label} value {_show(value)} at row {r} is not an ISO 8601 datetime", input=spec.name, row=r
            ) from None
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        values.append(moment)
    return np.array(values, dtype=COLUMN_NUMPY_DTYPES["datetime"])


class _IntTargets:
    """Integer/boolean targets of a set of rows, with their bounds as broadcastable arrays."""

    __slots__ = ("all_int64", "hi_excl_f", "hi_i", "lo_f", "lo_i", "targets", "type_names")

    def __init__(self, targets: Sequence[np.dtype[Any]], type_names: Sequence[str]) -> None:
        self.targets = tuple(targets)
        self.type_names = tuple(type_names)
        bounds = [_bounds(t) for t in targets]
        self.all_int64 = all(t == np.int64 for t in targets)
        self.lo_i = np.array([b[0] for b in bounds], dtype=np.int64)[:, None]
        self.hi_i = np.array([min(b[1], _INT64_MAX) for b in bounds], dtype=np.int64)[:, None]
        self.lo_f = np.array([float(b[0]) for b in bounds], dtype=np.float64)[:, None]
        # float(max + 1) is exact (a power of two), so ``value >= hi`` is an exact test even for int64.
        self.hi_excl_f = np.array([float(b[1] + 1) for b in bounds], dtype=np.float64)[:, None]


def _bounds(dtype: np.dtype[Any]) -> tuple[int, int]:
    if dtype.kind == "b":
        return 0, 1
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _integer_rows(
    sub: Array, spec: _IntTargets, label_of: Callable[[int], str], row_size: int = 1
) -> list[Array]:
    """Rows of numbers ``(m, n)`` → integer/boolean rows of the target dtypes, checked to be exact.

    Floats must be integral and in range; booleans must be 0 or 1. A row holding NaN/±inf stays float64 (an
    optional column with missing values); callers that forbid them check before or after.
    """
    kind = sub.dtype.kind
    targets = spec.targets
    if kind == "b":
        return _astype_rows(sub, targets)
    if kind == "u":
        # Only uint64 holds values beyond int64's range: refuse those unless the target is uint64 (rare).
        over = sub > np.uint64(_INT64_MAX)
        for i, t in enumerate(targets):
            if t != np.uint64 and np.count_nonzero(over[i]):
                _raise_value(sub, over, i, spec, label_of, row_size, "range")
        if all(t == np.uint64 for t in targets):
            return _astype_rows(sub, targets)
        sub = sub.astype(np.int64)
        kind = "i"
    if kind == "i":
        if not spec.all_int64:
            bad = (sub < spec.lo_i) | (sub > spec.hi_i)
            if np.count_nonzero(bad):
                _raise_value(sub, bad, None, spec, label_of, row_size, "range")
        return _astype_rows(sub, targets)
    # One pass for the common case: integral and in range (NaN fails both, and is sorted out below).
    suspect = (sub != np.trunc(sub)) | (sub < spec.lo_f) | (sub >= spec.hi_excl_f)
    if not np.count_nonzero(suspect):
        return _astype_rows(sub, targets)
    finite = np.isfinite(sub)
    fraction = (sub != np.trunc(sub)) & finite
    if np.count_nonzero(fraction):
        _raise_value(sub, fraction, None, spec, label_of, row_size, "integral")
    bad = ((sub < spec.lo_f) | (sub >= spec.hi_excl_f)) & finite
    if np.count_nonzero(bad):
        _raise_value(sub, bad, None, spec, label_of, row_size, "range")
    row_finite: Array = np.all(finite, axis=1)
    return [row.astype(t) if ok else row for row, t, ok in zip(sub, targets, row_finite, strict=True)]


def _astype_rows(sub: Array, targets: tuple[np.dtype[Any], ...]) -> list[Array]:
    if len(targets) == 1 or all(t == targets[0] for t in targets):
        return list(sub.astype(targets[0]))
    return [row.astype(t) for row, t in zip(sub, targets, strict=True)]


def _all_finite(array: Array) -> bool:
    # isfinite + count_nonzero: about a third of the cost of .all()/.sum() on small arrays.
    return bool(np.count_nonzero(np.isfinite(array)) == array.size)


def _raise_value(
    sub: Array,
    bad: Array,
    only_row: int | None,
    spec: _IntTargets,
    label_of: Callable[[int], str],
    row_size: int,
    problem: str,
) -> None:
    if only_row is None:
        i, position = divmod(int(np.argmax(bad)), bad.shape[1])
    else:
        i, position = only_row, int(np.argmax(bad[only_row]))
    value = _show(sub[i, position].item())
    row = position // row_size
    label = label_of(i)
    type_name = spec.type_names[i]
    if type_name in ("boolean", "bool"):
        message = (
            f"{label} value {value} at row {row} is not a boolean: "
            f"the model signature says {type_name} (true/false, or 0/1)"
        )
    elif problem == "integral":
        message = f"{label} holds the non-integer value {value} at row {row}, but the model signature says {type_name}"
    else:
        message = f"{label} value {value} at row {row} is out of range for {type_name}"
    raise InvalidInputError(message, row=row)


def _check_finite(plan: _Plan, matrix: Array, columns: dict[str, Array], where: str | None) -> None:
    """Required numeric columns may hold no NaN/±inf, and no value float32 cannot represent."""
    if plan.numeric and _all_finite(matrix):
        return
    for j in plan.required_numeric_idx:
        name = plan.names[j]
        column = columns[name]
        if column.dtype.kind == "f":
            bad = ~np.isfinite(column)
            if np.count_nonzero(bad):
                r = int(bad.argmax())
                value = float(column[r])
                what = "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
                raise _forbidden(_label(name, where), what, r, name)
        if plan.numeric:
            bad = ~np.isfinite(matrix[:, j])
            if np.count_nonzero(bad):
                r = int(bad.argmax())
                raise InvalidInputError(
                    f"{_label(name, where)} value {_show(column[r].item())} at row {r} does not fit in float32, "
                    "which the model consumes",
                    input=name,
                    row=r,
                )


# --------------------------------------------------------------------------------------------------------------
# Tensors


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
                what = "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
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
        what = "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
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


# --------------------------------------------------------------------------------------------------------------
# OIP v2


_Input = tuple[list[int], str, list[Any], dict[str, Any] | None]
_DATATYPE_COLUMN: Final[Mapping[str, str]] = {
    **dict.fromkeys(FLOAT_DATATYPES, "double"),
    **dict.fromkeys(INTEGER_DATATYPES, "long"),
    "BOOL": "boolean",
    "BYTES": "string",
}


def decode_oip(body: bytes, schema: ModelSchema) -> Decoded:
    """Decode an OIP v2 inference request against the model's schema (see the module docstring)."""
    doc = _loads(body)
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
    outputs = _requested_outputs(doc.get("outputs"))

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
    return Decoded(matrix, rows, columns, request_id, outputs, parameters)


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _requested_outputs(raw: Any) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if type(raw) is not list:
        raise InvalidInputError(
            f"the request 'outputs' must be a list of objects with a name, got {_json_type(raw)}"
        )
    names = []
    for i, item in enumerate(raw):
        if type(item) is not dict or type(item.get("name")) is not str:
            raise InvalidInputError(f"outputs[{i}] must be an object with a 'name' string")
        names.append(item["name"])
    return tuple(names) or None


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
    if type(data) is not list:
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
            if type(name) is str and type(shape) is list and type(datatype) is str and type(data) is list:
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
        shapes[j] = shape
        if parameters is not None and parameters.get("content_type") == "base64":
            if b64 is False:
                b64 = [False] * k
            assert isinstance(b64, list)
            b64[j] = True
    absent = datas.count(None)
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
# MLflow scoring JSON


_MLFLOW_FORMATS: Final = ("dataframe_split", "dataframe_records", "instances", "inputs")


def decode_mlflow(body: bytes, schema: ModelSchema) -> Decoded:
    """Decode an MLflow scoring request (``/invocations``) against the model's schema."""
    doc = _loads(body)
    if type(doc) is not dict:
        raise BadRequestError(
            f"the request body must be a JSON object with one of {list(_MLFLOW_FORMATS)}, got {_json_type(doc)}"
        )
    formats = [key for key in _MLFLOW_FORMATS if key in doc]
    unknown = [key for key in doc if key not in _MLFLOW_FORMATS and key != "params"]
    if len(formats) != 1 or unknown:
        raise BadRequestError(
            f"the request body must hold exactly one of {list(_MLFLOW_FORMATS)} (and optionally 'params'), "
            f"got {list(doc)}"
        )
    params = doc.get("params")
    if params is None:
        params = {}
    elif type(params) is not dict:
        raise BadRequestError(f"'params' must be an object, got {_json_type(params)}")
    fmt = formats[0]
    payload = doc[fmt]
    columns: dict[str, Array] | None = None
    if schema.columns is not None:
        matrix, columns, rows = _mlflow_columns(_plan(schema), fmt, payload)
    elif schema.tensor is not None:
        matrix = _mlflow_tensor(schema.tensor, fmt, payload)
        rows = matrix.shape[0]
    else:
        matrix, columns, rows = _mlflow_unsigned(fmt, payload)
    return Decoded(matrix, rows, columns, None, None, params)


def _mlflow_columns(plan: _Plan, fmt: str, payload: Any) -> tuple[Array, dict[str, Array], int]:
    if fmt == "dataframe_split":
        names, data = _split(payload)
        return _from_rows(plan, plan.names if names is None else tuple(names), data)
    if fmt == "dataframe_records":
        return _from_records(plan, payload, fmt)
    if fmt == "inputs" and type(payload) is dict:
        return _from_columnar(plan, payload)
    if type(payload) is not list:
        raise BadRequestError(f"'{fmt}' must be a list of rows, got {_json_type(payload)}")
    if not payload:
        raise _no_rows(f"'{fmt}' is empty")
    first = payload[0]
    if type(first) is dict:
        return _from_records(plan, payload, fmt)
    if type(first) is list:
        return _from_rows(plan, plan.names, payload)
    if plan.k == 1:
        return _from_rows(plan, plan.names, [[value] for value in payload])
    raise InvalidInputError(
        f"'{fmt}' must be a list of rows: lists in the column order {list(plan.names)}, or objects"
    )


def _split(payload: Any) -> tuple[list[str] | None, list[Any]]:
    if type(payload) is not dict:
        raise BadRequestError(
            f"'dataframe_split' must be an object with 'columns' and 'data', got {_json_type(payload)}"
        )
    data = payload.get("data")
    if type(data) is not list:
        raise BadRequestError("'dataframe_split' has no 'data' list")
    names = payload.get("columns")
    if names is not None and (type(names) is not list or not all(type(n) is str for n in names)):
        raise BadRequestError("'dataframe_split' 'columns' must be a list of strings")
    index = payload.get("index")
    if index is not None and (type(index) is not list or len(index) != len(data)):
        count = len(index) if type(index) is list else _json_type(index)
        raise InvalidInputError(
            f"'dataframe_split' 'index' has {count} entries, but 'data' has {len(data)} rows"
        )
    return names, data


def _rows_to_lists(names: Sequence[str], data: list[Any]) -> list[list[Any]]:
    """Rows (lists in the order of ``names``) → one value list per name, checking every row's length."""
    c = len(names)
    for r, row in enumerate(data):
        if type(row) is not list:
            raise InvalidInputError(
                f"row {r} must be a list of {c} values in the order {list(names)}, got {_json_type(row)}",
                row=r,
            )
        if len(row) != c:
            raise InvalidInputError(
                f"row {r} has {len(row)} values, but there are {c} columns {list(names)}", row=r
            )
    if c == 0:
        return []
    return [list(column) for column in zip(*data, strict=True)]


def _records_to_lists(records: list[Any]) -> tuple[list[str], list[list[Any]]]:
    """Records (objects) → the names they use (first appearance order) and one value list per name."""
    seen: dict[str, None] = {}
    for r, record in enumerate(records):
        if type(record) is not dict:
            raise InvalidInputError(
                f"record {r} must be an object (column → value), got {_json_type(record)}", row=r
            )
        if record.keys() != seen.keys():
            seen.update(dict.fromkeys(record))
    names = list(seen)
    return names, [[record.get(name) for record in records] for name in names]


def _columnar_lengths(payload: dict[str, Any]) -> int:
    n = -1
    first = ""
    for name, values in payload.items():
        if type(values) is not list:
            raise InvalidInputError(
                f"input {name!r} must be a list of values, got {_json_type(values)}", input=name
            )
        if n < 0:
            n, first = len(values), name
        elif len(values) != n:
            raise InvalidInputError(
                f"inconsistent row counts: input {first!r} has {n} rows, input {name!r} has {len(values)}",
                input=name,
            )
    if n <= 0:
        raise _no_rows(f"input {first!r} is empty" if first else "'inputs' is empty")
    return n


def _from_rows(plan: _Plan, names: tuple[str, ...], data: list[Any]) -> tuple[Array, dict[str, Array], int]:
    """Rows (lists) whose values follow ``names``."""
    n = len(data)
    if n == 0:
        raise _no_rows("the data holds no rows")
    if names != plan.names:
        _check_duplicates(names)
        _names_error(plan, names)
    if plan.numeric and len(names) == plan.k:
        try:
            array = np.array(data)
        except (ValueError, TypeError):
            array = None
        if array is not None and array.dtype.kind in "fiub" and array.shape == (n, plan.k):
            block = array.T
            if names != plan.names:
                position = {name: i for i, name in enumerate(names)}
                block = block[[position[name] for name in plan.names]]
            matrix, columns = _finish_block(plan, block, None)
            return matrix, columns, n
    lists = dict(zip(names, _rows_to_lists(names, data), strict=True))
    datas = [lists.get(name) for name in plan.names]
    matrix, columns = _columns_from_lists(plan, datas, n, base64_binary=True, try_block=False)
    return matrix, columns, n


def _from_records(plan: _Plan, records: Any, fmt: str) -> tuple[Array, dict[str, Array], int]:
    if type(records) is not list:
        raise BadRequestError(f"'{fmt}' must be a list of objects, got {_json_type(records)}")
    n = len(records)
    if n == 0:
        raise _no_rows(f"'{fmt}' is empty")
    names, values = _records_to_lists(records)
    if len(names) != plan.k or set(names) != plan.name_set:
        _names_error(plan, names)
    lists = dict(zip(names, values, strict=True))
    # A record without a key holds a null there (as in pandas).
    datas = [lists.get(name) for name in plan.names]
    matrix, columns = _columns_from_lists(plan, datas, n, base64_binary=True)
    return matrix, columns, n


def _from_columnar(plan: _Plan, payload: dict[str, Any]) -> tuple[Array, dict[str, Array], int]:
    n = _columnar_lengths(payload)
    if payload.keys() != plan.name_set:
        _names_error(plan, list(payload))
    datas = [payload.get(name) for name in plan.names]
    matrix, columns = _columns_from_lists(plan, datas, n, base64_binary=True)
    return matrix, columns, n


def _mlflow_tensor(spec: TensorSpec, fmt: str, payload: Any) -> Array:
    label = f"input {spec.name or fmt!r}"
    if fmt == "dataframe_records":
        raise InvalidInputError(
            "'dataframe_records' is not supported for a tensor model: send 'inputs' or 'instances'"
        )
    if fmt == "dataframe_split":
        _, data = _split(payload)
    elif type(payload) is dict:
        if len(payload) != 1:
            raise InvalidInputError(f"the model takes one tensor input, got {len(payload)}: {list(payload)}")
        name, data = next(iter(payload.items()))
        label = f"input {name!r}"
    else:
        data = payload
    if type(data) is not list:
        raise InvalidInputError(f"{label} must be a list of rows, got {_json_type(data)}")
    return _tensor(spec, data, None, label)


def _mlflow_unsigned(fmt: str, payload: Any) -> tuple[Array, dict[str, Array] | None, int]:
    """No signature: named columns typed by what they hold (all optional), or a numeric matrix."""
    if fmt == "dataframe_split":
        split_names, data = _split(payload)
        if not data:
            raise _no_rows("the data holds no rows")
        width = len(data[0]) if type(data[0]) is list else 1
        names = split_names if split_names is not None else [str(i) for i in range(width)]
        values = _rows_to_lists(names, data)
        n = len(data)
    elif type(payload) is dict:
        names = list(payload)
        n = _columnar_lengths(payload)
        values = list(payload.values())
    elif fmt == "dataframe_records" or (type(payload) is list and payload and type(payload[0]) is dict):
        if type(payload) is not list:
            raise BadRequestError(f"'{fmt}' must be a list of objects, got {_json_type(payload)}")
        names, values = _records_to_lists(payload)
        n = len(payload)
    else:
        if type(payload) is not list:
            raise BadRequestError(f"'{fmt}' must be a list of rows, got {_json_type(payload)}")
        matrix = _tensor(None, payload, None, f"input {fmt!r}")
        return matrix, None, matrix.shape[0]
    if n == 0 or not names:
        raise _no_rows(f"'{fmt}' is empty")
    _check_duplicates(names)
    specs = tuple(
        ColumnSpec(name, _infer_column_type(column, name), required=False)
        for name, column in zip(names, values, strict=True)
    )
    matrix, columns = _columns_from_lists(_Plan(specs), values, n, base64_binary=True)
    return matrix, columns, n


def _infer_column_type(values: list[Any], name: str) -> str:
    kinds = {type(v) for v in values if v is not None}
    if kinds == {int}:
        return "long"
    if kinds == {bool}:
        return "boolean"
    if not kinds or kinds <= {float, int, bool}:
        return "double"
    if kinds == {str}:
        return "string"
    shown = ", ".join(sorted(t.__name__ for t in kinds))
    raise InvalidInputError(
        f"input {name!r} mixes value types ({shown}): a model without signature takes numbers, booleans or strings",
        input=name,
    )


# --------------------------------------------------------------------------------------------------------------
# Responses


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


def encode_oip(
    *,
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Mapping[str, Any],
    selected: tuple[str, ...] | None,
) -> bytes:
    """An OIP v2 inference response; ``selected`` (the request's ``outputs``) picks and orders the outputs."""
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
    for name in names:
        array = np.asarray(outputs[name])
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
    return orjson.dumps(response, option=_OPTIONS)


def encode_mlflow(outputs: Mapping[str, Any]) -> bytes:
    """``{"predictions": ...}``: one output as a (nested) list, several as one record per row."""
    arrays = {name: np.asarray(value) for name, value in outputs.items()}
    if len(arrays) == 1:
        predictions: Any = _jsonable(next(iter(arrays.values())))
    elif not arrays:
        predictions = []
    else:
        lengths = {name: (a.shape[0] if a.ndim else 1) for name, a in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"model outputs have different row counts: {lengths}")
        listed = [
            _plain(a.astype(np.float32).tolist() if a.dtype == np.float16 else a.tolist())
            for a in arrays.values()
        ]
        listed = [v if isinstance(v, list) else [v] for v in listed]
        predictions = [dict(zip(arrays, row, strict=True)) for row in zip(*listed, strict=True)]
    return orjson.dumps({"predictions": predictions}, option=_OPTIONS)
