"""Reference datasets: read, checked against the model signature, fingerprinted.

A reference that does not carry the model's input columns would make every later drift check
meaningless, so the mismatch is refused at registration rather than discovered by a monitor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from workbench.errors import ValidationError
from workbench.registry.lineage import frame_digest

REFERENCE_FORMATS = (".parquet", ".csv")
_NUMERIC_SIGNATURE_TYPES = {"double", "float", "long", "integer"}


def read_reference(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ValidationError(
            f"cannot read reference dataset {path}: {exc}", field="reference.path"
        ) from None
    raise ValidationError(
        f"reference dataset {path.name} has an unsupported format: use one of {', '.join(REFERENCE_FORMATS)}",
        field="reference.path",
    )


def signature_input_columns(signature: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """The column specs of a column-based signature; None for tensor signatures or no signature."""
    if not signature or not signature.get("inputs"):
        return None
    inputs = signature["inputs"]
    if isinstance(inputs, str):
        import json

        inputs = json.loads(inputs)
    if not isinstance(inputs, list) or any(spec.get("type") == "tensor" for spec in inputs):
        return None
    return [spec for spec in inputs if isinstance(spec, dict)]


def check_reference(frame: pd.DataFrame, signature: dict[str, Any] | None, target: str | None) -> None:
    """Refuse a reference that lacks a model input, has a non-numeric column where one is expected, or is empty."""
    if frame.empty:
        raise ValidationError("reference dataset is empty", field="reference.path")
    if target is not None and target not in frame.columns:
        raise ValidationError(
            f"reference dataset has no target column {target!r}",
            field="reference.target",
            columns=list(map(str, frame.columns)),
        )
    columns = signature_input_columns(signature)
    if columns is None:
        return
    missing = [spec["name"] for spec in columns if spec.get("name") and spec["name"] not in frame.columns]
    if missing:
        raise ValidationError(
            f"reference dataset does not match the model signature: missing input columns {missing}",
            field="reference.path",
            missing=missing,
        )
    wrong = [
        spec["name"]
        for spec in columns
        if spec.get("type") in _NUMERIC_SIGNATURE_TYPES
        and spec.get("name") in frame.columns
        and not pd.api.types.is_numeric_dtype(frame[spec["name"]])
    ]
    if wrong:
        raise ValidationError(
            f"reference dataset does not match the model signature: columns {wrong} should be numeric",
            field="reference.path",
            columns=wrong,
        )


def reference_digest(frame: pd.DataFrame) -> str:
    return frame_digest(frame)
