"""Loading a registered model into a replica, and running a batch through it.

Torch models saved by MLflow's pytorch flavour are loaded as the ``nn.Module`` itself, straight from the
model directory (``torch.load`` of ``data/model.pth``): the replica does not import MLflow, which keeps
its start-up short and its memory below ``mlflow models serve``'s. Models with MLflow's ``onnx`` flavour
(and no torch weights) run in onnxruntime (:mod:`workbench.serving.onnx_runner`), importing neither torch
nor MLflow. Every other flavour (and torch models in other serialisations) goes through ``mlflow.pyfunc``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import yaml

from workbench.serving.codec import Decoded
from workbench.serving.schema import (
    COLUMN_NUMPY_DTYPES,
    ModelSchema,
    schema_from_signature,
)

log = logging.getLogger("workbench.replica")


class Runner(Protocol):
    """Runs one batch; returns each output as an array whose first dimension is the batch's rows."""

    output_names: tuple[str, ...]

    def run(self, items: Sequence[Decoded]) -> dict[str, np.ndarray[Any, Any]]: ...


@dataclass
class LoadedModel:
    runner: Runner
    schema: ModelSchema
    flavor: str
    device: str
    details: dict[str, Any] = field(default_factory=dict)


def read_mlmodel(model_dir: Path) -> dict[str, Any]:
    with (model_dir / "MLmodel").open() as handle:
        data: dict[str, Any] = yaml.safe_load(handle)
    return data


def _output_names(schema: ModelSchema) -> tuple[str, ...]:
    names = tuple(getattr(spec, "name", None) or "" for spec in schema.outputs)
    if len(names) <= 1:
        return (names[0] or "predictions",) if names else ("predictions",)
    return tuple(name or f"output_{i}" for i, name in enumerate(names))


class TorchRunner:
    """An ``nn.Module`` on its device; on CUDA, pinned host memory and a side stream for the copies."""

    def __init__(self, module: Any, device: str, schema: ModelSchema, *, torchscript: bool = False) -> None:
        import torch

        from workbench.serving.torch_graph import as_graph

        self._torch = torch
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        #: The module as loaded; ``module`` is what runs (its verified trace, or itself).
        self.eager = self.module
        self.graph = "eager: torchscript not asked for"
        if torchscript:
            self.module, self.graph = as_graph(self.module, schema, self.device)
        self.output_names = _output_names(schema)
        self._cuda = self.device.type == "cuda"
        self._stream = torch.cuda.Stream(device=self.device) if self._cuda else None  # type: ignore[no-untyped-call]

    def run(self, items: Sequence[Decoded]) -> dict[str, np.ndarray[Any, Any]]:
        torch = self._torch
        matrix = items[0].matrix if len(items) == 1 else np.concatenate([item.matrix for item in items])
        with torch.inference_mode():
            inputs = torch.from_numpy(np.ascontiguousarray(matrix))
            if self._cuda:
                assert self._stream is not None
                with torch.cuda.stream(self._stream):
                    inputs = inputs.pin_memory().to(self.device, non_blocking=True)
                    result = self.module(inputs)
                    result = _to_host(result, torch)
                self._stream.synchronize()
            else:
                result = self.module(inputs)
        return self._named(result)

    def _named(self, result: Any) -> dict[str, np.ndarray[Any, Any]]:
        torch = self._torch
        if isinstance(result, torch.Tensor):
            return {self.output_names[0]: result.detach().cpu().numpy()}
        if isinstance(result, dict):
            return {str(k): v.detach().cpu().numpy() for k, v in result.items()}
        if isinstance(result, list | tuple):
            names = (
                self.output_names
                if len(self.output_names) == len(result)
                else tuple(f"output_{i}" for i in range(len(result)))
            )
            return {name: tensor.detach().cpu().numpy() for name, tensor in zip(names, result, strict=True)}
        raise TypeError(f"the model returned a {type(result).__name__}, expected tensors")


def _to_host(result: Any, torch: Any) -> Any:
    if isinstance(result, torch.Tensor):
        return result.to("cpu", non_blocking=True)
    if isinstance(result, dict):
        return {k: v.to("cpu", non_blocking=True) for k, v in result.items()}
    if isinstance(result, list | tuple):
        return type(result)(t.to("cpu", non_blocking=True) for t in result)
    return result


class PyfuncRunner:
    """Any MLflow flavour, through ``mlflow.pyfunc`` with a DataFrame built from the signature columns."""

    def __init__(self, model: Any, schema: ModelSchema) -> None:
        self.model = model
        self.schema = schema
        self.output_names = _output_names(schema)

    def run(self, items: Sequence[Decoded]) -> dict[str, np.ndarray[Any, Any]]:
        import pandas as pd

        if self.schema.columns is not None and items[0].columns is not None:
            names = [c.name for c in self.schema.columns]
            frame = pd.DataFrame(
                {
                    name: np.concatenate([item.columns[name] for item in items if item.columns])
                    for name in names
                }
            )
            result = self.model.predict(frame)
        else:
            result = self.model.predict(np.concatenate([item.matrix for item in items]))
        if isinstance(result, pd.DataFrame):
            if result.shape[1] == 1 and len(self.output_names) == 1:
                return {self.output_names[0]: result.iloc[:, 0].to_numpy()}
            return {str(c): result[c].to_numpy() for c in result.columns}
        if isinstance(result, pd.Series):
            return {self.output_names[0]: result.to_numpy()}
        if isinstance(result, dict):
            return {str(k): np.asarray(v) for k, v in result.items()}
        return {self.output_names[0]: np.asarray(result)}


