"""Serving an ONNX model through an ``onnxruntime.InferenceSession``: the Runner seam, without torch.

A replica that serves ONNX imports onnxruntime and numpy, never torch or MLflow, which keeps its memory a
fraction of a torch replica's. Everything about the model that can be wrong (input types ORT cannot be fed
from a request, inputs that match no signature column, outputs that are not tensors, a feature count that
differs from the signature's) is refused when the replica loads, so it exits before taking traffic rather
than failing every request.

No IOBinding, on CUDA either: requests arrive as host arrays (decoded from HTTP) and responses leave as host
arrays (encoded to JSON or binary tensors), so a batch needs one host-to-device and one device-to-host copy
whatever the API, and ``session.run`` does exactly those. IOBinding pays off when tensors already live on
the device or stay there between runs (a KV cache, a pipeline of sessions), which is not a replica's case;
binding host buffers would only add code that this machine cannot test.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from workbench.errors import ValidationError
from workbench.serving.codec import Decoded
from workbench.serving.model import _output_names
from workbench.serving.providers import TENSORRT, choose_providers, uses_gpu
from workbench.serving.schema import NUMERIC_COLUMN_TYPES, ModelSchema

_ONNX_DTYPES: Final[dict[str, np.dtype[Any]]] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(double)": np.dtype(np.float64),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(int16)": np.dtype(np.int16),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(uint16)": np.dtype(np.uint16),
    "tensor(uint32)": np.dtype(np.uint32),
    "tensor(uint64)": np.dtype(np.uint64),
    "tensor(bool)": np.dtype(np.bool_),
    "tensor(string)": np.dtype(object),
}
"""The ONNX tensor types a request can be cast to (bfloat16 and the float8s have no numpy dtype)."""


def default_threads() -> int:
    """Intra-op threads when the endpoint does not say: the physical cores this process may run on.

    One per physical core is torch's default too, so a replica behaves alike whichever runtime serves
    (hyperthreads add contention, not throughput, to these dense kernels). Counted here rather than left
    to ORT's 0, because ORT's own default also pins each thread to a core: every replica on a host would
    pin to the same cores and contend, and it ignores a ``taskset``/cpuset it was not told about. Falls
    back to the CPUs in the affinity mask where the topology is not readable.
    """
    cpus = os.sched_getaffinity(0)
    cores: set[tuple[str, str]] = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topology / "physical_package_id").read_text().strip()
            cores.add((package, (topology / "core_id").read_text().strip()))
        except OSError:
            return len(cpus)
    return len(cores) or len(cpus)


def session_options(threads: int | None) -> Any:
    """One batch at a time (the batcher runs batches sequentially), its operators parallel over ``threads``.

    Spinning is off: ORT's workers otherwise busy-wait after every run, and a replica idles between
    batches most of the time, burning cores that the router and the other replicas need.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads if threads is not None else default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def engine_cache_dir(model_file: Path) -> Path:
    """Where TensorRT caches the engines of this model (per user, machine, onnxruntime version and model).

    onnxruntime's engine names hash the graph, not the weights: the directory is keyed by the model's files
    (paths, sizes, modification times; a registered version's directory never changes) so a new version of
    the same architecture never picks up its predecessor's engines, and by the onnxruntime version, whose
    upgrade invalidates them. Hashing the files' bytes would be exact but reads gigabytes at every start.
    """
    import onnxruntime

    digest = hashlib.sha256()
    for path in sorted(model_file.parent.rglob("*")):
        if path.is_file():
            info = path.stat()
            digest.update(f"{path.resolve()}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "workbench" / "tensorrt" / f"ort-{onnxruntime.__version__}" / digest.hexdigest()[:16]


def open_session(model_file: Path, device: str, *, threads: int | None) -> Any:
    """An InferenceSession for ``model_file`` on ``device`` (``cpu`` or ``cuda:N``).

    Loaded from the path, not from bytes, so external data files beside the model (large models) are found.
    A CUDA device whose session ended up on the CPU alone (onnxruntime falls back, with only a log line,
    when the CUDA libraries do not load) is refused: a replica reporting ``cuda:0`` must run there.
    """
    import onnxruntime

    if not model_file.is_file():
        raise ValidationError(f"the ONNX model file {model_file.name!r} is missing from {model_file.parent}")
    available = onnxruntime.get_available_providers()
    cache = engine_cache_dir(model_file) if device != "cpu" and TENSORRT in available else None
    providers = choose_providers(device, available, engine_cache_dir=cache)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    session = onnxruntime.InferenceSession(
        str(model_file),
        sess_options=session_options(threads),
        providers=[name for name, _ in providers],
        provider_options=[options for _, options in providers],
    )
    if device != "cpu" and not uses_gpu(session.get_providers()):
        raise ValidationError(
            f"device {device!r} requested but onnxruntime could not start a GPU provider "
            f"(session providers: {', '.join(session.get_providers())}); check the CUDA and cuDNN "
            "libraries in the replica's log, or use device=cpu",
            field="device",
        )
    return session


class OnnxRunner:
    """An InferenceSession behind the Runner protocol.

    One ONNX input takes the batch's matrix (float32 ``[rows, n_features]`` in signature column order for
    column models, like a torch model), cast to the input's element type. Several inputs are fed column by
    column, each from the signature column of the same name. Outputs are named as :class:`TorchRunner`
    names them: a single output after the signature's output (or ``predictions``); several after the
    signature's outputs when their count matches, else by their names in the graph.
    """

    def __init__(self, session: Any, schema: ModelSchema) -> None:
        self.session = session
        self.schema = schema
        self._inputs = [(i.name, _element_type(i, "input"), _rank(i)) for i in session.get_inputs()]
        self._by_column = len(self._inputs) > 1
        if self._by_column:
            _check_column_inputs(self._inputs, schema)
        else:
            _check_matrix_input(session.get_inputs()[0], schema)
        outputs = session.get_outputs()
        for output in outputs:
            _element_type(output, "output")
        self._onnx_outputs = [o.name for o in outputs]
        output_names = _output_names(schema)
        if len(outputs) == 1:
            self.output_names: tuple[str, ...] = (output_names[0],)
        elif len(output_names) == len(outputs):
            self.output_names = tuple(output_names)
        else:
            self.output_names = tuple(self._onnx_outputs)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(name for name, _, _ in self._inputs)

    def run(self, items: Sequence[Decoded]) -> dict[str, np.ndarray[Any, Any]]:
        feeds: dict[str, np.ndarray[Any, Any]] = {}
        if self._by_column:
            for name, dtype, rank in self._inputs:
                column = np.concatenate([_columns(item)[name] for item in items])
                feeds[name] = _fit(column, dtype, rank)
        else:
            name, dtype, rank = self._inputs[0]
            matrix = items[0].matrix if len(items) == 1 else np.concatenate([item.matrix for item in items])
            feeds[name] = _fit(matrix, dtype, rank)
        results = self.session.run(self._onnx_outputs, feeds)
        return {name: np.asarray(value) for name, value in zip(self.output_names, results, strict=True)}


def _columns(item: Decoded) -> dict[str, np.ndarray[Any, Any]]:
    assert item.columns is not None, "a column model's request decodes to columns"
    return item.columns


def _element_type(node: Any, kind: str) -> np.dtype[Any]:
    dtype = _ONNX_DTYPES.get(node.type)
    if dtype is None:
        raise ValidationError(
            f"the ONNX model's {kind} {node.name!r} is a {node.type}, which the replica cannot "
            f"{'feed from a request' if kind == 'input' else 'return'}: supported are tensors of "
            + ", ".join(t.removeprefix("tensor(").removesuffix(")") for t in _ONNX_DTYPES)
        )
    return dtype


def _rank(node: Any) -> int | None:
    shape = node.shape
    return len(shape) if isinstance(shape, list) else None


def _check_matrix_input(node: Any, schema: ModelSchema) -> None:
    if schema.columns is not None:
        other = [c.name for c in schema.columns if c.dtype not in NUMERIC_COLUMN_TYPES]
        if other:
            raise ValidationError(
                f"the ONNX model takes one input, {node.name!r}, fed the feature matrix, but the signature "
                f"has non-numeric columns ({', '.join(other)}): give the model one input per column, "
                "named after the columns"
            )
    shape = node.shape if isinstance(node.shape, list) else []
    width = schema.n_features
    if len(shape) == 2 and isinstance(shape[1], int) and width > 0 and shape[1] != width:
        raise ValidationError(
            f"the ONNX model's input {node.name!r} takes {shape[1]} features per row, "
            f"the signature has {width}"
        )


def _check_column_inputs(
    inputs: Sequence[tuple[str, np.dtype[Any], int | None]], schema: ModelSchema
) -> None:
    names = [name for name, _, _ in inputs]
    if schema.columns is None:
        raise ValidationError(
            f"the ONNX model has {len(names)} inputs ({', '.join(names)}) but its signature is not "
            "column-based: a multi-input model is fed one signature column per input, by name"
        )
    columns = [c.name for c in schema.columns]
    unmatched = [name for name in names if name not in columns]
    if unmatched:
        raise ValidationError(
            f"the ONNX model's inputs {', '.join(map(repr, unmatched))} match no signature column "
            f"(columns: {', '.join(columns)}): a multi-input model is fed one signature column per input, "
            "by name; rename the inputs when exporting, or export a single [batch, n_features] input"
        )


def _fit(array: np.ndarray[Any, Any], dtype: np.dtype[Any], rank: int | None) -> np.ndarray[Any, Any]:
    """``array`` as the input takes it: its element type, and a column as ``[rows]`` or ``[rows, 1]``."""
    if rank == 1 and array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    elif rank == 2 and array.ndim == 1:
        array = array[:, None]
    return np.ascontiguousarray(array, dtype=dtype)
