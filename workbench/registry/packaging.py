"""Turn an in-memory model into an MLflow model directory, with a signature inferred from an example.

Torch modules are saved with ``serialization_format="pickle"``: the ``pt2`` default fixes the batch
dimension to the example's (a 1-row example gives a model that rejects batches), and dynamic batching
needs any batch size. Requirements are given explicitly so saving takes 0.1 s instead of the 4-10 s
MLflow spends inferring them.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import ValidationError


def _requirements() -> list[str]:
    import mlflow
    import torch

    return [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}", "pandas<3", "numpy"]


def _as_float_array(example: Any) -> np.ndarray[Any, Any]:
    import pandas as pd

    if isinstance(example, pd.DataFrame):
        array: np.ndarray[Any, Any] = example.to_numpy(dtype=np.float32)
        return array
    return np.asarray(example, dtype=np.float32)


def save_model(model: Any, path: Path, *, input_example: Any) -> None:
    """Save quietly: MLflow's warnings about pickle and integer columns are expected here, not news."""
    import mlflow  # configures its loggers on import: quiet them after that, not before

    del mlflow
    mlflow_logger = logging.getLogger("mlflow")
    level = mlflow_logger.level
    mlflow_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            _save_model(model, path, input_example=input_example)
    finally:
        mlflow_logger.setLevel(level)


def _save_model(model: Any, path: Path, *, input_example: Any) -> None:
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    if input_example is None or len(input_example) == 0:
        raise ValidationError("input_example must hold at least one row: it defines the model signature")
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None  # type: ignore[assignment]

    if torch is not None and isinstance(model, torch.nn.Module):
        import mlflow.pytorch

        model.eval()
        with torch.inference_mode():
            output = model(torch.from_numpy(_as_float_array(input_example))).cpu().numpy()
        signature = infer_signature(input_example, output)
        mlflow.pytorch.save_model(
            model,
            str(path),
            serialization_format="pickle",
            signature=signature,
            input_example=input_example,
            pip_requirements=_requirements(),
        )
        return
    if isinstance(model, mlflow.pyfunc.PythonModel):
        output = model.predict(None, input_example)
        signature = infer_signature(input_example, output)
        mlflow.pyfunc.save_model(
            str(path),
            python_model=model,
            signature=signature,
            input_example=input_example,
            pip_requirements=_requirements(),
        )
        return
    raise ValidationError(
        f"cannot register a {type(model).__name__}: pass a torch.nn.Module or an mlflow.pyfunc.PythonModel, "
        "or save it as an MLflow model and use register_from_path"
    )
