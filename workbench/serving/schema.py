"""The model signature the data plane validates requests against, and the OIP v2 datatypes.

MLflow stores a signature as ``{"inputs": ..., "outputs": ..., "params": ...}``: inputs and outputs are JSON
strings in the MLmodel YAML, or already-parsed lists once read through MLflow's API. A signature is either
column-based (``[{"type": "double", "name": "a", "required": true}, ...]``) or tensor-based
(``[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 20]}}]``). :class:`ModelSchema`
holds the parsed form; :mod:`workbench.serving.codec` decodes requests against it.

A column's ``required`` flag follows MLflow: a required column must be present and hold no missing value
(null, NaN, or for numbers ±inf); an optional one may be absent (it is then all missing) or hold missing values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final

import numpy as np

from workbench.errors import InvalidInputError

# --------------------------------------------------------------------------------------------------------------
# MLflow column types

COLUMN_TYPES: Final[tuple[str, ...]] = (
    "double",
    "float",
    "long",
    "integer",
    "boolean",
    "string",
    "binary",
    "datetime",
)
"""The MLflow column types the data plane accepts in an input signature."""

NUMERIC_COLUMN_TYPES: Final[frozenset[str]] = frozenset({"double", "float", "long", "integer", "boolean"})
"""Column types that go into the float32 feature matrix (booleans as 0/1)."""

COLUMN_NUMPY_DTYPES: Final[Mapping[str, np.dtype[Any]]] = {
    "double": np.dtype(np.float64),
    "float": np.dtype(np.float32),
    "long": np.dtype(np.int64),
    "integer": np.dtype(np.int32),
    "boolean": np.dtype(np.bool_),
    "string": np.dtype(object),
    "binary": np.dtype(object),
    "datetime": np.dtype("datetime64[ns]"),
}
"""The dtype of a decoded column (an integer or boolean column holding missing values decodes as float64)."""

# --------------------------------------------------------------------------------------------------------------
# OIP v2 datatypes

OIP_DATATYPES: Final[Mapping[str, np.dtype[Any]]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
"""Every OIP v2 datatype and the numpy dtype it decodes to (BYTES: an object array of str)."""

_BY_KIND_AND_SIZE: Final[Mapping[tuple[str, int], str]] = {
    (dtype.kind, dtype.itemsize): name for name, dtype in OIP_DATATYPES.items() if name != "BYTES"
}

FLOAT_DATATYPES: Final[frozenset[str]] = frozenset({"FP16", "FP32", "FP64"})
INTEGER_DATATYPES: Final[frozenset[str]] = frozenset(
    {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
)
NUMERIC_DATATYPES: Final[frozenset[str]] = FLOAT_DATATYPES | INTEGER_DATATYPES | {"BOOL"}

ACCEPTED_DATATYPES: Final[Mapping[str, frozenset[str]]] = {
    # Any number fits a floating column; booleans count as 0/1.
    "double": NUMERIC_DATATYPES,
    "float": NUMERIC_DATATYPES,
    # Floating data for an integer column is refused: 2.5 has no faithful long.
    "long": INTEGER_DATATYPES | {"BOOL"},
    "integer": INTEGER_DATATYPES | {"BOOL"},
    # Integers are accepted when every value is 0 or 1.
    "boolean": INTEGER_DATATYPES | {"BOOL"},
    "string": frozenset({"BYTES"}),
    "binary": frozenset({"BYTES"}),
    # ISO 8601 strings.
    "datetime": frozenset({"BYTES"}),
}
"""Which OIP datatypes each MLflow column type accepts when a request sends one input per column."""

_COLUMN_OIP_DATATYPES: Final[Mapping[str, str]] = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",
}


def oip_datatype(dtype: Any) -> str:
    """The OIP datatype of a numpy dtype; strings, bytes, objects and datetimes are BYTES.

    Raises ``ValueError`` for a dtype OIP cannot carry (complex, void): that is a server-side problem
    (a model output), not a client's.
    """
    dt = np.dtype(dtype)
    name = _BY_KIND_AND_SIZE.get((dt.kind, dt.itemsize))
    if name is not None:
        return name
    if dt.kind in "OUSM":
        return "BYTES"
    raise ValueError(f"numpy dtype {dt} has no OIP datatype")


def numpy_dtype(datatype: str) -> np.dtype[Any]:
    """The numpy dtype of an OIP datatype; an unknown datatype is the client's error, so InvalidInputError."""
    try:
        return OIP_DATATYPES[datatype]
    except (KeyError, TypeError):
        raise InvalidInputError(
            f"unknown datatype {datatype!r}: expected one of {', '.join(OIP_DATATYPES)}", datatype=datatype
        ) from None