def serving_flavor(model_dir: Path, mlmodel: dict[str, Any] | None = None) -> str:
    """How the replica will run the model in ``model_dir``: ``pytorch``, ``onnx`` or ``pyfunc``.

    Torch weights win when both are there (a variant saved with its source module); an ``onnx`` flavour
    is served by onnxruntime otherwise; anything else by ``mlflow.pyfunc``. Cheap (reads the MLmodel
    only), so the replica can pick the device inventory before importing any runtime.
    """
    flavors = (mlmodel if mlmodel is not None else read_mlmodel(model_dir)).get("flavors", {})
    if _torch_weights(model_dir, flavors) is not None:
        return "pytorch"
    return "onnx" if "onnx" in flavors else "pyfunc"


def _torch_weights(model_dir: Path, flavors: dict[str, Any]) -> Path | None:
    pytorch = flavors.get("pytorch")
    if pytorch is None:
        return None
    weights = model_dir / str(pytorch.get("model_data", "data")) / "model.pth"
    return weights if weights.is_file() else None


def load_model(
    model_dir: Path, device: str, *, threads: int | None = None, torchscript: bool = False
) -> LoadedModel:
    """Load the model in ``model_dir`` onto ``device`` (already resolved by ``select_device``).

    Each flavour imports its own runtime and nothing else: an ONNX replica never imports torch or MLflow.
    With ``torchscript``, a torch module is served as its verified TorchScript trace
    (:mod:`workbench.serving.torch_graph`).
    """
    started = time.perf_counter()
    mlmodel = read_mlmodel(model_dir)
    schema = schema_from_signature(mlmodel.get("signature"))
    flavors = mlmodel.get("flavors", {})
    flavor = serving_flavor(model_dir, mlmodel)
    if flavor == "pytorch":
        weights = _torch_weights(model_dir, flavors)
        assert weights is not None
        runner, details = _load_torch(weights, device, schema, threads, torchscript=torchscript)
    elif flavor == "onnx":
        runner, details = _load_onnx(
            model_dir / str(flavors["onnx"].get("data", "model.onnx")), device, schema, threads
        )
    else:
        runner, details = _load_pyfunc(model_dir, device, schema, threads)
    details["load_seconds"] = round(time.perf_counter() - started, 3)
    log.info("loaded %s model from %s on %s in %.2fs", flavor, model_dir, device, details["load_seconds"])
    return LoadedModel(runner=runner, schema=schema, flavor=flavor, device=device, details=details)


def _load_torch(
    weights: Path, device: str, schema: ModelSchema, threads: int | None, *, torchscript: bool
) -> tuple[Runner, dict[str, Any]]:
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    module = torch.load(weights, map_location="cpu", weights_only=False)
    runner = TorchRunner(module, device, schema, torchscript=torchscript)
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in module.parameters()})
    return runner, {
        "graph": runner.graph,
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "parameters": sum(p.numel() for p in module.parameters()),
        "dtype": ",".join(dtypes) or "none",
    }


def _load_onnx(
    model_file: Path, device: str, schema: ModelSchema, threads: int | None
) -> tuple[Runner, dict[str, Any]]:
    import onnxruntime

    from workbench.serving.onnx_runner import OnnxRunner, open_session

    session = open_session(model_file, device, threads=threads)
    runner = OnnxRunner(session, schema)
    meta = session.get_modelmeta()
    return runner, {
        "onnxruntime_version": onnxruntime.__version__,
        "providers": list(session.get_providers()),
        "threads": session.get_session_options().intra_op_num_threads,
        "onnx_inputs": list(runner.input_names),
        "producer": meta.producer_name or None,
    }


def _load_pyfunc(
    model_dir: Path, device: str, schema: ModelSchema, threads: int | None
) -> tuple[Runner, dict[str, Any]]:
    import mlflow.pyfunc

    if device.startswith("cuda"):
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", device.partition(":")[2] or "0")
    runner = PyfuncRunner(mlflow.pyfunc.load_model(str(model_dir)), schema)
    details: dict[str, Any] = {}
    torch = sys.modules.get("torch")
    if torch is not None:  # a model that uses torch imported it: give it the replica's threads
        if threads is not None:
            torch.set_num_threads(threads)
        details.update(torch_threads=torch.get_num_threads(), torch_version=torch.__version__)
    return runner, details


def warm_up(model: LoadedModel, rows: Sequence[int]) -> None:
    """Run the batch sizes the replica will see before it reports ready (allocations, lazy init, JIT).

    Only models whose input is numeric can be warmed with zeros; others warm on their first request.
    """
    schema = model.schema
    for count in rows:
        runner_input = schema.runner_input(count)
        if runner_input is None:
            return
        matrix = np.zeros(*runner_input)
        columns = None
        if schema.columns is not None:
            columns = {c.name: np.zeros(count, dtype=COLUMN_NUMPY_DTYPES[c.dtype]) for c in schema.columns}
        decoded = Decoded(
            matrix=matrix, rows=count, columns=columns, request_id=None, outputs=None, parameters={}
        )
        model.runner.run([decoded])
