"""MLflow scoring JSON: ``/invocations`` requests and ``{"predictions": ...}`` responses.

What :func:`decode_mlflow` accepts (the rules shared with OIP are in the package docstring,
:mod:`workbench.serving.codec`): a JSON object holding exactly one of ``dataframe_split``,
``dataframe_records``, ``instances`` (rows as lists in column order, or objects) and ``inputs`` (column →
values, or rows), and optionally ``params``. For a model whose signature has

* **columns** — any of the four. MLflow JSON has no datatypes, so an integer column takes any number that is
  integral and in range.
* **a tensor** — rows (``dataframe_split`` data, ``instances`` or ``inputs``, or an object holding one named
  tensor); not ``dataframe_records``.
* **no signature** — named columns (a data frame, records, ``inputs`` as an object), each optional and typed
  by the values it holds; or plain rows, passed through as a float32 ``[n, k]`` matrix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import orjson

from workbench.errors import BadRequestError, InvalidInputError
from workbench.serving.codec._columns import (
    _check_duplicates,
    _columns_from_lists,
    _finish_block,
    _names_error,
    _Plan,
    _plan,
)
from workbench.serving.codec._json import _OPTIONS, _json_type, _jsonable, _loads, _no_rows, _plain
from workbench.serving.codec._tensor import _tensor
from workbench.serving.codec.decoded import Array, Decoded
from workbench.serving.schema import ColumnSpec, ModelSchema, TensorSpec

__all__ = ["decode_mlflow", "encode_mlflow"]


# --------------------------------------------------------------------------------------------------------------
# Requests


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
