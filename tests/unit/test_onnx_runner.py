"""``OnnxRunner`` on tiny ONNX models made here: torch's exporter for the usual case, ``onnx.helper`` for
shapes the exporter would not produce (several inputs, inputs that match no column)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from workbench.errors import ValidationError
from workbench.serving.codec import Decoded
from workbench.serving.model import load_model, serving_flavor, warm_up
from workbench.serving.onnx_runner import (
    OnnxRunner,
    default_threads,
    engine_cache_dir,
    open_session,
    session_options,
)
from workbench.serving.schema import ColumnSpec, ModelSchema, TensorSpec

N_FEATURES = 5
COLUMNS = tuple(f"f{i}" for i in range(N_FEATURES))
SCHEMA = ModelSchema(columns=tuple(ColumnSpec(name, "double") for name in COLUMNS))


def _quiet_export(module: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    """The exporter warns about its own internals (FutureWarnings from torch.export): not ours to fix."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            verbose=False,
            input_names=["x"],
            output_names=["score"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
    assert program is not None
    program.save(str(path))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Linear(N_FEATURES, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1), torch.nn.Sigmoid()
    ).eval()
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    _quiet_export(module, torch.zeros(3, N_FEATURES), path)
    return module, path


def _decoded(matrix: np.ndarray[Any, Any], columns: dict[str, np.ndarray[Any, Any]] | None = None) -> Decoded:
    if columns is None:
        columns = {name: matrix[:, i].astype(np.float64) for i, name in enumerate(COLUMNS)}
    return Decoded(
        matrix=matrix, rows=len(matrix), columns=columns, request_id=None, outputs=None, parameters={}
    )


def _torch(module: torch.nn.Module, matrix: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    with torch.inference_mode():
        result: np.ndarray[Any, Any] = module(torch.from_numpy(matrix.astype(np.float32))).numpy()
    return result


def _rows(n: int, seed: int = 1) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).normal(size=(n, N_FEATURES)).astype(np.float32)


def test_outputs_equal_torchs(exported: tuple[torch.nn.Module, Path]) -> None:
    module, path = exported
    runner = OnnxRunner(open_session(path, "cpu", threads=1), SCHEMA)
    matrix = _rows(32)
    outputs = runner.run([_decoded(matrix)])
    assert list(outputs) == ["predictions"] == list(runner.output_names)
    assert outputs["predictions"].shape == (32, 1), "nothing squeezed that torch returns"
    np.testing.assert_allclose(outputs["predictions"], _torch(module, matrix), atol=1e-5)


def test_a_batch_of_several_requests_is_concatenated_in_order(exported: tuple[torch.nn.Module, Path]) -> None:
    module, path = exported
    runner = OnnxRunner(open_session(path, "cpu", threads=1), SCHEMA)
    parts = [_rows(1, seed=2), _rows(4, seed=3), _rows(2, seed=4)]
    outputs = runner.run([_decoded(part) for part in parts])["predictions"]
    assert outputs.shape == (7, 1)
    np.testing.assert_allclose(outputs, _torch(module, np.concatenate(parts)), atol=1e-5)


def test_float64_input_is_cast_to_the_models_float32(exported: tuple[torch.nn.Module, Path]) -> None:
    module, path = exported
    runner = OnnxRunner(open_session(path, "cpu", threads=None), SCHEMA)
    matrix = _rows(6).astype(np.float64)
    outputs = runner.run([_decoded(matrix)])["predictions"]
    assert outputs.dtype == np.float32
    np.testing.assert_allclose(outputs, _torch(module, matrix), atol=1e-5)


def test_the_output_takes_the_signatures_name(exported: tuple[torch.nn.Module, Path]) -> None:
    _, path = exported
    schema = ModelSchema(columns=SCHEMA.columns, outputs=(TensorSpec("churn", "float32", (-1, 1)),))
    runner = OnnxRunner(open_session(path, "cpu", threads=1), schema)
    assert list(runner.run([_decoded(_rows(2))])) == ["churn"]