def accepted_datatypes(column_type: str) -> frozenset[str]:
    """The OIP datatypes a column of this MLflow type accepts (see :data:`ACCEPTED_DATATYPES`)."""
    try:
        return ACCEPTED_DATATYPES[column_type]
    except KeyError:
        raise ValueError(
            f"unknown column type {column_type!r}: expected one of {', '.join(COLUMN_TYPES)}"
        ) from None


def tensor_accepted_datatypes(dtype: np.dtype[Any]) -> frozenset[str]:
    """The OIP datatypes a tensor input of this numpy dtype accepts (same rules as for columns)."""
    if dtype.kind == "f":
        return NUMERIC_DATATYPES
    if dtype.kind in "iub":
        return INTEGER_DATATYPES | {"BOOL"}
    return frozenset({"BYTES"})


# --------------------------------------------------------------------------------------------------------------
# Specs


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a column-based signature; ``dtype`` is the MLflow column type (``double``, ``long``, ...)."""

    name: str
    dtype: str
    required: bool = True


@dataclass(frozen=True)
class TensorSpec:
    """A tensor input or output: numpy dtype name (``float32``) and shape, -1 meaning any size."""

    name: str | None
    dtype: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            raise ValueError(f"tensor {self.name or ''!r} has an unknown dtype {self.dtype!r}") from None
        object.__setattr__(self, "dtype", dtype.name)
        shape = tuple(self.shape)
        if any(type(d) is not int or d < -1 for d in shape):
            raise ValueError(
                f"tensor {self.name or ''!r} has an invalid shape {list(shape)}: expected integers >= -1"
            )
        object.__setattr__(self, "shape", shape)

    @cached_property
    def numpy_dtype(self) -> np.dtype[Any]:
        return np.dtype(self.dtype)


@dataclass(frozen=True)
class ModelSchema:
    """What a model takes: columns, one tensor, or neither (no signature: any numeric input is passed through).

    ``outputs`` describes what the model returns, when the signature says so (used for metadata only).
    """

    columns: tuple[ColumnSpec, ...] | None = None
    tensor: TensorSpec | None = None
    outputs: tuple[TensorSpec | ColumnSpec, ...] = ()

    def __post_init__(self) -> None:
        if self.columns is not None and self.tensor is not None:
            raise ValueError("a model schema takes columns or a tensor, not both")
        if self.columns is not None:
            columns = tuple(self.columns)
            if not columns:
                raise ValueError("a column-based schema needs at least one column")
            seen: set[str] = set()
            for column in columns:
                if column.dtype not in COLUMN_TYPES:
                    raise ValueError(
                        f"input column {column.name!r} has type {column.dtype!r}, which the data plane does not "
                        f"support yet (supported: {', '.join(COLUMN_TYPES)})"
                    )
                if column.name in seen:
                    raise ValueError(f"input column {column.name!r} appears twice in the signature")
                seen.add(column.name)
            object.__setattr__(self, "columns", columns)
        if self.tensor is not None and not self.tensor.shape:
            raise ValueError("a tensor input needs at least one dimension (the batch)")
        object.__setattr__(self, "outputs", tuple(self.outputs))

    @property
    def kind(self) -> str:
        """``"columns"``, ``"tensor"`` or ``"none"`` (no signature)."""
        if self.columns is not None:
            return "columns"
        return "tensor" if self.tensor is not None else "none"

    @cached_property
    def input_names(self) -> tuple[str, ...]:
        """Column names in signature order; the tensor's name if it has one; empty without a signature."""
        if self.columns is not None:
            return tuple(column.name for column in self.columns)
        if self.tensor is not None and self.tensor.name:
            return (self.tensor.name,)
        return ()

    @cached_property
    def n_features(self) -> int:
        """Number of columns, or the product of the tensor's non-batch dims; -1 when not known."""
        if self.columns is not None:
            return len(self.columns)
        if self.tensor is not None and all(d >= 0 for d in self.tensor.shape[1:]):
            return math.prod(self.tensor.shape[1:])
        return -1

    def runner_input(self, rows: int) -> tuple[tuple[int, ...], np.dtype[Any]] | None:
        """Shape and dtype of the matrix a runner gets for ``rows`` rows, for inputs made up before any
        request (warm-up, a trace's samples); None when the input is not numeric, or a dimension besides
        the batch's is left open (only a request says its size)."""
        if self.tensor is not None:
            dtype = np.dtype(self.tensor.dtype)
            declared = self.tensor.shape
            if dtype.kind not in "fiub" or any(d < 0 for d in declared[1:]):
                return None
            return (rows if declared[0] == -1 else declared[0], *declared[1:]), dtype
        if self.columns is not None and all(c.dtype in NUMERIC_COLUMN_TYPES for c in self.columns):
            return (rows, len(self.columns)), np.dtype(np.float32)
        return None

    def oip_metadata(self) -> dict[str, list[dict[str, Any]]]:
        """Inputs and outputs as the OIP model-metadata endpoint lists them (name, datatype, shape)."""
        inputs: list[dict[str, Any]] = []
        if self.columns is not None:
            inputs = [
                {"name": c.name, "datatype": _COLUMN_OIP_DATATYPES[c.dtype], "shape": [-1]}
                for c in self.columns
            ]
        elif self.tensor is not None:
            inputs = [_tensor_metadata(self.tensor, "input")]
        outputs = [
            _tensor_metadata(o, f"output-{i}")
            if isinstance(o, TensorSpec)
            else {"name": o.name, "datatype": _COLUMN_OIP_DATATYPES.get(o.dtype, "BYTES"), "shape": [-1]}
            for i, o in enumerate(self.outputs)
        ]
        return {"inputs": inputs, "outputs": outputs}


