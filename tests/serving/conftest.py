"""A real data plane for the serving tests: control plane, router and replica processes on free ports.

One world per test module (replicas take seconds to start); the models are the demo's churn models,
trained on a few thousand generated rows, plus a deliberately slow one for shadow tests.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import torch

from tests._servers import run_server
from workbench.api import create_app
from workbench.client import Client
from workbench.control_plane import ControlPlane
from workbench.demo.dataset import FEATURES, generate_churn, split_frame
from workbench.demo.training import train_version
from workbench.settings import Settings


class SlowNet(torch.nn.Module):
    """A correct model that takes ``delay`` seconds per batch: for proving a shadow delays nothing."""

    def __init__(self, inner: torch.nn.Module, delay: float) -> None:
        super().__init__()
        self.inner = inner
        self.delay = delay

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.delay)
        out: torch.Tensor = self.inner(x)
        return out


class FlakyNet(torch.nn.Module):
    """A candidate with injected errors: every third batch of real data raises, as a broken model would.

    All-zero batches (the replica's warm-up) pass, so the candidate deploys and fails only under traffic.
    """

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(x.any()):
            self.calls += 1
            if self.calls % 3 == 0:
                raise RuntimeError("injected failure")
        out: torch.Tensor = self.inner(x)
        return out


class ScorePyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """A non-torch MLflow model: served through mlflow.pyfunc, with a DataFrame built from the signature."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray[Any, Any]:
        score: np.ndarray[Any, Any] = (
            model_input["tenure_months"].to_numpy(dtype=np.float64) * 0.01
            + model_input["contract_type"].to_numpy()
        )
        return score


@dataclass
class World:
    settings: Settings
    plane: ControlPlane
    client: Client
    api_url: str
    frame: pd.DataFrame
    modules: dict[int, torch.nn.Module]

    @property
    def router(self) -> str:
        url = self.plane.serving.status()["router_url"]
        assert url, "the router is not running"
        return str(url)

    @property
    def router_grpc(self) -> str:
        """``host:port`` of the router's OIP gRPC service."""
        target = self.plane.serving.status().get("router_grpc")
        assert target, "the router serves no gRPC"
        return str(target)

    def expected(self, version: int, rows: pd.DataFrame) -> np.ndarray[Any, Any]:
        with torch.inference_mode():
            x = torch.from_numpy(rows[list(FEATURES)].to_numpy(dtype=np.float32))
            result: np.ndarray[Any, Any] = self.modules[version](x).numpy()
            return result


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Iterator[World]:
    yield from make_world(tmp_path_factory.mktemp("serving"), mlflow_template, serving_backend="local")


def make_world(root: Path, mlflow_template: Path, *, serving_backend: str, **options: Any) -> Iterator[World]:
    """A control plane with the test models registered, serving through ``serving_backend``."""
    home = root / "home"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    settings = Settings.for_home(
        home, allowed_roots=(root,), api_port=0, router_port=0, serving_backend=serving_backend, **options
    )
    data = generate_churn(4000, seed=3)
    train, holdout = split_frame(data, holdout_fraction=0.25, seed=3)
    modules: dict[int, torch.nn.Module] = {}
    plane = ControlPlane(settings)
    plane.start_serving()
    try:
        with (
            run_server(create_app(settings, plane)) as url,
            Client(url, settings=settings, actor="tester") as client,
        ):
            example = holdout[list(FEATURES)].head(2)
            versions: tuple[Literal[1, 2], ...] = (1, 2)
            for number in versions:
                trained = train_version(number, train, holdout, seed=3)
                modules[number] = trained.module
                client.register_model(
                    "churn",
                    trained.module,
                    input_example=example,
                    reference_data=holdout,
                    metrics=trained.metrics,
                )
            slow = SlowNet(modules[1], delay=0.5)
            modules[3] = slow
            client.register_model("churn", slow, input_example=example)
            client.register_model("scorer", ScorePyfunc(), input_example=example)
            client.register_model("churn", FlakyNet(modules[2]), input_example=example)  # v4: errors
            client.register_model("churn", SlowNet(modules[2], delay=0.05), input_example=example)  # v5: slow
            yield World(settings, plane, client, url, holdout.reset_index(drop=True), modules)
    finally:
        plane.close()


def oip_columns(rows: pd.DataFrame, request_id: str | None = None) -> dict[str, Any]:
    inputs = []
    for name in FEATURES:
        column = rows[name]
        datatype = "INT64" if column.dtype.kind == "i" else "FP64"
        inputs.append({"name": name, "shape": [len(rows)], "datatype": datatype, "data": column.tolist()})
    body: dict[str, Any] = {"inputs": inputs}
    if request_id is not None:
        body["id"] = request_id
    return body


def oip_matrix(rows: pd.DataFrame) -> dict[str, Any]:
    matrix = rows[list(FEATURES)].to_numpy(dtype=np.float32)
    return {
        "inputs": [
            {
                "name": "features",
                "shape": list(matrix.shape),
                "datatype": "FP32",
                "data": matrix.ravel().tolist(),
            }
        ]
    }


def wait_until(predicate: Any, timeout: float = 60.0, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


def replica_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
