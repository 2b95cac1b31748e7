"""Small real MLflow models and reference datasets, built once per test in temporary directories."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from workbench.registry.packaging import save_model


def tiny_module() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0), torch.nn.Sigmoid())


def tiny_frame(rows: int = 50) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "a": [float(i) for i in range(rows)],
            "b": [float(i % 7) for i in range(rows)],
            "c": [i % 3 for i in range(rows)],
            "label": [i % 2 for i in range(rows)],
        }
    )


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    path = tmp_path / "models" / "tiny"
    save_model(tiny_module(), path, input_example=tiny_frame(2)[["a", "b", "c"]])
    return path


@pytest.fixture
def reference_file(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "reference.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    tiny_frame().to_parquet(path, index=False)
    return path
