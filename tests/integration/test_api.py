"""The HTTP API over a real socket, driven by ``workbench.Client`` (and raw httpx for malformed input)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests._servers import run_server
from tests.integration.conftest import tiny_frame, tiny_module
from workbench.api import create_app
from workbench.client import Client
from workbench.control_plane import ControlPlane
from workbench.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ValidationError,
)
from workbench.settings import Settings


def _snapshot(plane: ControlPlane) -> tuple[dict[str, int], int, int]:
    return plane.registry.counts(), plane.audit.count(), len(plane.list_endpoints())


@pytest.fixture
def registered(client: Client, model_dir: Path, reference_file: Path) -> None:
    client.register_from_path(
        "churn",
        model_dir,
        reference={"path": str(reference_file), "target": "label"},
        aliases=["champion"],
        reason="seed",
    )


def test_health_is_public_and_openapi_is_served(api_url: str, client: Client) -> None:
    assert httpx.get(f"{api_url}/api/v1/health").json()["status"] == "ok"
    spec = client._http.get("/api/v1/openapi.json", headers=client._auth()).json()
    assert spec["info"]["title"] == "Workbench control plane"
    for path in (
        "/api/v1/models",
        "/api/v1/models/{name}/aliases/{alias}",
        "/api/v1/audit",
        "/api/v1/endpoints",
    ):
        assert path in spec["paths"]


def test_token_file_is_private(settings: Settings, api_url: str) -> None:
    assert settings.token_file.stat().st_mode & 0o777 == 0o600
    assert len(settings.token_file.read_text().strip()) >= 32


@pytest.mark.usefixtures("registered")
@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic abc", "Bearer"])
def test_calls_without_the_right_token_are_refused_and_write_nothing(
    api_url: str, plane: ControlPlane, header: str | None
) -> None:
    before = _snapshot(plane)
    headers = {"Authorization": header} if header else {}
    for method, path, body in (
        ("GET", "/api/v1/models", None),
        ("PUT", "/api/v1/models/churn/aliases/challenger", {"version": 1}),
        ("DELETE", "/api/v1/models/churn/aliases/champion", None),
        ("POST", "/api/v1/endpoints", {"name": "e", "routes": [{"model": "models:/churn/1"}]}),
    ):
        response = httpx.request(method, f"{api_url}{path}", json=body, headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.json()["error"]["type"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
    assert _snapshot(plane) == before
    with (
        Client(api_url, token="wrong", settings=replace(plane.settings, token=None)) as bad,
        pytest.raises(AuthenticationError),
    ):
        bad.list_models()


def test_open_reads_allow_get_but_not_writes(settings: Settings, plane: ControlPlane) -> None:
    with run_server(create_app(replace(settings, open_reads=True), plane)) as url:
        assert httpx.get(f"{url}/api/v1/models").status_code == 200
        response = httpx.put(f"{url}/api/v1/models/x/aliases/champion", json={"version": 1})
        assert response.status_code == 401
        # A model's files stay behind the token: downloading weights is not a read to leave open.
        assert httpx.get(f"{url}/api/v1/models/x/versions/1/model").status_code == 401
        assert httpx.get(f"{url}/api/v1/models/x/versions/1").status_code == 404


def test_register_list_show_and_alias_through_the_client(client: Client, model_dir: Path) -> None:
    first = client.register_from_path("churn", model_dir, aliases=["champion"], metrics={"auc": 0.7})
    second = client.register_from_path("churn", model_dir, lineage={"parent_version": 1})
    assert (first.version, second.version) == (1, 2)
    assert second.lineage.parent_version == 1

    models = client.list_models()
    assert [(m.name, m.version_count, m.latest_version) for m in models] == [("churn", 2, 2)]
    assert client.get_version("churn", 1).metrics == {"auc": 0.7}
    assert client.resolve("models:/churn@champion").version == 1

    moved = client.set_alias("churn", "champion", 2, reason="better")
    assert moved.version == 2
    assert moved.aliases == ["champion"]
    assert client.delete_alias("churn", "champion") == 2

    actions = [e.action for e in client.audit(target_prefix="models:/churn", oldest_first=True)]
    assert actions == ["model.register", "model.register", "model.alias.set", "model.alias.delete"]
    assert all(e.actor == "tester" for e in client.audit())


def test_register_an_in_memory_module_by_upload(client: Client, plane: ControlPlane) -> None:
    frame = tiny_frame()
    info = client.register_model(
        "memory",
        tiny_module(),
        input_example=frame[["a", "b", "c"]].head(2),
        reference_data=frame,
        reference_target="label",
        training_data=frame,
        metrics={"accuracy": 0.5},
        aliases=["challenger"],
    )
    assert info.aliases == ["challenger"]
    assert info.reference is not None
    assert info.reference.rows == len(frame)
    assert info.lineage.data_rows == len(frame)
    assert info.lineage.source == "upload"
    assert [c["name"] for c in (info.signature or {})["inputs"]] == ["a", "b", "c"]
    assert not any((plane.settings.home / "staging").iterdir()), "staging must be cleaned up"


def _archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# Explicit ids: a gzip header holds the second it was written, so ids made from the archives' bytes could
# differ between two pytest-xdist workers collecting a second apart ("different tests were collected").
@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        pytest.param(b"not a tarball", "application/gzip", 400, id="not-a-tarball"),
        pytest.param(b"", "application/gzip", 400, id="empty"),
        pytest.param(b"{}", "application/json", 400, id="json"),
        pytest.param(_archive({"manifest.json": b"{}"}), "application/gzip", 422, id="manifest-only"),
        pytest.param(_archive({"model/MLmodel": b"x"}), "application/gzip", 422, id="no-manifest"),
        pytest.param(
            _archive({"manifest.json": b"{}", "../escape": b"x"}), "application/gzip", 400, id="parent-escape"
        ),
        # tarfile's data filter strips the leading '/', so this lands inside staging (then: no model).
        pytest.param(
            _archive({"manifest.json": b"{}", "/tmp/workbench-abs-escape": b"x"}),
            "application/gzip",
            422,
            id="absolute-path",
        ),
    ],
)
def test_bad_uploads_are_refused_and_write_nothing(
    client: Client, plane: ControlPlane, tmp_path: Path, body: bytes, content_type: str, status: int
) -> None:
    before = _snapshot(plane)
    response = client._http.post(
        "/api/v1/models/churn/versions/upload",
        content=body,
        headers={**client._auth(), "Content-Type": content_type},
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]
    assert _snapshot(plane) == before
    assert not (tmp_path / "escape").exists()
    assert not Path("/tmp/workbench-abs-escape").exists()


def test_oversized_upload_is_refused(settings: Settings, plane: ControlPlane) -> None:
    small = replace(settings, max_upload_bytes=1024)
    plane.settings = small
    with run_server(create_app(small, plane)) as url, Client(url, settings=small) as client:
        with pytest.raises(PayloadTooLargeError):
            client._request(
                "POST",
                "/models/churn/versions/upload",
                content=b"x" * 4096,
                headers={"Content-Type": "application/gzip"},
            )
        assert plane.registry.counts()["versions"] == 0


@pytest.mark.usefixtures("registered")
def test_bad_json_bodies_get_clear_4xx_errors(client: Client, plane: ControlPlane, tmp_path: Path) -> None:
    before = _snapshot(plane)
    headers = {**client._auth(), "Content-Type": "application/json"}
    cases = [
        ("POST", "/api/v1/models/churn/versions", b"{not json", 400, "malformed JSON"),
        ("POST", "/api/v1/models/churn/versions", b"[1, 2]", 400, "JSON object"),
        ("POST", "/api/v1/models/churn/versions", b'{"source": {"kind": "ftp"}}', 422, "source"),
        ("POST", "/api/v1/models/churn/versions", b'{"source": {"kind": "path"}}', 422, "path"),
        ("PUT", "/api/v1/models/churn/aliases/champion", b'{"version": "x"}', 422, "version"),
        ("PUT", "/api/v1/models/churn/aliases/champion", b'{"version": 1, "extra": 1}', 422, "extra"),
        ("POST", "/api/v1/endpoints", b'{"name": "e"}', 422, "routes"),
    ]
    for method, path, body, status, fragment in cases:
        response = client._http.request(method, path, content=body, headers=headers)
        assert response.status_code == status, (path, body, response.text)
        error = response.json()["error"]
        assert fragment in error["message"], error
        assert set(error) == {"type", "message", "details"}
    assert _snapshot(plane) == before


@pytest.mark.usefixtures("registered")
def test_bad_references_get_typed_errors_and_write_nothing(
    client: Client, plane: ControlPlane, model_dir: Path, tmp_path: Path
) -> None:
    before = _snapshot(plane)
    with pytest.raises(NotFoundError, match="does not exist"):
        client.get_model("nope")
    with pytest.raises(NotFoundError, match="no version 9"):
        client.get_version("churn", 9)
    with pytest.raises(NotFoundError, match="no alias"):
        client.resolve("models:/churn@staging")
    with pytest.raises(ValidationError):
        client.resolve("churn")
    with pytest.raises(NotFoundError):
        client.register_from_path("churn", tmp_path / "missing")
    with pytest.raises(PermissionDeniedError, match="outside the allowed roots"):
        client.register_from_path("churn", "/usr/lib")
    with pytest.raises(NotFoundError):
        client.register_from_run("churn", "ffffffffffffffffffffffffffffffff")
    with pytest.raises(NotFoundError):
        client.set_alias("churn", "champion", 5)
    with pytest.raises(ValidationError):
        client.set_alias("churn", "latest", 1)
    with pytest.raises(NotFoundError):
        client.delete_alias("churn", "staging")
    assert _snapshot(plane) == before


@pytest.mark.usefixtures("registered")
def test_endpoint_definitions_resolve_aliases_and_are_audited(client: Client, plane: ControlPlane) -> None:
    record = client.create_endpoint("churn-api", "models:/churn@champion", reason="launch")
    assert [r.uri for r in record.spec.routes] == ["models:/churn/1"]
    assert record.revision == 1
    assert [e.spec.name for e in client.list_endpoints()] == ["churn-api"]

    updated = client.update_endpoint(
        "churn-api", "models:/churn/1", revision=1, batching={"max_batch_size": 8, "max_wait_ms": 1}
    )
    assert updated.revision == 2
    assert updated.spec.batching.max_batch_size == 8
    before = _snapshot(plane)
    for call in (
        lambda: client.update_endpoint("churn-api", "models:/churn/1", revision=1),
        lambda: client.create_endpoint("churn-api", "models:/churn/1"),
    ):
        with pytest.raises(Exception, match=r"changed meanwhile|already exists") as info:
            call()
        assert type(info.value).__name__ == "ConflictError"
    with pytest.raises(NotFoundError):
        client.create_endpoint("other", "models:/churn@nope")
    with pytest.raises(ValidationError, match="add up to 100"):
        client.create_endpoint("other", [{"model": "models:/churn/1", "weight": 50}])
    with pytest.raises(ValidationError, match="invalid endpoint name"):
        client.create_endpoint("Bad_Name", "models:/churn/1")
    with pytest.raises(NotFoundError):
        client.delete_endpoint("nope")
    assert _snapshot(plane) == before

    client.delete_endpoint("churn-api", reason="retire")
    actions = [e.action for e in client.audit(target="endpoint:churn-api", oldest_first=True)]
    assert actions == ["endpoint.create", "endpoint.update", "endpoint.delete"]


@pytest.fixture
def timeline(client: Client, model_dir: Path) -> Iterator[datetime]:
    client.register_from_path("churn", model_dir)
    return datetime.now(tz=UTC)


def test_audit_query_by_time_range_and_target(client: Client, timeline: datetime) -> None:
    client.set_alias("churn", "champion", 1)
    after = client.audit(since=timeline)
    assert [e.action for e in after] == ["model.alias.set"]
    assert client.audit(until=timeline - timedelta(hours=1)) == []
    assert [e.action for e in client.audit(action="model.register")] == ["model.register"]
    assert client.audit(target="models:/churn@champion")[0].after == {"version": 1}
    with pytest.raises(ValidationError):
        client.audit(since=timeline, until=timeline - timedelta(seconds=1))
    with pytest.raises(ValidationError):
        client.audit(limit=0)


def test_unknown_route_and_method_get_json_errors(api_url: str, client: Client) -> None:
    response = httpx.get(f"{api_url}/api/v1/nothing-here", headers=client._auth())
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"
    response = httpx.patch(f"{api_url}/api/v1/models", headers=client._auth())
    assert response.status_code == 405
    with pytest.raises(BadRequestError):
        client._request(
            "POST", "/models/x/versions/upload", content=b"", headers={"Content-Type": "text/plain"}
        )


@pytest.fixture
def three_versions(client: Client, model_dir: Path) -> None:
    for _ in range(3):
        client.register_from_path("churn", model_dir, reason="seed")


@pytest.mark.usefixtures("three_versions")
def test_rollback_follows_the_history_and_refuses_bad_targets_changing_nothing(
    client: Client, plane: ControlPlane
) -> None:
    client.create_endpoint("churn-api", "models:/churn/1", reason="launch")
    client.deploy("churn-api", "models:/churn/2")
    client.deploy("churn-api", "models:/churn/3")
    plane.reject_version(
        "churn-api", "churn", 2, rollout_id=None, actor="tester", reason="v2 failed its canary"
    )

    history = client.history("churn-api")
    assert [(r.revision, r.cause.value, r.actor) for r in history] == [
        (3, "deploy", "tester"),
        (2, "deploy", "tester"),
        (1, "deploy", "tester"),
    ]
    assert all(r.audit_event_id for r in history)
    assert [(r.model, r.version) for r in client.rejected_versions("churn-api")] == [("churn", 2)]

    before = _snapshot(plane), client.get_endpoint("churn-api")
    with pytest.raises(NotFoundError, match=r"has no revision 7 \(its revisions are 1-3\)"):
        client.rollback("churn-api", to_revision=7)
    with pytest.raises(ConflictError, match="routes to churn v2, rejected"):
        client.rollback("churn-api", to_revision=2)
    with pytest.raises(ConflictError, match="revision is 3, expected 2"):
        client.rollback("churn-api", expected_revision=2)
    with pytest.raises(ValidationError):
        client.rollback("churn-api", to_revision=0)
    with pytest.raises(NotFoundError):
        client.rollback("no-such-endpoint")
    assert (_snapshot(plane), client.get_endpoint("churn-api")) == before

    result = client.rollback("churn-api", reason="v3 misbehaves", expected_revision=3)
    assert result.changed
    assert (result.from_revision, result.revision, result.restored) == (3, 4, 1)
    assert [(r.version, r.weight) for r in result.endpoint.spec.routes] == [(1, 100.0)]
    assert "skipped revisions 2 (route to rejected churn v2)" in result.message
    newest = client.history("churn-api", limit=1)[0]
    assert (newest.revision, newest.cause.value, newest.restores, newest.reason) == (
        4,
        "manual_rollback",
        1,
        "v3 misbehaves",
    )
    event = client.audit(target="endpoint:churn-api", limit=1)[0]
    assert (event.action, event.link, event.id) == (
        "endpoint.rollback",
        "revision:churn-api/4",
        newest.audit_event_id,
    )

    forced = client.rollback("churn-api", to_revision=2, force=True, reason="we know")
    assert [(r.version, r.weight) for r in forced.endpoint.spec.routes] == [(2, 100.0)]
    assert "forced onto a rejected version" in forced.message

    # A deleted and re-created endpoint continues its numbering; its history is kept.
    client.delete_endpoint("churn-api")
    recreated = client.create_endpoint("churn-api", "models:/churn/1")
    assert recreated.revision == 6
    assert [r.revision for r in client.history("churn-api", limit=2)] == [6, 5]


@pytest.mark.usefixtures("three_versions")
def test_a_latency_check_can_judge_against_the_endpoints_objective(
    client: Client, plane: ControlPlane
) -> None:
    client.create_endpoint("slo", "models:/churn/1")
    spec = {
        "endpoint": "slo",
        "candidate": "models:/churn/2",
        "analysis": {
            "checks": [
                {"name": "errors", "kind": "error_rate", "threshold": 0.02},
                {
                    "name": "latency_slo",
                    "kind": "latency",
                    "threshold": 0.0,
                    "quantile": 0.95,
                    "objective_from_endpoint": True,
                },
            ]
        },
    }
    before = _snapshot(plane)
    with pytest.raises(ValidationError, match="endpoint 'slo', which states none"):
        client.start_rollout(spec)
    assert _snapshot(plane) == before
    assert client.rollouts(endpoint="slo") == []

    client.update_endpoint("slo", "models:/churn/1", revision=1, latency_objective_ms=80.0)
    record = client.start_rollout(spec)
    checks = {c["name"]: c for c in record.spec["analysis"]["checks"]}
    assert checks["latency_slo"]["objective_ms"] == 80.0  # the objective at the start, recorded
    assert not checks["latency_slo"]["objective_from_endpoint"]
    client.rollout_action(record.id, "abort")


def test_a_rollout_confirmed_against_a_stale_revision_is_refused_and_nothing_starts(
    client: Client, plane: ControlPlane, model_dir: Path, reference_file: Path
) -> None:
    client.register_from_path("churn", model_dir, reference={"path": str(reference_file), "target": "label"})
    client.register_from_path("churn", model_dir, reference={"path": str(reference_file), "target": "label"})
    client.create_endpoint("canaried", "models:/churn/1")
    spec = {"endpoint": "canaried", "candidate": "models:/churn/2"}
    client.update_endpoint("canaried", "models:/churn/1", revision=1, latency_objective_ms=50.0)  # revision 2
    with pytest.raises(ConflictError, match="changed meanwhile: revision is 2, expected 1"):
        client.start_rollout(spec, expected_revision=1)
    assert client.rollouts(endpoint="canaried") == []
    record = client.start_rollout(spec, expected_revision=2)
    client.rollout_action(record.id, "abort")


def test_model_downloads_are_packed_once_and_bad_versions_are_a_clear_4xx(
    client: Client, api_url: str, plane: ControlPlane, model_dir: Path, tmp_path: Path
) -> None:
    client.register_from_path("downloaded", model_dir)
    auth = {
        "authorization": f"Bearer {plane.settings.token or plane.settings.token_file.read_text().strip()}"
    }
    # Not a number (the fuzzer sent 'a' and '\x84': a 500 before the version was checked), none such.
    for version, status in (("a", 422), ("%84", 422), ("7", 404)):
        response = httpx.get(f"{api_url}/api/v1/models/downloaded/versions/{version}/model", headers=auth)
        assert response.status_code == status, response.text
        assert response.json()["error"]["message"]
    first = client.download_model("downloaded", 1, tmp_path / "first")
    second = client.download_model("downloaded", 1, tmp_path / "second")
    assert (first / "MLmodel").read_bytes() == (second / "MLmodel").read_bytes()
    archives = list((plane.settings.home / "cache" / "model-archives").glob("downloaded-v1-*.tar.gz"))
    assert len(archives) == 1
