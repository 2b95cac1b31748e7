"""The three demo models must rank as the demo's story says, and survive being served.

The models are trained once per module; quality claims are checked on a holdout, speed claims only
through parameter counts (never wall-clock time, which is noise on a shared CI machine).
"""

from __future__ import annotations

import itertools
import math
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.demo.dataset import FEATURES, TARGET, features_matrix, generate_churn, split_frame
from workbench.demo.training import ChurnNet, TrainedModel, evaluate, predict_proba, roc_auc, train_version

SEED = 7


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return split_frame(generate_churn(25_000, seed=SEED), holdout_fraction=0.2, seed=SEED)


@pytest.fixture(scope="module")
def models(frames: tuple[pd.DataFrame, pd.DataFrame]) -> dict[int, TrainedModel]:
    train, holdout = frames
    return {
        1: train_version(1, train, holdout, seed=SEED),
        2: train_version(2, train, holdout, seed=SEED),
        3: train_version(3, train, holdout, seed=SEED),
    }


@pytest.fixture(scope="module")
def batch64(frames: tuple[pd.DataFrame, pd.DataFrame]) -> torch.Tensor:
    return torch.from_numpy(features_matrix(frames[1].head(64)))


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("batch_size", [1, 64])
def test_output_is_one_probability_per_row(
    models: dict[int, TrainedModel], batch64: torch.Tensor, version: int, batch_size: int
) -> None:
    module = models[version].module
    module.eval()
    with torch.inference_mode():
        out = module(batch64[:batch_size])
    assert out.shape == (batch_size,)
    assert out.dtype == torch.float32
    assert bool(((out >= 0) & (out <= 1)).all())


def test_versions_rank_as_the_demo_claims(models: dict[int, TrainedModel]) -> None:
    auc = {version: trained.metrics["auc"] for version, trained in models.items()}
    assert auc[2] >= auc[1] + 0.01, auc
    assert auc[1] > auc[3] + 0.01, auc
    assert models[3].metrics["accuracy"] < models[1].metrics["accuracy"]
    assert models[2].metrics["log_loss"] < models[1].metrics["log_loss"] < models[3].metrics["log_loss"]
    # v1 is "good", not a strawman: clearly better than chance.
    assert auc[1] > 0.75


def test_v3_is_far_larger_than_v1(models: dict[int, TrainedModel], batch64: torch.Tensor) -> None:
    small = models[1].module.parameter_count()
    large = models[3].module.parameter_count()
    assert large >= 1_000_000
    assert large > 1_000 * small
    assert models[3].params["parameter_count"] == large
    # Deeper as well as wider, so its forward is a chain of large matmuls, not one cheap layer.
    assert len(models[3].module.hidden_sizes) > len(models[1].module.hidden_sizes)


def test_metrics_and_params_are_reported(
    models: dict[int, TrainedModel], frames: tuple[pd.DataFrame, ...]
) -> None:
    for version, trained in models.items():
        assert set(trained.metrics) == {"accuracy", "auc", "log_loss", "train_seconds"}
        assert all(math.isfinite(value) for value in trained.metrics.values())
        assert trained.metrics["train_seconds"] > 0
        for key in ("architecture", "epochs", "learning_rate", "batch_size", "seed", "parameter_count"):
            assert key in trained.params, (version, key)
        assert trained.params["version"] == version
        assert trained.params["seed"] == SEED
        assert trained.params["train_rows"] == len(frames[0])
        assert all(isinstance(value, str | int | float) for value in trained.params.values())


def test_evaluate_matches_the_reported_metrics(
    models: dict[int, TrainedModel], frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    trained = models[2]
    metrics = evaluate(trained.module, frames[1])
    for key in ("accuracy", "auc", "log_loss"):
        assert metrics[key] == pytest.approx(trained.metrics[key], abs=1e-9)


def test_normalisation_is_fitted_inside_the_model(
    models: dict[int, TrainedModel], frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    numeric = features_matrix(frames[0])[:, :15].astype(np.float64)
    module = models[1].module
    np.testing.assert_allclose(module.numeric_mean.numpy(), numeric.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(module.numeric_std.numpy(), numeric.std(axis=0), rtol=1e-4)


def test_pickle_round_trip_gives_identical_outputs(
    models: dict[int, TrainedModel], batch64: torch.Tensor
) -> None:
    for trained in (models[1], models[2]):
        restored = pickle.loads(pickle.dumps(trained.module))
        assert isinstance(restored, ChurnNet)
        restored.eval()
        with torch.inference_mode():
            assert torch.equal(restored(batch64), trained.module(batch64))


def test_training_is_deterministic_for_a_seed(
    models: dict[int, TrainedModel], frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    train, holdout = frames
    again = train_version(1, train, holdout, seed=SEED)
    for key in ("accuracy", "auc", "log_loss"):
        assert again.metrics[key] == models[1].metrics[key]
    for name, tensor in models[1].module.state_dict().items():
        assert torch.equal(tensor, again.module.state_dict()[name]), name
    other = train_version(1, train, holdout, seed=SEED + 1)
    first_layer = "mlp.0.weight"
    assert not torch.equal(other.module.state_dict()[first_layer], models[1].module.state_dict()[first_layer])


def test_training_does_not_disturb_global_torch_state(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_version(1, frames[0].head(500), frames[1].head(200), seed=0)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


def test_unknown_category_codes_do_not_crash_serving(
    models: dict[int, TrainedModel], batch64: torch.Tensor
) -> None:
    odd = batch64[:4].clone()
    odd[:, FEATURES.index("region")] = 99.0
    with torch.inference_mode():
        out = models[1].module(odd)
    assert bool(torch.isfinite(out).all())


def test_wrong_input_width_is_rejected(models: dict[int, TrainedModel]) -> None:
    with pytest.raises(ValueError, match="20"):
        models[1].module(torch.zeros(2, 19))


def test_invalid_version_is_rejected(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    with pytest.raises(ValueError, match="version"):
        train_version(4, frames[0], frames[1])  # type: ignore[arg-type]


def test_training_requires_the_target(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    with pytest.raises(ValueError, match=TARGET):
        train_version(1, frames[0].drop(columns=[TARGET]), frames[1])


def test_predict_proba_handles_frames_larger_than_one_chunk(
    models: dict[int, TrainedModel], frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    holdout = frames[1]
    scores = predict_proba(models[1].module, holdout)
    assert scores.shape == (len(holdout),)
    with torch.inference_mode():
        direct = models[1].module(torch.from_numpy(features_matrix(holdout.tail(10)))).numpy()
    np.testing.assert_allclose(scores[-10:], direct, rtol=1e-6)


def test_roc_auc_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    # Coarse scores force many ties, which the rank formula must count as half-wins.
    scores = np.round(rng.random(300) + 0.3 * labels, 1)
    positives, negatives = scores[labels == 1], scores[labels == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(positives, negatives))
    assert roc_auc(labels, scores) == pytest.approx(wins / (len(positives) * len(negatives)))


def test_roc_auc_edge_cases() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert math.isnan(roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="length"):
        roc_auc([0, 1], [0.5])