def test_a_feature_count_that_differs_from_the_signature_is_refused_at_load(
    exported: tuple[torch.nn.Module, Path],
) -> None:
    _, path = exported
    assert SCHEMA.columns is not None
    schema = ModelSchema(columns=(*SCHEMA.columns, ColumnSpec("extra", "double")))
    with pytest.raises(ValidationError, match="takes 5 features per row, the signature has 6"):
        OnnxRunner(open_session(path, "cpu", threads=1), schema)


# --- models with several inputs, built with onnx.helper --------------------------------------------------------


def _two_input_model(path: Path, first: str, second: str) -> None:
    """``out = first * 2 + second``: ``first`` is ``[batch]`` float, ``second`` ``[batch, 1]`` double."""
    from onnx import TensorProto, helper, save

    graph = helper.make_graph(
        [
            helper.make_node("Cast", [second], ["second_f"], to=TensorProto.FLOAT),
            helper.make_node("Flatten", ["second_f"], ["second_2d"], axis=1),
            helper.make_node("Reshape", ["second_2d", "flat"], ["second_1d"]),
            helper.make_node("Mul", [first, "two"], ["doubled"]),
            helper.make_node("Add", ["doubled", "second_1d"], ["out"]),
        ],
        "two_inputs",
        [
            helper.make_tensor_value_info(first, TensorProto.FLOAT, ["batch"]),
            helper.make_tensor_value_info(second, TensorProto.DOUBLE, ["batch", 1]),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch"])],
        initializer=[
            helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
            helper.make_tensor("flat", TensorProto.INT64, [1], [-1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    save(model, str(path))


def test_several_inputs_are_fed_one_column_each_by_name(tmp_path: Path) -> None:
    path = tmp_path / "two.onnx"
    _two_input_model(path, "tenure", "charges")
    schema = ModelSchema(columns=(ColumnSpec("charges", "double"), ColumnSpec("tenure", "long")))
    runner = OnnxRunner(open_session(path, "cpu", threads=1), schema)
    first = {"charges": np.array([1.5, 2.5]), "tenure": np.array([10, 20], dtype=np.int64)}
    second = {"charges": np.array([0.25]), "tenure": np.array([3], dtype=np.int64)}
    matrix = np.zeros((0, 2), dtype=np.float32)  # the matrix is not what a multi-input model reads
    outputs = runner.run([_decoded(matrix, first), _decoded(matrix, second)])
    np.testing.assert_allclose(outputs["predictions"], [21.5, 42.5, 6.25])


def test_inputs_that_match_no_column_are_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "two.onnx"
    _two_input_model(path, "input_a", "charges")
    schema = ModelSchema(columns=(ColumnSpec("charges", "double"), ColumnSpec("tenure", "long")))
    with pytest.raises(ValidationError, match=r"inputs 'input_a' match no signature column") as caught:
        OnnxRunner(open_session(path, "cpu", threads=1), schema)
    assert "columns: charges, tenure" in caught.value.message


def test_several_inputs_need_a_column_signature(tmp_path: Path) -> None:
    path = tmp_path / "two.onnx"
    _two_input_model(path, "a", "b")
    schema = ModelSchema(tensor=TensorSpec(None, "float32", (-1, 2)))
    with pytest.raises(ValidationError, match="signature is not column-based"):
        OnnxRunner(open_session(path, "cpu", threads=1), schema)


def test_a_missing_model_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"'model\.onnx' is missing"):
        open_session(tmp_path / "model.onnx", "cpu", threads=1)


def test_default_threads_are_the_physical_cores_this_process_may_use() -> None:
    threads = default_threads()
    assert 1 <= threads <= len(os.sched_getaffinity(0))
    options = session_options(None)
    assert options.intra_op_num_threads == threads
    assert options.inter_op_num_threads == 1
    assert session_options(3).intra_op_num_threads == 3


def test_tensorrt_engines_are_cached_per_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Engines are named after the graph, not the weights: two versions must never share a directory."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    versions = []
    for number in (1, 2):
        (tmp_path / f"v{number}").mkdir()
        (tmp_path / f"v{number}" / "model.onnx").write_bytes(b"same graph")
        (tmp_path / f"v{number}" / "weights.data").write_bytes(bytes([number]) * 8)
        versions.append(tmp_path / f"v{number}" / "model.onnx")
    first, second = (engine_cache_dir(path) for path in versions)
    assert first != second
    assert engine_cache_dir(versions[0]) == first, "a restart of the same version finds its engines"
    assert first.is_relative_to(tmp_path / "cache" / "workbench" / "tensorrt")


def test_cuda_on_a_cpu_only_onnxruntime_is_refused(exported: tuple[torch.nn.Module, Path]) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: the refusal cannot happen here")
    with pytest.raises(ValidationError, match="no CUDAExecutionProvider"):
        open_session(exported[1], "cuda:0", threads=1)


# --- load_model on an MLflow onnx-flavour directory ----------------------------------------------------------


def _model_dir(root: Path, onnx_file: Path) -> Path:
    """An MLmodel as ``mlflow.onnx.save_model`` writes it (the integration test uses MLflow itself)."""
    model_dir = root / "model"
    model_dir.mkdir()
    (model_dir / "model.onnx").write_bytes(onnx_file.read_bytes())
    signature = {
        "inputs": json.dumps([{"type": "double", "name": name, "required": True} for name in COLUMNS]),
        "outputs": json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 1]}}]),
        "params": None,
    }
    mlmodel = {
        "flavors": {
            "onnx": {"data": "model.onnx", "onnx_version": "1.23.2", "providers": ["CUDAExecutionProvider"]},
            "python_function": {"loader_module": "mlflow.onnx", "data": "model.onnx"},
        },
        "signature": signature,
    }
    (model_dir / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    return model_dir


def test_load_model_serves_the_onnx_flavour_without_torch_or_mlflow(
    exported: tuple[torch.nn.Module, Path], tmp_path: Path
) -> None:
    module, path = exported
    model_dir = _model_dir(tmp_path, path)
    assert serving_flavor(model_dir) == "onnx"
    # A fresh interpreter: this one imported torch for the test itself.
    code = f"""
import json, sys
from pathlib import Path
import numpy as np
from workbench.serving.codec import Decoded
from workbench.serving.model import load_model, warm_up
model = load_model(Path({str(model_dir)!r}), "cpu", threads=1)
warm_up(model, [1, 8])
matrix = np.arange({3 * N_FEATURES}, dtype=np.float32).reshape(3, {N_FEATURES}) / 10
out = model.runner.run([Decoded(matrix=matrix, rows=3, columns=None, request_id=None, outputs=None,
                                parameters={{}})])
print(json.dumps({{"flavor": model.flavor, "details": model.details, "out": out["predictions"].tolist(),
                  "torch": "torch" in sys.modules, "mlflow": "mlflow" in sys.modules}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["flavor"] == "onnx"
    assert report["torch"] is False
    assert report["mlflow"] is False
    details = report["details"]
    assert details["providers"] == ["CPUExecutionProvider"]
    assert details["threads"] == 1
    assert details["onnxruntime_version"]
    assert details["load_seconds"] >= 0
    matrix = np.arange(3 * N_FEATURES, dtype=np.float32).reshape(3, N_FEATURES) / 10
    np.testing.assert_allclose(report["out"], _torch(module, matrix), atol=1e-5)


def test_torch_weights_win_over_an_onnx_flavour(
    exported: tuple[torch.nn.Module, Path], tmp_path: Path
) -> None:
    module, path = exported
    model_dir = _model_dir(tmp_path, path)
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    mlmodel["flavors"]["pytorch"] = {"model_data": "data"}
    (model_dir / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    assert serving_flavor(model_dir) == "onnx", "a pytorch flavour without weights is not loadable"
    (model_dir / "data").mkdir()
    torch.save(module, model_dir / "data" / "model.pth")
    assert serving_flavor(model_dir) == "pytorch"
    loaded = load_model(model_dir, "cpu")  # threads=None: leave this process's torch threads alone
    assert loaded.flavor == "pytorch"
    warm_up(loaded, [1, 4])
