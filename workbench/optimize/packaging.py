"""A variant as an MLflow model directory that keeps its parent's signature exactly.

Requests that the parent accepts must be accepted by the variant, unchanged (a canary splits one
endpoint's traffic between them), so the signature and input example are copied from the parent, not
inferred again from the variant's outputs.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from workbench.optimize.onnx_export import export_onnx, quantize_onnx_int8


def _parent_model(parent_dir: Path) -> Any:
    from mlflow.models import Model

    return Model.load(str(parent_dir / "MLmodel"))


def _parent_requirements(parent_dir: Path) -> list[str]:
    path = parent_dir / "requirements.txt"
    if not path.is_file():
        return []
    return [
        line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]


def _copy_example(parent_dir: Path, destination: Path) -> None:
    for name in ("input_example.json", "serving_input_example.json"):
        if (parent_dir / name).is_file():
            shutil.copy2(parent_dir / name, destination / name)


def _quiet_mlflow() -> tuple[logging.Logger, int]:
    import mlflow  # configures its loggers on import: quiet them after that

    del mlflow
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    return logger, level


def save_torch(module: nn.Module, parent_dir: Path, destination: Path) -> None:
    import mlflow.pytorch

    parent = _parent_model(parent_dir)
    logger, level = _quiet_mlflow()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.pytorch.save_model(
                module.eval(),
                str(destination),
                serialization_format="pickle",
                signature=parent.signature,
                pip_requirements=_parent_requirements(parent_dir) or None,
            )
    finally:
        logger.setLevel(level)
    _copy_example(parent_dir, destination)


def save_onnx(
    module: nn.Module,
    parent_dir: Path,
    destination: Path,
    example: np.ndarray[Any, Any],
    build: dict[str, Any],
    *,
    int8: bool,
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        exported = Path(scratch) / "model.onnx"
        build["export"] = export_onnx(module, example, exported)
        if int8:
            quantized = Path(scratch) / "model-int8.onnx"
            quantize_onnx_int8(exported, quantized)
            exported = quantized
            build["quantization"] = "onnxruntime dynamic, int8 weights per channel"
        _save_onnx_file(exported, parent_dir, destination)


def onnx_file(model_dir: Path) -> Path:
    import yaml

    flavors = yaml.safe_load((model_dir / "MLmodel").read_text()).get("flavors", {})
    return model_dir / str(flavors.get("onnx", {}).get("data", "model.onnx"))


def save_onnx_int8(source: Path, parent_dir: Path, destination: Path, build: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        quantized = Path(scratch) / "model-int8.onnx"
        quantize_onnx_int8(source, quantized)
        build["quantization"] = "onnxruntime dynamic, int8 weights per channel"
        _save_onnx_file(quantized, parent_dir, destination)


def _save_onnx_file(path: Path, parent_dir: Path, destination: Path) -> None:
    import mlflow.onnx
    import onnx
    import onnxruntime

    parent = _parent_model(parent_dir)
    logger, level = _quiet_mlflow()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.onnx.save_model(
                onnx.load(str(path)),
                str(destination),
                signature=parent.signature,
                pip_requirements=[
                    f"onnxruntime=={onnxruntime.__version__}",
                    f"onnx=={onnx.__version__}",
                    "numpy",
                    "pandas<3",
                ],
                save_as_external_data=False,
            )
    finally:
        logger.setLevel(level)
    _copy_example(parent_dir, destination)
