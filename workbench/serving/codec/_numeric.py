"""Numeric conversions shared by columns and tensors: narrowing, finiteness, and exact integer conversion.

Integer and boolean targets take numbers only when nothing is lost: floats must be integral and in range,
integers in range, booleans 0 or 1. The checks are vectorised over a block of rows, and only a block that
fails them is searched for the first offending value, which the error names with its row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np

from workbench.errors import InvalidInputError
from workbench.serving.codec._json import _show
from workbench.serving.codec.decoded import Array

_INT64_MAX: Final = 2**63 - 1


def _narrow(array: Array, dtype: np.dtype[Any]) -> Array:
    """``array.astype(dtype)`` (C order); values the dtype cannot hold become ±inf for the finiteness check."""
    try:
        return array.astype(dtype, order="C")
    except RuntimeWarning:
        # Only when warnings are errors (an overflow warns); errstate costs a microsecond, so not by default.
        with np.errstate(over="ignore"):
            return array.astype(dtype, order="C")


def _as_array(values: Any, label: str) -> Array:
    try:
        return np.asarray(values)
    except (ValueError, TypeError):
        raise InvalidInputError(f"{label} data is ragged: its nested lists differ in length") from None


def _all_finite(array: Array) -> bool:
    # isfinite + count_nonzero: about a third of the cost of .all()/.sum() on small arrays.
    return bool(np.count_nonzero(np.isfinite(array)) == array.size)


def _nonfinite(value: float) -> str:
    """How messages name a non-finite value: ``NaN``, ``inf`` or ``-inf``."""
    return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")


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
