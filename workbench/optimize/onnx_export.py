"""Torch module -> ONNX graph with a dynamic batch dimension, and its int8 form by onnxruntime.

torch's exporter (``dynamo=True``, through ``torch.export``) traces the folded module once; the batch
dimension is declared dynamic so the replica's dynamic batching can hand it any number of rows. The
int8 form quantises weights to int8 and activations per batch at run time (onnxruntime's dynamic
quantisation): no calibration data, like torch's ``dynamic-int8``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.errors import ValidationError

INPUT_NAME = "x"
OUTPUT_NAME = "scores"


def export_onnx(module: nn.Module, example: np.ndarray[Any, Any], destination: Path) -> dict[str, Any]:
    """Write ``module`` as one self-contained ``.onnx`` file; returns what the export did."""
    batch = torch.from_numpy(np.ascontiguousarray(example[:2], dtype=np.float32))
    if batch.shape[0] < 2:
        batch = batch.repeat(2, 1)
    try:
        with _quiet():
            program = torch.onnx.export(
                module.eval(),
                (batch,),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
                dynamo=True,
                verbose=False,
                optimize=True,
            )
            assert program is not None
            program.save(str(destination), external_data=False)
    except ValidationError:
        raise
    except Exception as exc:
        raise ValidationError(
            f"this model cannot be converted to ONNX: {type(exc).__name__}: {str(exc).splitlines()[0][:400]}",
            field="method",
        ) from None
    import onnx

    graph = onnx.load(str(destination), load_external_data=False)
    return {
        "opset": max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")),
        "nodes": len(graph.graph.node),
    }


def quantize_onnx_int8(source: Path, destination: Path) -> None:
    """onnxruntime's dynamic quantisation: int8 weights (per channel), activations quantised per batch."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as scratch, _quiet():
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(str(prepared), str(destination), weight_type=QuantType.QInt8, per_channel=True)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter narrates every pass on stdout and warns about optional packages: none of it is news."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript", "root")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
