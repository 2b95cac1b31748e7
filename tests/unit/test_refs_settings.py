"""Model references, settings from the environment, and the error types shared by every edge."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pydantic
import pytest

from workbench.errors import (
    ERROR_TYPES,
    ConflictError,
    NotFoundError,
    UnavailableError,
    ValidationError,
    WorkbenchError,
    describe_validation_errors,
    error_from_dict,
)
from workbench.registry.refs import ModelRef
from workbench.settings import (
    DEFAULT_API_PORT,
    DEFAULT_MAX_UPLOAD_BYTES,
    DEFAULT_ROUTER_GRPC_PORT,
    DEFAULT_ROUTER_PORT,
    Settings,
)
from workbench.specs.endpoint import EndpointSpec

# --- ModelRef -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected", "canonical"),
    [
        ("models:/fraud@champion", ModelRef("fraud", alias="champion"), "models:/fraud@champion"),
        ("models:/fraud/3", ModelRef("fraud", version=3), "models:/fraud/3"),
        ("fraud@champion", ModelRef("fraud", alias="champion"), "models:/fraud@champion"),
        ("fraud/3", ModelRef("fraud", version=3), "models:/fraud/3"),
        (
            "  models:/Fraud.model_v2-b/12  ",
            ModelRef("Fraud.model_v2-b", version=12),
            "models:/Fraud.model_v2-b/12",
        ),
        ("models:/m@_staging-2", ModelRef("m", alias="_staging-2"), "models:/m@_staging-2"),
        ("models:/m@v", ModelRef("m", alias="v"), "models:/m@v"),
        ("models:/m@vnext", ModelRef("m", alias="vnext"), "models:/m@vnext"),
        ("models:/m@latest_good", ModelRef("m", alias="latest_good"), "models:/m@latest_good"),
    ],
)
def test_model_ref_parse(uri: str, expected: ModelRef, canonical: str) -> None:
    ref = ModelRef.parse(uri)
    assert ref == expected
    assert str(ref) == canonical
    assert ModelRef.parse(str(ref)) == ref


def test_model_ref_fields() -> None:
    by_version = ModelRef.parse("models:/fraud/3")
    by_alias = ModelRef.parse("fraud@champion")
    assert (by_version.name, by_version.version, by_version.alias) == ("fraud", 3, None)
    assert (by_alias.name, by_alias.version, by_alias.alias) == ("fraud", None, "champion")
    with pytest.raises(dataclasses.FrozenInstanceError):
        by_version.version = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "   ",
        "models:/",
        "fraud",
        "models:/fraud",
        "models:/fraud@",
        "models:/@champion",
        "models:/fraud/",
        "/3",
        "models:/-fraud/1",
        "models:/fraud model/1",
        "models:/a/b/1",
        "models:/" + "a" * 129 + "/1",
        "models:/fraud@latest",
        "models:/fraud@LATEST",
        "models:/fraud@v3",
        "models:/fraud@V12",
        "models:/fraud@1st",
        "models:/fraud@with space",
        "models:/fraud@" + "a" * 65,
        "models:/fraud/0",
        "models:/fraud/-1",
        "models:/fraud/abc",
        "models:/fraud/1.5",
    ],
)
def test_model_ref_parse_rejects(uri: str) -> None:
    with pytest.raises(ValidationError):
        ModelRef.parse(uri)


@pytest.mark.parametrize("value", [None, 3, b"models:/fraud/1"])
def test_model_ref_parse_rejects_non_strings(value: Any) -> None:
    with pytest.raises(ValidationError):
        ModelRef.parse(value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "fraud"},
        {"name": "fraud", "version": 1, "alias": "champion"},
        {"name": "", "version": 1},
        {"name": "fraud", "version": 0},
        {"name": "fraud", "alias": "latest"},
        {"name": "fraud", "alias": ""},
    ],
)
def test_model_ref_constructor_validates(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ModelRef(**kwargs)


@pytest.mark.parametrize(
    "kwargs", [{"name": "fraud\n", "version": 1}, {"name": "fraud", "alias": "champion\n"}]
)
def test_model_ref_refuses_trailing_newline(kwargs: dict[str, Any]) -> None:
    """The patterns end in ``$``, which also matches before a final newline; names must not carry one."""
    with pytest.raises(ValidationError):
        ModelRef(**kwargs)


def test_reserved_alias_error_names_the_field() -> None:
    with pytest.raises(ValidationError, match="reserved") as caught:
        ModelRef.parse("models:/fraud@latest")
    assert caught.value.details["field"] == "alias"


# --- Settings -----------------------------------------------------------------------------------------------


def test_for_home_defaults(tmp_path: Path) -> None:
    settings = Settings.for_home(tmp_path / "home")
    home = (tmp_path / "home").resolve()
    assert settings.home == home
    assert settings.mlflow_tracking_uri == f"sqlite:///{home / 'mlflow.db'}"
    assert settings.mlflow_registry_uri == settings.mlflow_tracking_uri
    assert settings.state_url == f"sqlite:///{home / 'state.db'}"
    assert settings.artifact_root == home / "mlartifacts"
    assert settings.token_file == home / "api-token"
    assert settings.token is None
    assert settings.open_reads is False
    assert settings.allowed_roots == (home, Path.cwd().resolve())
    assert (settings.host, settings.api_port, settings.router_port) == (
        "127.0.0.1",
        DEFAULT_API_PORT,
        DEFAULT_ROUTER_PORT,
    )
    assert settings.api_url == f"http://127.0.0.1:{DEFAULT_API_PORT}"
    assert settings.max_upload_bytes == DEFAULT_MAX_UPLOAD_BYTES


def test_for_home_resolves_relative_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.for_home("relative/home")
    assert settings.home == (tmp_path / "relative" / "home").resolve()
    assert settings.home.is_absolute()
    assert settings.state_url == f"sqlite:///{settings.home / 'state.db'}"


def test_for_home_api_url_follows_host_and_port(tmp_path: Path) -> None:
    assert Settings.for_home(tmp_path, host="0.0.0.0", api_port=9000).api_url == "http://0.0.0.0:9000"
    explicit = Settings.for_home(tmp_path, api_port=9000, api_url="https://wb.example.com")
    assert explicit.api_url == "https://wb.example.com"


def test_from_env_defaults(tmp_path: Path) -> None:
    assert Settings.from_env({"WORKBENCH_HOME": str(tmp_path)}) == Settings.for_home(tmp_path)


def test_from_env_without_home_uses_dot_workbench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}).home == (tmp_path / ".workbench").resolve()


def test_from_env_reads_os_environ_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("WORKBENCH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    monkeypatch.setenv("WORKBENCH_API_PORT", "9100")
    settings = Settings.from_env()
    assert settings.home == tmp_path.resolve()
    assert settings.api_port == 9100


def test_from_env_honours_every_variable(tmp_path: Path) -> None:
    root_a, root_b = tmp_path / "a", tmp_path / "b"
    env = {
        "WORKBENCH_HOME": str(tmp_path / "home"),
        "WORKBENCH_MLFLOW_TRACKING_URI": "http://mlflow:5000",
        "WORKBENCH_MLFLOW_REGISTRY_URI": "postgresql://registry/db",
        "WORKBENCH_STATE_URL": "postgresql://state/db",
        "WORKBENCH_HOST": "0.0.0.0",
        "WORKBENCH_API_PORT": "9001",
        "WORKBENCH_ROUTER_PORT": "9002",
        "WORKBENCH_TOKEN_FILE": str(tmp_path / "secrets" / "token"),
        "WORKBENCH_TOKEN": "s3cret",
        "WORKBENCH_OPEN_READS": "true",
        "WORKBENCH_ALLOWED_ROOTS": f"{root_a}{os.pathsep}{os.pathsep}{root_b}",
        "WORKBENCH_URL": "https://workbench.example.com/",
        "WORKBENCH_MAX_UPLOAD_BYTES": "1048576",
    }
    settings = Settings.from_env(env)
    assert settings.home == (tmp_path / "home").resolve()
    assert settings.mlflow_tracking_uri == "http://mlflow:5000"
    assert settings.mlflow_registry_uri == "postgresql://registry/db"
    assert settings.state_url == "postgresql://state/db"
    assert settings.host == "0.0.0.0"
    assert settings.api_port == 9001
    assert settings.router_port == 9002
    assert settings.token_file == (tmp_path / "secrets" / "token").resolve()
    assert settings.token == "s3cret"
    assert settings.open_reads is True
    assert settings.allowed_roots == (root_a.resolve(), root_b.resolve())
    assert settings.api_url == "https://workbench.example.com"
    assert settings.max_upload_bytes == 1048576
    assert settings.artifact_root == (tmp_path / "home").resolve() / "mlartifacts"


def test_tracking_uri_alone_sets_the_registry_too(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"WORKBENCH_HOME": str(tmp_path), "WORKBENCH_MLFLOW_TRACKING_URI": "http://m:5000"}
    )
    assert settings.mlflow_tracking_uri == settings.mlflow_registry_uri == "http://m:5000"


def test_host_and_port_without_url_build_api_url(tmp_path: Path) -> None:
    env = {"WORKBENCH_HOME": str(tmp_path), "WORKBENCH_HOST": "10.0.0.5", "WORKBENCH_API_PORT": "8000"}
    assert Settings.from_env(env).api_url == "http://10.0.0.5:8000"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("YES", True), (" on ", True), ("0", False), ("no", False), ("", False)],
)
def test_open_reads_flag(tmp_path: Path, raw: str, expected: bool) -> None:
    env = {"WORKBENCH_HOME": str(tmp_path), "WORKBENCH_OPEN_READS": raw}
    assert Settings.from_env(env).open_reads is expected


@pytest.mark.parametrize(("raw", "expected"), [(None, True), ("0", False), ("off", False), ("1", True)])
def test_replicas_are_forked_unless_turned_off(tmp_path: Path, raw: str | None, expected: bool) -> None:
    env = {"WORKBENCH_HOME": str(tmp_path)}
    if raw is not None:
        env["WORKBENCH_REPLICA_FORKSERVER"] = raw
    assert Settings.from_env(env).replica_forkserver is expected


@pytest.mark.parametrize(
    "variable", ["WORKBENCH_API_PORT", "WORKBENCH_ROUTER_PORT", "WORKBENCH_ROUTER_GRPC_PORT"]
)
@pytest.mark.parametrize("raw", ["abc", "70000", "65536", "-1", "80.5"])
def test_bad_port_is_a_validation_error(tmp_path: Path, variable: str, raw: str) -> None:
    with pytest.raises(ValidationError, match=variable) as caught:
        Settings.from_env({"WORKBENCH_HOME": str(tmp_path), variable: raw})
    assert caught.value.details == {"variable": variable}


@pytest.mark.parametrize(
    ("router", "grpc", "expected"),
    [
        (None, None, DEFAULT_ROUTER_GRPC_PORT),  # beside the default router port: 8768
        ("9100", None, 0),  # a router moved elsewhere: any free port, never a collision on 8768
        ("0", None, 0),
        (None, "9200", 9200),
        ("9100", "0", 0),
        (None, "off", None),
        ("9100", " OFF ", None),
    ],
)
def test_the_grpc_port_follows_the_router_unless_set(
    tmp_path: Path, router: str | None, grpc: str | None, expected: int | None
) -> None:
    env = {"WORKBENCH_HOME": str(tmp_path)}
    if router is not None:
        env["WORKBENCH_ROUTER_PORT"] = router
    if grpc is not None:
        env["WORKBENCH_ROUTER_GRPC_PORT"] = grpc
    assert Settings.from_env(env).grpc_port() == expected


@pytest.mark.parametrize("raw", ["abc", "0", "-5"])
def test_bad_upload_limit_is_a_validation_error(tmp_path: Path, raw: str) -> None:
    with pytest.raises(ValidationError, match="WORKBENCH_MAX_UPLOAD_BYTES"):
        Settings.from_env({"WORKBENCH_HOME": str(tmp_path), "WORKBENCH_MAX_UPLOAD_BYTES": raw})


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = Settings.for_home(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.api_port = 1  # type: ignore[misc]
    assert settings.api_port == DEFAULT_API_PORT


def test_read_token_prefers_explicit_then_file(tmp_path: Path) -> None:
    token_file = tmp_path / "api-token"
    token_file.write_text("  from-file\n")
    assert Settings.for_home(tmp_path, token="explicit").read_token() == "explicit"
    assert Settings.for_home(tmp_path).read_token() == "from-file"
    token_file.write_text("\n")
    assert Settings.for_home(tmp_path).read_token() is None
    token_file.unlink()
    assert Settings.for_home(tmp_path).read_token() is None
    assert Settings.for_home(tmp_path, token="explicit").read_token() == "explicit"


# --- errors -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", list(ERROR_TYPES.values()), ids=lambda cls: cls.__name__)
def test_error_from_dict_rebuilds_the_subclass(cls: type[WorkbenchError]) -> None:
    original = cls("it went wrong", endpoint="fraud", revision=3)
    rebuilt = error_from_dict(original.to_dict(), original.status_code)
    assert type(rebuilt) is cls
    assert rebuilt.message == "it went wrong"
    assert str(rebuilt) == "it went wrong"
    assert rebuilt.details == {"endpoint": "fraud", "revision": 3}
    assert rebuilt.to_dict() == original.to_dict()


def test_error_from_dict_type_wins_over_status() -> None:
    assert type(error_from_dict({"type": "not_found", "message": "m"}, 500)) is NotFoundError


@pytest.mark.parametrize(
    ("status", "expected"),
    [(409, ConflictError), (404, NotFoundError), (503, UnavailableError), (418, WorkbenchError)],
)
def test_error_from_dict_falls_back_on_status(status: int, expected: type[WorkbenchError]) -> None:
    error = error_from_dict({"type": "something_new", "message": "m", "details": {"k": 1}}, status)
    assert type(error) is expected
    assert (error.message, error.details) == ("m", {"k": 1})


def test_error_from_dict_tolerates_sparse_payloads() -> None:
    error = error_from_dict({}, 422)
    assert type(error) is ValidationError
    assert error.message == "unknown error"
    assert error.details == {}
    assert (
        error_from_dict({"type": "conflict", "message": "m", "details": ["not", "a", "dict"]}, 409).details
        == {}
    )
    assert error_from_dict({"type": "conflict", "message": "m", "details": None}, 409).details == {}


def _pydantic_errors(data: dict[str, Any]) -> list[Any]:
    with pytest.raises(pydantic.ValidationError) as caught:
        EndpointSpec.model_validate(data)
    return list(caught.value.errors())


def test_describe_validation_errors_names_the_field() -> None:
    errors = _pydantic_errors(
        {"name": "fraud", "routes": [{"model": "m", "version": 1, "weight": 100}], "replicas": 0}
    )
    message, details = describe_validation_errors(errors)
    assert "\n" not in message
    assert message.startswith("replicas: ")
    assert [detail["field"] for detail in details] == ["replicas"]
    assert details[0]["type"] == "greater_than_equal"


def test_describe_validation_errors_joins_nested_locations() -> None:
    errors = _pydantic_errors(
        {"name": "fraud", "routes": [{"model": "m", "version": 0, "weight": 100}], "x": 1}
    )
    message, details = describe_validation_errors(errors)
    assert "\n" not in message
    assert [detail["field"] for detail in details] == ["routes.0.version", "x"]
    assert message.startswith("routes.0.version: ")
    assert "; x: " in message


def test_describe_validation_errors_drops_body_and_handles_empty() -> None:
    message, details = describe_validation_errors([{"loc": ("body", "name"), "msg": "bad", "type": "t"}])
    assert message == "name: bad"
    assert details == [{"field": "name", "message": "bad", "type": "t"}]
    assert describe_validation_errors([{"loc": ("body",), "msg": "not an object"}])[0] == "not an object"
    assert describe_validation_errors([]) == ("invalid input", [])
