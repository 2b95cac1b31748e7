"""One world for the optimisation tests: a real control plane, API and data plane, and the demo's models.

Version 1 is the demo's good MLP (v2's recipe), version 2 its large, slow regression (v3's recipe),
both registered with their labelled holdout as reference data, as the demo registers them; ``scorer``
is a pyfunc model no method can convert and ``unlabelled`` a torch model registered without reference
data. Trained on a few thousand generated rows, so the world is built in seconds.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import torch

from tests._servers import free_port, run_server
from workbench.api import create_app
from workbench.client import Client
from workbench.control_plane import ControlPlane
from workbench.demo.dataset import FEATURES, TARGET, generate_churn, split_frame
from workbench.demo.training import train_version
from workbench.settings import Settings


class ScorePyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray[Any, Any]:
        return model_input["tenure_months"].to_numpy(dtype=np.float64) * 0.01


@dataclass
class World:
    settings: Settings
    plane: ControlPlane
    client: Client
    api_url: str
    reference: pd.DataFrame
    modules: dict[int, torch.nn.Module]

    def parent_scores(self, version: int, rows: pd.DataFrame) -> np.ndarray[Any, Any]:
        with torch.inference_mode():
            x = torch.from_numpy(rows[list(FEATURES)].to_numpy(dtype=np.float32))
            scores: np.ndarray[Any, Any] = self.modules[version](x).numpy()
            return scores


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Iterator[World]:
    root = tmp_path_factory.mktemp("optimize")
    home = root / "home"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    api_port = free_port()  # a real one: runbook kernels call the control plane at settings.api_url
    settings = Settings.for_home(
        home, allowed_roots=(root,), api_port=api_port, router_port=0, serving_backend="local"
    )
    data = generate_churn(4000, seed=5)
    train, holdout = split_frame(data, holdout_fraction=0.25, seed=5)
    holdout = holdout.reset_index(drop=True)
    plane = ControlPlane(settings)
    plane.start_serving()
    modules: dict[int, torch.nn.Module] = {}
    try:
        with (
            run_server(create_app(settings, plane), port=api_port) as url,
            Client(url, settings=settings, actor="tester") as client,
        ):
            example = holdout[list(FEATURES)].head(2)
            for recipe in (2, 3):
                trained = train_version(recipe, train, holdout, seed=5)  # type: ignore[arg-type]
                info = client.register_model(
                    "churn",
                    trained.module,
                    input_example=example,
                    reference_data=holdout,
                    reference_target=TARGET,
                    metrics=trained.metrics,
                )
                modules[info.version] = trained.module
            client.register_model(
                "scorer",
                ScorePyfunc(),
                input_example=example,
                reference_data=holdout,
                reference_target=TARGET,
            )
            client.register_model("unlabelled", modules[1], input_example=example)
            yield World(settings, plane, client, url, holdout, modules)
    finally:
        plane.close()
