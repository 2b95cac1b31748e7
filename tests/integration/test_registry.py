"""The registry through the control plane, on a real SQLite-backed MLflow in a temporary home."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.integration.conftest import tiny_frame
from workbench.control_plane import ControlPlane
from workbench.errors import NotFoundError, PermissionDeniedError, ValidationError
from workbench.registry.lineage import frame_digest
from workbench.registry.types import Lineage, PathSource, ReferenceSpec, RegistrationRequest, RunSource


def _snapshot(plane: ControlPlane) -> tuple[dict[str, int], int]:
    return plane.registry.counts(), plane.audit.count()


def test_register_from_path_keeps_signature_lineage_and_reference(
    plane: ControlPlane, model_dir: Path, reference_file: Path
) -> None:
    request = RegistrationRequest(
        description="first",
        metrics={"accuracy": 0.9},
        params={"lr": "0.1"},
        lineage=Lineage(data_digest="sha256:abc", data_rows=50, code_version="deadbeef"),
        reference=ReferenceSpec(path=str(reference_file), target="label"),
        aliases=["champion"],
        reason="initial",
    )
    info = plane.register("churn", PathSource(path=str(model_dir)), request, actor="alice")

    assert info.version == 1
    assert info.aliases == ["champion"]
    assert info.signature is not None
    assert [c["name"] for c in info.signature["inputs"]] == ["a", "b", "c"]
    assert "pytorch" in info.flavors
    assert info.metrics == {"accuracy": 0.9}
    assert info.params == {"lr": "0.1"}
    assert info.lineage.data_digest == "sha256:abc"
    assert info.lineage.data_rows == 50
    assert info.lineage.code_version == "deadbeef"
    assert info.lineage.run_id
    assert info.lineage.source is not None
    assert info.lineage.source.startswith("path:")
    assert info.reference is not None
    assert info.reference.rows == 50
    assert info.reference.target == "label"
    assert info.reference.digest == frame_digest(pd.read_parquet(reference_file))
    reference = plane.registry.load_reference("churn", 1)
    assert list(reference.columns) == ["a", "b", "c", "label"]
    assert (plane.registry.model_path("churn", 1) / "MLmodel").is_file()

    events = plane.audit.query(target="models:/churn/1")
    assert [e.action for e in events] == ["model.register"]
    assert events[0].actor == "alice"
    assert events[0].reason == "initial"


def test_register_from_run_uses_the_run_as_lineage(plane: ControlPlane, model_dir: Path) -> None:
    mlflow = MlflowClient(plane.settings.mlflow_tracking_uri, plane.settings.mlflow_registry_uri)
    experiment = mlflow.create_experiment(
        "training", artifact_location=(plane.settings.home / "art").as_uri()
    )
    run = mlflow.create_run(experiment)
    mlflow.log_artifacts(run.info.run_id, str(model_dir), "model")
    mlflow.log_metric(run.info.run_id, "auc", 0.81)

    request = RegistrationRequest(metrics={"holdout_accuracy": 0.7})
    info = plane.register("churn", RunSource(run_id=run.info.run_id), request, actor="bob")

    assert info.lineage.run_id == run.info.run_id
    assert info.metrics == {"auc": pytest.approx(0.81), "holdout_accuracy": pytest.approx(0.7)}
    assert info.source.endswith("/model")


def test_versions_aliases_and_resolution(plane: ControlPlane, model_dir: Path) -> None:
    for _ in range(3):
        plane.register("churn", PathSource(path=str(model_dir)), RegistrationRequest(), actor="a")
    plane.set_alias("churn", "champion", 1, actor="a", reason="first")
    plane.set_alias("churn", "challenger", 2, actor="a")

    assert plane.resolve("models:/churn@champion").version == 1
    assert plane.resolve("models:/churn/3").version == 3
    assert [v.version for v in plane.list_versions("churn")] == [3, 2, 1]
    assert plane.get_model("churn").aliases == {"champion": 1, "challenger": 2}

    moved = plane.set_alias("churn", "champion", 3, actor="a", reason="promote")
    assert moved.aliases == ["champion"]
    event = plane.audit.query(target="models:/churn@champion", limit=1)[0]
    assert (event.before, event.after, event.reason) == ({"version": 1}, {"version": 3}, "promote")

    assert plane.delete_alias("churn", "challenger", actor="a") == 2
    assert "challenger" not in plane.get_model("churn").aliases
    with pytest.raises(NotFoundError, match="no alias 'challenger'"):
        plane.resolve("models:/churn@challenger")


def test_parent_version_must_exist(plane: ControlPlane, model_dir: Path) -> None:
    plane.register("churn", PathSource(path=str(model_dir)), RegistrationRequest(), actor="a")
    child = plane.register(
        "churn",
        PathSource(path=str(model_dir)),
        RegistrationRequest(lineage=Lineage(parent_version=1)),
        actor="a",
    )
    assert child.lineage.parent_version == 1
    before = _snapshot(plane)
    with pytest.raises(NotFoundError):
        plane.register(
            "churn",
            PathSource(path=str(model_dir)),
            RegistrationRequest(lineage=Lineage(parent_version=9)),
            actor="a",
        )
    assert _snapshot(plane) == before


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("missing path", NotFoundError),
        ("outside roots", PermissionDeniedError),
        ("not a model", ValidationError),
        ("relative path", ValidationError),
        ("unknown run", NotFoundError),
        ("reference missing column", ValidationError),
        ("reference outside roots", PermissionDeniedError),
        ("reference bad target", ValidationError),
        ("reference unreadable", ValidationError),
        ("bad name", ValidationError),
        ("bad alias", ValidationError),
    ],
)
def test_bad_registrations_write_nothing(
    plane: ControlPlane,
    model_dir: Path,
    reference_file: Path,
    tmp_path: Path,
    case: str,
    error: type[Exception],
) -> None:
    plane.register("churn", PathSource(path=str(model_dir)), RegistrationRequest(), actor="a")
    before = _snapshot(plane)
    name = "churn"
    source: PathSource | RunSource = PathSource(path=str(model_dir))
    request = RegistrationRequest()
    if case == "missing path":
        source = PathSource(path=str(tmp_path / "nope"))
    elif case == "outside roots":
        source = PathSource(path="/usr/lib")
    elif case == "not a model":
        (tmp_path / "empty").mkdir()
        source = PathSource(path=str(tmp_path / "empty"))
    elif case == "relative path":
        source = PathSource(path="models/tiny")
    elif case == "unknown run":
        source = RunSource(run_id="0123456789abcdef0123456789abcdef")
    elif case == "reference missing column":
        bad = tmp_path / "bad.parquet"
        tiny_frame().drop(columns=["b"]).to_parquet(bad)
        request = RegistrationRequest(reference=ReferenceSpec(path=str(bad)))
    elif case == "reference outside roots":
        request = RegistrationRequest(reference=ReferenceSpec(path="/etc/hostname"))
    elif case == "reference bad target":
        request = RegistrationRequest(reference=ReferenceSpec(path=str(reference_file), target="nope"))
    elif case == "reference unreadable":
        garbage = tmp_path / "garbage.parquet"
        garbage.write_bytes(b"not parquet at all")
        request = RegistrationRequest(reference=ReferenceSpec(path=str(garbage)))
    elif case == "bad name":
        name = "bad name!"
    elif case == "bad alias":
        request = RegistrationRequest(aliases=["latest"])

    with pytest.raises(error):
        plane.register(name, source, request, actor="a")
    assert _snapshot(plane) == before


def test_alias_errors_write_nothing(plane: ControlPlane, model_dir: Path) -> None:
    plane.register("churn", PathSource(path=str(model_dir)), RegistrationRequest(), actor="a")
    before = _snapshot(plane)
    with pytest.raises(NotFoundError):
        plane.set_alias("churn", "champion", 7, actor="a")
    with pytest.raises(NotFoundError):
        plane.set_alias("nope", "champion", 1, actor="a")
    with pytest.raises(ValidationError):
        plane.set_alias("churn", "v2", 1, actor="a")
    with pytest.raises(NotFoundError):
        plane.delete_alias("churn", "champion", actor="a")
    assert _snapshot(plane) == before
    assert plane.get_model("churn").aliases == {}
