"""The result of decoding a request: what the model and the prediction log consume."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

__all__ = ["Array", "Decoded"]


Array = npt.NDArray[Any]


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
