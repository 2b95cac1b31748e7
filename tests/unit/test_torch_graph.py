"""A torch model is served as a TorchScript trace only when the trace reproduces the module."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workbench.serving.codec import Decoded
from workbench.serving.model import LoadedModel, TorchRunner, warm_up
from workbench.serving.schema import ColumnSpec, ModelSchema, TensorSpec
from workbench.serving.torch_graph import as_graph, sample_matrix

COLUMNS = ModelSchema(columns=(ColumnSpec("x", "double"), ColumnSpec("n", "long"), ColumnSpec("f", "float")))
CPU = torch.device("cpu")


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x)).squeeze(-1)


class BranchesOnBatchSize(nn.Module):
    """Python control flow a trace freezes: the 8-row trace always sums, the module averages small batches."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=1) if x.shape[0] > 4 else x.mean(dim=1)


class ReturnsAString(nn.Module):
    def forward(self, x: torch.Tensor) -> str:
        return "not a tensor"


class NamedOutputs(nn.Module):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"total": x.sum(dim=1), "first": x[:, 0]}


def _decoded(matrix: np.ndarray) -> Decoded:
    return Decoded(
        matrix=matrix, rows=len(matrix), columns=None, request_id=None, outputs=None, parameters={}
    )


def test_a_plain_mlp_is_traced_and_answers_as_the_module_does() -> None:
    module = Mlp().eval()
    graph, how = as_graph(module, COLUMNS, CPU)
    assert how == "torchscript"
    assert isinstance(graph, torch.jit.ScriptModule)
    runner = TorchRunner(Mlp(), "cpu", COLUMNS, torchscript=True)
    assert runner.graph == "torchscript"
    matrix = np.random.default_rng(1).normal(size=(37, 3)).astype(np.float32)
    with torch.inference_mode():
        expected = module(torch.from_numpy(matrix)).numpy()
    np.testing.assert_allclose(runner.run([_decoded(matrix)])["predictions"], expected, rtol=1e-5, atol=1e-6)


def test_a_trace_that_differs_from_the_module_is_not_served() -> None:
    graph, how = as_graph(BranchesOnBatchSize(), COLUMNS, CPU)
    assert isinstance(graph, BranchesOnBatchSize)
    assert how.startswith("eager: the trace differs from the module at 1 rows")


def test_a_module_the_tracer_cannot_follow_is_served_eager_with_the_reason() -> None:
    graph, how = as_graph(ReturnsAString(), COLUMNS, CPU)
    assert isinstance(graph, ReturnsAString)
    assert how.startswith("eager: tracing failed")


def test_named_outputs_are_traced_and_compared_by_name() -> None:
    graph, how = as_graph(NamedOutputs(), COLUMNS, CPU)
    assert how == "torchscript"
    out = graph(torch.ones(2, 3))
    assert set(out) == {"total", "first"}


def test_inputs_that_cannot_be_sampled_stay_eager() -> None:
    strings = ModelSchema(columns=(ColumnSpec("s", "string"),))
    assert sample_matrix(strings, 4) is None
    _, how = as_graph(Mlp(), strings, CPU)
    assert how.startswith("eager: inputs that cannot be sampled")
    open_shape = ModelSchema(tensor=TensorSpec("t", "float32", (-1, -1)))
    assert sample_matrix(open_shape, 4) is None


@pytest.mark.parametrize(
    ("schema", "shape", "dtype"),
    [
        (COLUMNS, (5, 3), np.float32),
        (ModelSchema(tensor=TensorSpec("t", "float64", (-1, 4))), (5, 4), np.float64),
        (ModelSchema(tensor=TensorSpec("t", "int64", (-1, 2, 2))), (5, 2, 2), np.int64),
    ],
)
def test_samples_have_the_runner_s_shape_and_type(
    schema: ModelSchema, shape: tuple[int, ...], dtype: type
) -> None:
    sample = sample_matrix(schema, 5)
    assert sample is not None
    assert sample.shape == shape
    assert sample.dtype == dtype


def test_without_torchscript_the_module_itself_is_served() -> None:
    runner = TorchRunner(Mlp(), "cpu", COLUMNS, torchscript=False)
    assert isinstance(runner.module, Mlp)
    assert runner.graph.startswith("eager: torchscript not asked for")


def test_warm_up_skips_a_tensor_whose_feature_dimension_only_a_request_states() -> None:
    """It used to warm a ``(-1, -1)`` tensor with a square of the batch size, which a model of any other
    width refuses: the replica then never became ready."""
    seen: list[tuple[int, ...]] = []

    class Recording:
        output_names = ("predictions",)

        def run(self, items: list[Decoded]) -> dict[str, np.ndarray]:
            seen.append(items[0].matrix.shape)
            return {"predictions": np.zeros(len(items[0].matrix))}

    for shape, warmed in (((-1, -1), []), ((-1, 3), [(1, 3), (8, 3)])):
        seen.clear()
        schema = ModelSchema(tensor=TensorSpec("t", "float32", shape))
        warm_up(LoadedModel(runner=Recording(), schema=schema, flavor="pytorch", device="cpu"), [1, 8])
        assert seen == warmed
