"""A real control plane (``workbench up`` in a child process) serving the demo model, for runbook runs.

Runbooks run in their own kernels and reach the control plane over HTTP with its token, exactly as in
production, so the control plane must be a real process on a real port.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests._servers import free_port, plane_env
from workbench.client import Client
from workbench.demo.dataset import FEATURES, TARGET, generate_churn, split_frame
from workbench.demo.training import train_version
from workbench.launcher import ControlPlaneProcess
from workbench.settings import Settings


@dataclass
class Plane:
    home: Path
    url: str
    router: str
    env: dict[str, str]
    client: Client
    holdout: pd.DataFrame
    process: ControlPlaneProcess


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Iterator[Plane]:
    """Demo v1 (champion) and v2 registered; v1 served on endpoint ``churn``."""
    root = tmp_path_factory.mktemp("runbooks")
    home = root / "home"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    extra_runbooks = root / "extra-runbooks"
    extra_runbooks.mkdir()
    api_port, router_port = free_port(), free_port()
    env = plane_env(
        home,
        api_port,
        router_port,
        WORKBENCH_RUNBOOKS_DIRS=str(extra_runbooks),
        WORKBENCH_EXPERIMENT_LOOK_S="1",
    )
    url = f"http://127.0.0.1:{api_port}"
    data = generate_churn(4000, seed=11)
    train, holdout = split_frame(data, holdout_fraction=0.25, seed=11)
    process = ControlPlaneProcess(url, env, home / "logs" / "cp.log").start()
    try:
        with Client(url, settings=Settings.for_home(home, api_url=url), actor="tester") as client:
            for number in (1, 2):
                trained = train_version(number, train, holdout, seed=11)  # type: ignore[arg-type]
                client.register_model(
                    "churn",
                    trained.module,
                    input_example=holdout[list(FEATURES)].head(2),
                    reference_data=holdout,
                    reference_target=TARGET,
                    aliases=["champion"] if number == 1 else ["challenger"],
                )
            client.deploy("churn", "models:/churn@champion")
            plane = Plane(
                home=home,
                url=url,
                router=f"http://127.0.0.1:{router_port}",
                env=env,
                client=client,
                holdout=holdout.reset_index(drop=True),
                process=process,
            )
            try:
                yield plane
            finally:
                plane.process.stop()  # a test may have replaced the first control plane
    finally:
        process.stop()


class InvertedNet(torch.nn.Module):
    """Answers like the model it wraps, inverted: the same speed and no errors, and wrong most of the
    time. Only a check on fed-back labels can tell it from the original."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.0 - self.inner(x)
