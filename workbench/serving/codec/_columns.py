"""Column schemas: the per-schema plan, and columns converted and validated against their ColumnSpec.

A request's columns first try the fast block path: one ``np.array`` call turns all value lists into a numeric
``(k, n)`` block, and vectorised checks validate it (integer columns integral and in range, required columns
finite and within float32). Anything else (nulls, strings, binary, datetimes, mixed nesting, a bad value) goes
column by column, which finds and names the offending input, row and value. The rules for required and
optional columns are in the package docstring (:mod:`workbench.serving.codec`).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np

from workbench.errors import InvalidInputError
from workbench.serving.codec._json import _forbidden, _label, _show
from workbench.serving.codec._numeric import (
    _all_finite,
    _as_array,
    _integer_rows,
    _IntTargets,
    _narrow,
    _nonfinite,
)
from workbench.serving.codec.decoded import Array
from workbench.serving.schema import (
    COLUMN_NUMPY_DTYPES,
    NUMERIC_COLUMN_TYPES,
    ColumnSpec,
    ModelSchema,
    accepted_datatypes,
)

# --------------------------------------------------------------------------------------------------------------
# Per-schema plan (computed once per schema, kept on the instance)


# The column types that decode to an integer or boolean dtype (long, integer, boolean).
_INTEGER_COLUMN_TYPES: Final = frozenset(
    t for t in NUMERIC_COLUMN_TYPES if COLUMN_NUMPY_DTYPES[t].kind in "iub"
)


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
# The fast block path


def _block(datas: list[Any], k: int, n: int) -> Array | None:
    """One numeric ``(k, n)`` array from k value lists of n values each (flat or nested), or None."""
    try:
        block = np.array(datas)
    except (ValueError, TypeError):
        return None
    if block.dtype.kind in "fiub" and block.ndim >= 2 and block.shape[0] == k and block.size == k * n:
        return block.reshape(k, n)
    return None


class BlockColumns(dict[str, Array]):
    """Columns decoded from one numeric block, which keep that block (float64, one row per column).

    The prediction log joins a batch's requests into one array per column; from the blocks that is one
    ``np.concatenate`` for the whole batch, where joining column by column costs a call per request and
    column (a fifth of a busy replica's time went there).
    """

    __slots__ = ("block",)
    block: Array


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
    columns = BlockColumns(zip(names, fblock, strict=True))
    columns.block = fblock
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


# --------------------------------------------------------------------------------------------------------------
# The per-column path


def _absent(spec: ColumnSpec, n: int) -> Array:
    """An optional column the request left out: all missing."""
    if spec.dtype in NUMERIC_COLUMN_TYPES:
        return np.full(n, np.nan, dtype=np.float32 if spec.dtype == "float" else np.float64)
    if spec.dtype == "datetime":
        return np.full(n, np.datetime64("NaT"), dtype=COLUMN_NUMPY_DTYPES["datetime"])
    return np.full(n, None, dtype=object)


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


def _strings(array: Array, spec: ColumnSpec, label: str) -> Array:
    kind = array.dtype.kind
    if kind == "U":
        return array.astype(object)
    values = array.tolist()
    for r, value in enumerate(values):
        if value is None:
            if spec.required:
                raise _forbidden(label, "null", r, spec.name)
        elif type(value) is not str and not (type(value) is bytes and spec.dtype == "binary"):
            # bytes come from binary tensor data whose element is not UTF-8: only a binary column takes them.
            what = " (ISO 8601 strings)" if spec.dtype == "datetime" else ""
            shown = (
                "bytes that are not UTF-8" if type(value) is bytes else f"the non-string value {_show(value)}"
            )
            raise InvalidInputError(
                f"{label} holds {shown} at row {r}, but the model signature says {spec.dtype}{what}",
                input=spec.name,
                row=r,
            )
    return np.array(values, dtype=object)


def _binary(strings: Array, spec: ColumnSpec, label: str, base64_binary: bool) -> Array:
    out = np.empty(len(strings), dtype=object)
    for r, value in enumerate(strings.tolist()):
        if value is None:
            out[r] = None
        elif type(value) is bytes:
            out[r] = value
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
                what = _nonfinite(value)
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