def _tensor_metadata(spec: TensorSpec, default_name: str) -> dict[str, Any]:
    return {
        "name": spec.name or default_name,
        "datatype": oip_datatype(spec.dtype),
        "shape": list(spec.shape),
    }


# --------------------------------------------------------------------------------------------------------------
# MLflow signature → ModelSchema


def schema_from_signature(signature: Mapping[str, Any] | None) -> ModelSchema:
    """Parse an MLflow signature dict (inputs/outputs as JSON strings or lists); None → no signature.

    Raises ``ValueError`` for a signature the data plane cannot serve: several tensor inputs, tensors mixed
    with columns, or column types it does not support (arrays, objects, maps).
    """
    if signature is None:
        return ModelSchema()
    if not isinstance(signature, Mapping):
        raise ValueError(f"a model signature must be a mapping, got {type(signature).__name__}")
    inputs = _spec_list(signature.get("inputs"), "inputs")
    outputs = _spec_list(signature.get("outputs"), "outputs")
    parsed_outputs = tuple(_parse_spec(entry, i, "output") for i, entry in enumerate(outputs or ()))
    if not inputs:
        return ModelSchema(outputs=parsed_outputs)
    parsed = [_parse_spec(entry, i, "input") for i, entry in enumerate(inputs)]
    tensors = [spec for spec in parsed if isinstance(spec, TensorSpec)]
    if len(tensors) > 1:
        names = [t.name or f"#{i}" for i, t in enumerate(tensors)]
        raise ValueError(
            f"the signature has {len(tensors)} tensor inputs {names}: several tensor inputs are not supported yet"
        )
    if tensors and len(parsed) > 1:
        raise ValueError("the signature mixes a tensor input with columns, which is not supported")
    if tensors:
        return ModelSchema(tensor=tensors[0], outputs=parsed_outputs)
    columns = tuple(spec for spec in parsed if isinstance(spec, ColumnSpec))
    return ModelSchema(columns=columns, outputs=parsed_outputs)


def _spec_list(raw: Any, what: str) -> list[Any] | None:
    if raw is None:
        return None
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"signature {what} is not valid JSON: {exc}") from None
        if raw is None:
            return None
    if not isinstance(raw, list):
        raise ValueError(f"signature {what} must be a list of specs, got {type(raw).__name__}")
    return raw


def _parse_spec(entry: Any, position: int, role: str) -> TensorSpec | ColumnSpec:
    if not isinstance(entry, Mapping):
        raise ValueError(f"signature {role} #{position} must be an object, got {type(entry).__name__}")
    name = entry.get("name")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"signature {role} #{position} has a non-string name {name!r}")
    spec_type = entry.get("type")
    if spec_type == "tensor":
        tensor = entry.get("tensor-spec")
        if (
            not isinstance(tensor, Mapping)
            or "dtype" not in tensor
            or not isinstance(tensor.get("shape"), list)
        ):
            raise ValueError(f"signature {role} #{position} is a tensor without a dtype and shape")
        return TensorSpec(name=name, dtype=str(tensor["dtype"]), shape=tuple(tensor["shape"]))
    if not isinstance(spec_type, str):
        raise ValueError(f"signature {role} #{position} has no type")
    if role == "input" and spec_type not in COLUMN_TYPES:
        raise ValueError(
            f"input column {name or position!r} has type {spec_type!r}, which the data plane does not support yet "
            f"(supported: {', '.join(COLUMN_TYPES)})"
        )
    required = entry.get("required")
    if required is None:
        # MLflow before 2.10 spelled it "optional".
        required = not entry.get("optional", False)
    if not isinstance(required, bool):
        raise ValueError(f"signature {role} {name or position!r} has a non-boolean 'required': {required!r}")
    # Unnamed columns are positional in MLflow; name them by position so requests can still address them.
    return ColumnSpec(name=name if name is not None else str(position), dtype=spec_type, required=required)
