"""The result of decoding a request: what the model and the prediction log consume."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy.typing as npt

__all__ = ["Array", "BinaryOutputs", "Decoded"]


Array = npt.NDArray[Any]


@dataclass(frozen=True, slots=True)
class BinaryOutputs:
    """Which outputs an OIP response carries as binary tensor data (the binary tensor data extension).

    ``default`` is the request's ``parameters.binary_data_output``; ``flipped`` names the outputs whose own
    ``parameters.binary_data`` says otherwise (an output's own parameter overrides the request's).
    """

    default: bool = False
    flipped: frozenset[str] = frozenset()

    def __contains__(self, name: object) -> bool:
        return self.default != (name in self.flipped)


JSON_OUTPUTS = BinaryOutputs()
"""Every output as JSON: what a request that asks for nothing binary gets."""


@dataclass(frozen=True)
class Decoded:
    """One decoded request.

    ``matrix`` is what a torch model consumes: float32 ``[rows, n_features]`` in signature column order for
    column models (``[rows, 0]`` when a column is a string, binary or datetime: use ``columns``), the spec's
    dtype and shape for tensor models, float32 ``[rows, k]`` for a model without signature.
    ``columns`` holds one 1-D array per signature column (for pyfunc models and the prediction log), None for
    tensor models. ``binary_outputs`` says which outputs an OIP response returns as binary tensor data.
    """

    matrix: Array
    rows: int
    columns: dict[str, Array] | None
    request_id: str | None
    outputs: tuple[str, ...] | None
    parameters: dict[str, Any]
    binary_outputs: BinaryOutputs = field(default=JSON_OUTPUTS)
