"""The feature store's repository through the control plane (issue 14): a real Feast repository with a
SQLite online store, and a real Redis server; apply, materialise, status, and what is refused."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests._servers import free_port, run_server
from workbench.api import create_app
from workbench.client import Client
from workbench.control_plane import ControlPlane
from workbench.demo.dataset import FEATURES
from workbench.demo.features import JOIN_KEY, SERVICE, VIEW, write_demo_features
from workbench.errors import ConflictError, UnavailableError, ValidationError
from workbench.settings import Settings

pytestmark = pytest.mark.slow


def _online(plane: ControlPlane, ids: list[int]) -> dict[str, list[object]]:
    store = plane.features.repo.store()
    features = store.get_feature_service(SERVICE)
    answer: dict[str, list[object]] = store.get_online_features(
        features=features, entity_rows=[{JOIN_KEY: i} for i in ids]
    ).to_dict()
    return answer


def test_apply_materialize_and_read_back_what_the_offline_table_holds(
    client: Client, plane: ControlPlane
) -> None:
    empty = client.features()
    assert (empty["feature_views"], empty["definitions"], empty["owned"]) == ([], [], True)
    with pytest.raises(ConflictError, match="no feature view is applied yet"):
        client.materialize_features()
    with pytest.raises(ConflictError, match="has no definitions"):
        client.apply_features()

    repo = Path(empty["repo"])
    customers = write_demo_features(repo, rows=300, seed=3)
    applied = client.apply_features(reason="first definitions")
    (view,) = applied["status"]["feature_views"]
    assert (view["name"], view["entities"], view["ttl_s"], view["materialized_until"]) == (
        VIEW,
        ["customer"],
        86_400.0,
        None,
    )
    assert [f["name"] for f in view["features"]] == list(FEATURES)
    assert [s["name"] for s in applied["status"]["feature_services"]] == [SERVICE]
    assert applied["status"]["entities"] == [
        {"name": "customer", "join_keys": [JOIN_KEY], "value_type": "INT64"}
    ]

    done = client.materialize_features(reason="load the demo customers")
    assert done["status"]["feature_views"][0]["materialized_until"] is not None
    read = _online(plane, [7, 300])
    expected = customers.set_index(JOIN_KEY)
    for name in FEATURES:
        assert read[name] == pytest.approx([float(expected.at[7, name]), float(expected.at[300, name])])
    assert _online(plane, [10_000])["tenure_months"] == [None]  # an unknown customer: missing, not an error

    actions = [(e.action, e.actor) for e in client.audit(target_prefix="features:")]
    assert actions == [("features.materialize", "tester"), ("features.apply", "tester")]


def test_bad_definitions_and_bad_requests_are_refused_with_feasts_reason(client: Client) -> None:
    repo = Path(client.features()["repo"])
    write_demo_features(repo, rows=50, seed=4)
    client.apply_features()
    (repo / "broken.py").write_text("from feast import Entity\n\nthis is not python\n")
    with pytest.raises(ValidationError, match="feast apply failed") as refused:
        client.apply_features()
    assert "in broken.py line 3: NameError" in refused.value.message
    (repo / "broken.py").unlink()
    assert [v["name"] for v in client.features()["feature_views"]] == [VIEW]  # the registry kept its state
    with pytest.raises(ValidationError, match="no feature view named 'nope'"):
        client.materialize_features(views=["nope"])
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    with pytest.raises(ValidationError, match="must be before end"):
        client.materialize_features(start=now, end=now - timedelta(hours=1))
    assert not client.audit(action="features.materialize")  # nothing refused was audited


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed: `make test` installs it (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis(port=port).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_redis_online_store_serves_the_same_values_and_its_absence_is_a_clear_503(
    settings: Settings, redis_port: int
) -> None:
    redis_settings = replace(settings, feature_online_store=f"redis://127.0.0.1:{redis_port}/0")
    plane = ControlPlane(redis_settings)
    try:
        with (
            run_server(create_app(redis_settings, plane)) as url,
            Client(url, settings=redis_settings, actor="ops") as client,
        ):
            assert "type: redis" in (Path(client.features()["repo"]) / "feature_store.yaml").read_text()
            customers = write_demo_features(Path(client.features()["repo"]), rows=100, seed=5)
            client.apply_features()
            client.materialize_features()
            read = _online(plane, [42])
            assert read["monthly_charges"] == pytest.approx(
                [float(customers.set_index(JOIN_KEY).at[42, "monthly_charges"])]
            )
            import redis

            redis.Redis(port=redis_port).shutdown(nosave=True)
            from datetime import UTC, datetime, timedelta

            with pytest.raises(UnavailableError, match="online store cannot be reached"):
                client.materialize_features(start=datetime.now(UTC) - timedelta(days=1))
    finally:
        plane.close()
