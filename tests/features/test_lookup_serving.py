"""Endpoints called with an entity id (issue 14): a real Feast repository (SQLite online store), a real
control plane, router and replica processes; the replica fetches the features per batch.

One world per module: the demo's customers applied and materialised once, the churn model registered
once; each test deploys its own endpoint.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

from tests._servers import free_port, run_server
from tests.features._redis import RedisServer
from workbench.api import create_app
from workbench.client import Client
from workbench.control_plane import ControlPlane
from workbench.demo.dataset import FEATURES, TARGET, generate_churn, split_frame
from workbench.demo.features import JOIN_KEY, SERVICE, TABLE, VIEW, write_demo_features
from workbench.demo.training import train_version
from workbench.errors import NotFoundError, UnavailableError, ValidationError
from workbench.settings import Settings
from workbench.telemetry import read_records

pytestmark = pytest.mark.slow

CUSTOMERS = 300
#: A second view of the same table whose TTL (60 s) is shorter than the rows' age (5 minutes): stale.
SHORT_VIEW = "customer_features_short"
SHORT_SOURCE = f'''from datetime import timedelta

from customers import customer, customer_source, FEATURES
from feast import FeatureView, Field
from feast.types import Float32

{SHORT_VIEW} = FeatureView(
    name="{SHORT_VIEW}",
    entities=[customer],
    ttl=timedelta(seconds=60),
    schema=[Field(name=name, dtype=Float32) for name in FEATURES],
    source=customer_source,
    online=True,
)
'''

#: The same customers as accounts with text ids (a STRING entity): requests send them as OIP BYTES.
ACCOUNT_VIEW = "account_features"
ACCOUNT_SOURCE = f'''from datetime import timedelta
from pathlib import Path

from customers import FEATURES
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float32

account = Entity(name="account", join_keys=["account_id"], value_type=ValueType.STRING)
{ACCOUNT_VIEW} = FeatureView(
    name="{ACCOUNT_VIEW}",
    entities=[account],
    ttl=timedelta(days=1),
    schema=[Field(name=name, dtype=Float32) for name in FEATURES],
    source=FileSource(path=str(Path(__file__).parent / "data" / "accounts.parquet"), timestamp_field="event_timestamp"),
    online=True,
)
'''


@dataclass
class World:
    settings: Settings
    plane: ControlPlane
    client: Client
    customers: pd.DataFrame
    module: torch.nn.Module

    @property
    def router(self) -> str:
        return str(self.plane.serving.status()["router_url"])

    def expected(self, ids: list[int]) -> np.ndarray[Any, Any]:
        rows = self.customers.set_index(JOIN_KEY).loc[ids, list(FEATURES)]
        with torch.inference_mode():
            result: np.ndarray[Any, Any] = self.module(torch.from_numpy(rows.to_numpy(np.float32))).numpy()
        return result

    def replica(self, endpoint: str) -> str:
        (replica,) = [r for r in self.client.endpoint_status(endpoint)["replicas"] if r["state"] == "ready"]
        return f"http://127.0.0.1:{replica['port']}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Iterator[World]:
    root = tmp_path_factory.mktemp("lookup")
    home = root / "home"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    api_port = free_port()  # a real one: runbook kernels call the control plane at settings.api_url
    settings = Settings.for_home(
        home, allowed_roots=(root,), api_port=api_port, router_port=0, serving_backend="local"
    )
    customers = write_demo_features(settings.feature_repo_path, rows=CUSTOMERS, seed=11)
    (settings.feature_repo_path / "short.py").write_text(SHORT_SOURCE)
    accounts = customers.drop(columns=[JOIN_KEY, TARGET])
    accounts.insert(0, "account_id", [f"acct-{i}" for i in customers[JOIN_KEY]])
    accounts.to_parquet(settings.feature_repo_path / "data" / "accounts.parquet", index=False)
    (settings.feature_repo_path / "accounts.py").write_text(ACCOUNT_SOURCE)
    train, holdout = split_frame(generate_churn(3000, seed=3), holdout_fraction=0.25, seed=3)
    plane = ControlPlane(settings)
    plane.start_serving()
    try:
        with (
            run_server(create_app(settings, plane), port=api_port) as url,
            Client(url, settings=settings, actor="tester") as client,
        ):
            client.apply_features()
            client.materialize_features()
            trained = train_version(1, train, holdout, seed=3)
            example = holdout[list(FEATURES)].head(2)
            client.register_model("churn", trained.module, input_example=example, reference_data=holdout)
            yield World(settings, plane, client, customers, trained.module)
    finally:
        plane.close()


def _ids_body(ids: list[int]) -> dict[str, Any]:
    return {"dataframe_split": {"columns": [JOIN_KEY], "data": [[i] for i in ids]}}


def _series(url: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_called_with_ids_only_the_replica_joins_the_features_and_logs_them(world: World) -> None:
    record = world.client.deploy(
        "by-id", "models:/churn/1", features={"entity": JOIN_KEY, "service": SERVICE}, reason="by id"
    )
    assert record.spec.features is not None
    assert record.spec.features.service == SERVICE
    ids = [7, 42, 300, 42]
    answer = httpx.post(f"{world.router}/endpoints/by-id/invocations", json=_ids_body(ids), timeout=30)
    assert answer.status_code == 200, answer.text
    assert np.asarray(answer.json()["predictions"]) == pytest.approx(world.expected(ids).ravel(), abs=1e-5)

    oip = {"id": "oip-1", "inputs": [{"name": JOIN_KEY, "datatype": "INT64", "shape": [2], "data": [1, 2]}]}
    answer = httpx.post(
        f"{world.router}/v2/models/by-id/infer", json=oip, headers={"x-request-id": "oip-1"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    (output,) = answer.json()["outputs"]
    assert output["data"] == pytest.approx(world.expected([1, 2]).ravel(), abs=1e-5)

    metadata = httpx.get(f"{world.router}/v2/models/by-id", timeout=10).json()
    assert [i["name"] for i in metadata["inputs"]] == [JOIN_KEY]
    assert metadata["parameters"]["features"]["fetched"]["tenure_months"] == f"{VIEW}:tenure_months"

    # What the model saw is logged: the features, beside the id, and how old they were.
    log_dir = world.settings.home / "predictions" / "by-id"

    def logged() -> list[dict[str, Any]]:
        return [r for r in read_records(log_dir) if r.get("request_id") == "oip-1"]

    deadline = time.monotonic() + 30
    while not logged() and time.monotonic() < deadline:
        time.sleep(0.2)
    (line,) = logged()
    table = world.customers.set_index(JOIN_KEY)
    assert line["inputs"][JOIN_KEY] == [1, 2]
    for name in FEATURES:
        assert line["inputs"][name] == pytest.approx(
            [float(table.at[1, name]), float(table.at[2, name])], rel=1e-6
        )
    ages = line["lookup"]["feature_age_s"]
    assert all(200 < age < 3600 for age in ages), ages  # materialised rows stamped five minutes ago
    assert line["lookup_ms"] >= 0

    replica = world.replica("by-id")
    assert _series(replica, "workbench_feature_rows_total", endpoint="by-id", outcome="served") >= 6
    assert _series(replica, "workbench_feature_lookup_seconds_count", endpoint="by-id") >= 2


def test_text_ids_are_sent_as_oip_bytes_or_json_strings(world: World) -> None:
    refs = [f"{ACCOUNT_VIEW}:{name}" for name in FEATURES]
    world.client.deploy("by-account", "models:/churn/1", features={"entity": "account_id", "features": refs})
    oip = {
        "inputs": [{"name": "account_id", "datatype": "BYTES", "shape": [2], "data": ["acct-7", "acct-42"]}]
    }
    answer = httpx.post(f"{world.router}/v2/models/by-account/infer", json=oip, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == pytest.approx(world.expected([7, 42]).ravel(), abs=1e-5)
    body = {"dataframe_split": {"columns": ["account_id"], "data": [["acct-300"], ["acct-x"]]}}
    refused = httpx.post(f"{world.router}/endpoints/by-account/invocations", json=body, timeout=30)
    assert refused.status_code == 422
    assert "account_id=acct-x: no value for" in refused.json()["error"]["message"]
    metadata = httpx.get(f"{world.router}/v2/models/by-account", timeout=10).json()
    assert metadata["inputs"] == [{"name": "account_id", "datatype": "BYTES", "shape": [-1]}]


def test_an_unknown_id_is_refused_by_name_and_its_batch_neighbours_are_answered(world: World) -> None:
    world.client.deploy(
        "by-id-strict", "models:/churn/1", features={"entity": JOIN_KEY, "service": SERVICE}, max_wait_ms=50
    )
    url = f"{world.router}/endpoints/by-id-strict/invocations"
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        good = [pool.submit(httpx.post, url, json=_ids_body([i]), timeout=30) for i in (3, 4, 5)]
        bad = pool.submit(httpx.post, url, json=_ids_body([5, 999_999]), timeout=30)
    for future, i in zip(good, (3, 4, 5), strict=True):
        assert future.result().status_code == 200
        assert future.result().json()["predictions"] == pytest.approx(world.expected([i]).ravel(), abs=1e-5)
    refused = bad.result()
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["type"] == "missing_features"
    assert "customer_id=999999: no value for" in error["message"]
    assert "tenure_months" in error["message"]
    assert set(error["details"]["entities"]) == {"999999"}  # customer 5 of the same request had its features

    no_id = httpx.post(url, json={"dataframe_split": {"columns": ["tenure_months"], "data": [[3]]}})
    assert no_id.status_code == 400
    assert JOIN_KEY in no_id.json()["error"]["message"]
    text_id = httpx.post(url, json={"dataframe_split": {"columns": [JOIN_KEY], "data": [["abc"]]}})
    assert text_id.status_code == 400, text_id.text
    assert JOIN_KEY in text_id.json()["error"]["message"]
    oip = {"inputs": [{"name": JOIN_KEY, "datatype": "BYTES", "shape": [1], "data": ["7"]}]}
    bytes_id = httpx.post(f"{world.router}/v2/models/by-id-strict/infer", json=oip)
    assert bytes_id.status_code == 400, bytes_id.text
    assert "BYTES" in bytes_id.json()["error"]


def test_stale_features_are_refused_or_defaulted_as_the_endpoint_says(world: World) -> None:
    refs = [f"{SHORT_VIEW}:{name}" for name in FEATURES]
    # Incremental materialisation starts a TTL ago, so it loads no five-minute-old row into this view:
    # load them with an explicit start, as a backfill would.
    world.client.materialize_features(start=datetime.now(UTC) - timedelta(days=1), views=[SHORT_VIEW])
    world.client.deploy("stale-refused", "models:/churn/1", features={"entity": JOIN_KEY, "features": refs})
    answer = httpx.post(
        f"{world.router}/endpoints/stale-refused/invocations", json=_ids_body([9]), timeout=30
    )
    assert answer.status_code == 422
    assert "older than the view's TTL" in answer.json()["error"]["message"]

    defaults = dict.fromkeys(FEATURES, 0.0)
    world.client.deploy(
        "stale-defaulted",
        "models:/churn/1",
        features={"entity": JOIN_KEY, "features": refs, "missing": "default", "defaults": defaults},
    )
    answer = httpx.post(
        f"{world.router}/endpoints/stale-defaulted/invocations", json=_ids_body([9]), timeout=30
    )
    assert answer.status_code == 200, answer.text
    with torch.inference_mode():
        zeros = world.module(torch.zeros((1, len(FEATURES)))).numpy().ravel()
    assert answer.json()["predictions"] == pytest.approx(zeros, abs=1e-5)
    replica = world.replica("stale-defaulted")
    assert _series(replica, "workbench_feature_rows_total", outcome="defaulted") == 1
    assert _series(replica, "workbench_feature_values_total", outcome="stale") == len(FEATURES)


def test_a_lookup_that_does_not_fit_is_refused_at_deploy_and_nothing_starts(world: World) -> None:
    cases = [
        ({"entity": JOIN_KEY, "service": "nope"}, "no feature service named 'nope'"),
        ({"entity": "account", "service": SERVICE}, "no Feast entity has the join key 'account'"),
        (
            {
                "entity": JOIN_KEY,
                "features": [f"{VIEW}:tenure_months"],
                "inputs": {"tenure": "tenure_months"},
            },
            "inputs maps 'tenure', which is not an input of the model",
        ),
        (
            {"entity": JOIN_KEY, "service": SERVICE, "missing": "default", "defaults": {"tenure_months": 1}},
            'missing="default" needs a default for every fetched input',
        ),
        ({"entity": JOIN_KEY, "features": [f"{VIEW}:nope"]}, f"feature view '{VIEW}' has no feature 'nope'"),
    ]
    for lookup, message in cases:
        with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
            world.client.deploy("misfit", "models:/churn/1", features=lookup)
        with pytest.raises(NotFoundError):
            world.client.get_endpoint("misfit")
    assert not [r for r in world.plane.serving.status()["replicas"] if r.get("endpoint") == "misfit"]


def test_the_features_logged_at_serving_equal_the_point_in_time_join(world: World) -> None:
    """Training-serving consistency: what the replica logged for each request is what Feast's
    point-in-time join gives for that entity at that time, before and after the features change."""
    world.client.deploy("consistency", "models:/churn/1", features={"entity": JOIN_KEY, "service": SERVICE})
    url = f"{world.router}/endpoints/consistency/invocations"
    ids = list(range(250, 270))

    def serve(tag: str) -> None:
        for i in ids:
            answer = httpx.post(url, json=_ids_body([i]), headers={"x-request-id": f"{tag}-{i}"}, timeout=30)
            assert answer.status_code == 200, answer.text

    serve("before")
    repo = world.settings.feature_repo_path
    table = pd.read_parquet(repo / TABLE)
    changed = table[table[JOIN_KEY].isin(ids)].copy()
    changed["tenure_months"] += 100
    changed["monthly_charges"] *= 2
    changed["event_timestamp"] = pd.Timestamp.now(tz="UTC")
    pd.concat([table, changed]).to_parquet(repo / TABLE, index=False)
    world.client.materialize_features(views=[VIEW])
    serve("after")

    log_dir = world.settings.home / "predictions" / "consistency"
    wanted = {f"{tag}-{i}" for tag in ("before", "after") for i in ids}

    def logged() -> list[dict[str, Any]]:
        return [r for r in read_records(log_dir) if r.get("request_id") in wanted]

    deadline = time.monotonic() + 30
    while len(logged()) < len(wanted) and time.monotonic() < deadline:
        time.sleep(0.2)
    records = sorted(logged(), key=lambda r: r["ts"])
    assert len(records) == len(wanted)
    joined = world.client.historical_features(
        "consistency", [r["inputs"][JOIN_KEY][0] for r in records], [r["ts"] for r in records]
    )
    for row, record in enumerate(records):
        for name in FEATURES:
            assert joined.at[row, name] == pytest.approx(record["inputs"][name][0], rel=1e-6), (
                record["request_id"],
                name,
            )
    before = {
        r["inputs"][JOIN_KEY][0]: r["inputs"]["tenure_months"][0]
        for r in records
        if r["request_id"].startswith("b")
    }
    after = {
        r["inputs"][JOIN_KEY][0]: r["inputs"]["tenure_months"][0]
        for r in records
        if r["request_id"].startswith("a")
    }
    assert all(
        after[i] == before[i] + 100 for i in ids
    )  # serving saw the change, and the join put it in time


def test_retrain_and_canary_learns_from_the_point_in_time_join_of_an_endpoint_called_by_id(
    world: World,
) -> None:
    """The runbook rebuilds its training set with Feast's join on the logged ids and times, finds it
    equal to what serving logged, and judges the champion by the scores it logged on those rows."""
    world.client.set_alias("churn", "champion", 1)
    world.client.deploy("retrain", "models:/churn/1", features={"entity": JOIN_KEY, "service": SERVICE})
    url = f"{world.router}/endpoints/retrain/invocations"
    truth = world.customers.set_index(JOIN_KEY)[TARGET]
    ids = list(range(100, 240))
    labels = {}
    for i in ids:
        answer = httpx.post(url, json=_ids_body([i]), headers={"x-request-id": f"retrain-{i}"}, timeout=30)
        assert answer.status_code == 200, answer.text
        labels[f"retrain-{i}"] = float(truth[i])
    deadline = time.monotonic() + 30
    while True:  # labels are accepted once the prediction log's index holds every request
        try:
            world.client.feedback("retrain", labels)
            break
        except ValidationError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    parameters = {
        "endpoint": "retrain",
        "model": "churn",
        "min_rows": 100,
        "metric": "accuracy",
        "min_improvement": 1.0,  # judged, never accepted: no canary to wait for
        "data_wait_s": 30,
    }
    run = world.client.run_runbook("retrain-and-canary", parameters, wait_s=300)
    assert run.status.value == "succeeded", run
    assert run.summary is not None
    assert run.summary["outcome"] == "rejected"
    assert run.summary["point_in_time"] == {
        "rows": len(ids),
        "rows_equal_to_logged": len(ids),
        "features": 20,
    }
    assert run.summary["holdout_rows"] == len(ids) - int(len(ids) * 0.7)


def test_a_monitor_watches_feature_age_and_an_alert_rule_fires_on_it(world: World) -> None:
    world.client.deploy("watched", "models:/churn/1", features={"entity": JOIN_KEY, "service": SERVICE})
    world.client.create_monitor({"name": "watched", "endpoint": "watched", "window_s": 60, "every_s": 1})
    world.client.create_alert_rule(
        {
            "name": "features-stale",
            "monitor": "watched",
            "series": "feature_age_max_s",
            "op": ">",
            "threshold": 120,  # the stored features were stamped five minutes before they were written
            "for_s": 0,
            "severity": "warning",
            "actions": [{"kind": "notify"}],
        }
    )
    url = f"{world.router}/endpoints/watched/invocations"
    engine = world.plane.monitoring.engine  # the server's loop looks on its own; the test looks when it wants
    deadline = time.monotonic() + 60
    while True:
        assert httpx.post(url, json=_ids_body([11, 12]), timeout=30).status_code == 200
        values = engine.tick("watched")
        (rule,) = world.client.alert_rules(monitor="watched")
        if rule.state.get("state") == "firing":
            break
        assert time.monotonic() < deadline, (rule.state, values.get("feature_age_max_s"))
        time.sleep(0.5)
    assert values["feature_age_max_s"] > 120
    assert 0 < values["feature_lookup_p95_ms"] < 1000
    (event,) = [e for e in world.client.audit(action="alert.firing") if "watched" in e.target]
    assert "feature_age_max_s" in str(event.after)


def test_a_redis_that_goes_away_is_a_503_with_the_reason_and_serving_recovers(
    tmp_path: Path, mlflow_template: Path
) -> None:
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    settings = Settings.for_home(
        home, allowed_roots=(tmp_path,), api_port=0, router_port=0, serving_backend="local"
    )
    settings = replace(settings, feature_online_store=f"redis://127.0.0.1:{redis_server.port}/0")
    customers = write_demo_features(settings.feature_repo_path, rows=50, seed=12)
    train, holdout = split_frame(generate_churn(1500, seed=3), holdout_fraction=0.25, seed=3)
    plane = ControlPlane(settings)
    plane.start_serving()
    try:
        with (
            run_server(create_app(settings, plane)) as url,
            Client(url, settings=settings, actor="tester") as client,
        ):
            client.apply_features()
            client.materialize_features()
            trained = train_version(1, train, holdout, seed=3)
            client.register_model("churn", trained.module, input_example=holdout[list(FEATURES)].head(2))
            client.deploy("by-id", "models:/churn/1", features={"entity": JOIN_KEY, "service": SERVICE})
            router = str(plane.serving.status()["router_url"])
            infer = f"{router}/endpoints/by-id/invocations"
            rows = customers.set_index(JOIN_KEY).loc[[8], list(FEATURES)].to_numpy(np.float32)
            with torch.inference_mode():
                expected = trained.module(torch.from_numpy(rows)).numpy().ravel()
            assert httpx.post(infer, json=_ids_body([8]), timeout=30).json()["predictions"] == pytest.approx(
                expected, abs=1e-5
            )

            redis_server.stop()
            down = httpx.post(infer, json=_ids_body([8]), timeout=30)
            assert down.status_code == 503, down.text
            message = down.json()["error"]["message"]
            assert f"online feature store (redis 127.0.0.1:{redis_server.port}) cannot be read" in message
            assert "ConnectionError" in message
            with pytest.raises(UnavailableError, match="cannot be read, so 'other' was not changed"):
                client.deploy("other", "models:/churn/1", features={"entity": JOIN_KEY, "service": SERVICE})
            assert [e.spec.name for e in client.list_endpoints()] == ["by-id"]  # nothing half-deployed
            assert [r["endpoint"] for r in plane.serving.status()["replicas"] if r.get("endpoint")] == [
                "by-id"
            ]

            redis_server.start()
            back = httpx.post(infer, json=_ids_body([8]), timeout=30)
            assert back.status_code == 200, back.text  # the same replica: nothing restarted
            assert back.json()["predictions"] == pytest.approx(expected, abs=1e-5)
            assert [r["state"] for r in client.endpoint_status("by-id")["replicas"]] == ["ready"]
    finally:
        plane.close()
        redis_server.stop()
