"""The request path end to end: real control plane, router and replica processes on real ports."""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
import time
from collections import Counter
from typing import Any

import aiohttp
import httpx
import numpy as np
import orjson
import psutil
import pytest

from tests.serving.conftest import World, oip_columns, oip_matrix, replica_ready, wait_until
from workbench.demo.dataset import FEATURES
from workbench.errors import ValidationError
from workbench.serving.device import probe_inventory
from workbench.telemetry import read_records


@pytest.fixture(scope="module")
def churn(world: World) -> str:
    world.client.deploy("churn-api", "models:/churn/1", max_batch_size=32, max_wait_ms=2, reason="first")
    return "churn-api"


def _replicas(world: World, endpoint: str) -> list[dict[str, Any]]:
    return [r for r in world.client.endpoint_status(endpoint)["replicas"] if r["state"] == "ready"]


def test_deploy_starts_a_ready_replica_and_reports_where_to_call(world: World, churn: str) -> None:
    status = world.client.endpoint_status(churn)
    assert status["urls"]["oip"] == f"{world.router}/v2/models/{churn}/infer"
    (replica,) = status["replicas"]
    assert replica["state"] == "ready"
    assert replica["version"] == 1
    assert replica["device"] == "cpu"
    # Forked by the replica fork server (torch and the serving code imported once), in its own session.
    process = psutil.Process(replica["pid"])
    assert "workbench.serving.replica_forkserver" in " ".join(process.parent().cmdline())
    assert os.getsid(replica["pid"]) == replica["pid"]
    events = [e.action for e in world.client.audit(target=f"endpoint:{churn}", oldest_first=True)]
    assert events[:2] == ["replica.start", "endpoint.deploy"]


def test_oip_single_and_batched_requests_through_router_and_replica(world: World, churn: str) -> None:
    rows = world.frame.head(17)
    expected = world.expected(1, rows)
    replica = f"http://127.0.0.1:{_replicas(world, churn)[0]['port']}"
    for base in (world.router, replica):
        for body in (oip_columns(rows.head(1), request_id="r-1"), oip_columns(rows), oip_matrix(rows)):
            response = httpx.post(f"{base}/v2/models/{churn}/infer", json=body)
            assert response.status_code == 200, response.text
            assert response.headers["x-workbench-model-version"] == "1"
            payload = response.json()
            (output,) = payload["outputs"]
            n = body["inputs"][0]["shape"][0]
            assert output["shape"][0] == n
            np.testing.assert_allclose(output["data"], expected[:n].ravel(), rtol=1e-5, atol=1e-6)
            if "id" in body:
                assert payload["id"] == "r-1"
            assert payload["model_name"] == churn
            assert payload["model_version"] == "1"
    response = httpx.post(f"{world.router}/v2/models/{churn}/versions/1/infer", json=oip_columns(rows))
    assert response.status_code == 200


def test_a_torchscript_endpoint_serves_the_verified_trace_with_the_modules_predictions(world: World) -> None:
    world.client.deploy("churn-traced", "models:/churn/3", torchscript=True, reason="trace")
    try:
        metadata = httpx.get(f"{world.router}/v2/models/churn-traced").json()
        assert metadata["parameters"]["graph"] == "torchscript"
        rows = world.frame.head(17)
        for body in (oip_columns(rows.head(1)), oip_columns(rows)):
            response = httpx.post(f"{world.router}/v2/models/churn-traced/infer", json=body)
            assert response.status_code == 200, response.text
            n = body["inputs"][0]["shape"][0]
            (output,) = response.json()["outputs"]
            np.testing.assert_allclose(
                output["data"], world.expected(3, rows)[:n].ravel(), rtol=1e-5, atol=1e-6
            )
        assert world.client.get_endpoint("churn-traced").spec.torchscript is True
    finally:
        world.client.delete_endpoint("churn-traced")


def test_oip_metadata_and_readiness(world: World, churn: str) -> None:
    assert httpx.get(f"{world.router}/v2/health/live").status_code == 200
    assert httpx.get(f"{world.router}/v2/models/{churn}/ready").json()["ready"] is True
    metadata = httpx.get(f"{world.router}/v2/models/{churn}").json()
    assert metadata["versions"] == ["1"]
    assert [i["name"] for i in metadata["inputs"]] == list(FEATURES)
    assert metadata["parameters"]["device"] == "cpu"
    assert metadata["parameters"]["torch_threads"] >= 1
    assert httpx.get(f"{world.router}/v2/models/{churn}/versions/1").status_code == 200


def test_every_mlflow_format(world: World, churn: str) -> None:
    rows = world.frame.head(5)
    features = rows[list(FEATURES)]
    expected = world.expected(1, rows)
    bodies = [
        {"dataframe_split": {"columns": list(FEATURES), "data": features.to_numpy().tolist()}},
        {"dataframe_records": features.to_dict(orient="records")},
        {"instances": features.to_dict(orient="records")},
        {"inputs": {name: features[name].tolist() for name in FEATURES}},
    ]
    for body in bodies:
        response = httpx.post(f"{world.router}/endpoints/{churn}/invocations", json=body)
        assert response.status_code == 200, (body.keys(), response.text)
        assert response.headers["x-workbench-model-version"] == "1"
        np.testing.assert_allclose(response.json()["predictions"], expected, rtol=1e-5, atol=1e-6)


async def _fire(
    url: str | list[str],
    bodies: list[bytes],
    *,
    concurrency: int,
    headers: list[dict[str, str]] | None = None,
) -> list[tuple[int, str]]:
    """Send every body (to ``url``, or to its own of ``url``'s list) with ``concurrency`` workers; returns
    (status, version header) per request."""
    urls = url if isinstance(url, list) else [url] * len(bodies)
    results: list[tuple[int, str]] = [(0, "")] * len(bodies)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(bodies)):
        queue.put_nowait(i)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                extra = headers[i] if headers else {}
                try:
                    async with session.post(
                        urls[i], data=bodies[i], headers={"content-type": "application/json", **extra}
                    ) as r:
                        await r.read()
                        results[i] = (r.status, r.headers.get("x-workbench-model-version", ""))
                except aiohttp.ClientError as exc:
                    results[i] = (-1, str(exc))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def _body(world: World, i: int = 0) -> bytes:
    import orjson

    return orjson.dumps(oip_columns(world.frame.iloc[[i % len(world.frame)]]))


def test_weighted_split_over_10k_requests(world: World) -> None:
    weighted_split(world, 10_000)


def weighted_split(world: World, requests: int) -> None:
    """A 70/30 split judged within 4 sigma over ``requests`` requests (shared with the Ray backend's test)."""
    world.client.create_endpoint(
        "split", [{"model": "models:/churn/1", "weight": 70}, {"model": "models:/churn/2", "weight": 30}]
    )
    bodies = [_body(world, i) for i in range(requests)]
    results = asyncio.run(_fire(f"{world.router}/v2/models/split/infer", bodies, concurrency=16))
    assert all(status == 200 for status, _ in results), Counter(s for s, _ in results)
    share = Counter(version for _, version in results)["2"] / len(results)
    sigma = math.sqrt(0.3 * 0.7 / len(results))
    assert abs(share - 0.30) < 4 * sigma, share


def test_concurrent_requests_are_logged_a_line_per_batch_and_read_back_a_record_per_request(
    world: World,
) -> None:
    world.client.create_endpoint("batched", "models:/churn/2")
    rows = world.frame.head(400)
    ids = [f"batched-{i}" for i in range(len(rows))]
    bodies = [
        orjson.dumps(
            oip_columns(rows.iloc[[i]])
            if i % 2
            else {"dataframe_split": rows.iloc[[i]][list(FEATURES)].to_dict(orient="split", index=False)}
        )
        for i in range(len(rows))
    ]
    urls = [f"{world.router}/v2/models/batched/infer", f"{world.router}/endpoints/batched/invocations"]
    results = asyncio.run(
        _fire(
            [urls[i % 2 == 0] for i in range(len(bodies))],
            bodies,
            concurrency=32,
            headers=[{"x-request-id": request_id} for request_id in ids],
        )
    )
    assert all(status == 200 for status, _ in results), Counter(results)
    log_dir = world.settings.home / "predictions" / "batched"

    def logged() -> dict[str, dict[str, Any]]:
        return {r["request_id"]: r for r in read_records(log_dir) if r.get("request_id") in set(ids)}

    records = wait_until(lambda: len(logged()) == len(ids) and logged(), timeout=30)
    lines = sum(path.read_bytes().count(b"\n") for path in log_dir.glob("*.jsonl"))
    assert lines < len(ids), "32 concurrent clients, and every request had a line of its own"
    expected = world.expected(2, rows)
    for i, request_id in enumerate(ids):
        record = records[request_id]
        assert record["version"] == 2
        assert record["rows"] == 1
        assert record["status"] == 200
        for name in FEATURES:
            assert record["inputs"][name] == [rows.iloc[i][name]], (request_id, name)
        (scores,) = record["outputs"].values()
        assert scores == pytest.approx([float(expected[i])], abs=1e-6)


def test_sticky_keys_keep_their_version(world: World) -> None:
    world.client.create_endpoint(
        "sticky", [{"model": "models:/churn/1", "weight": 50}, {"model": "models:/churn/2", "weight": 50}]
    )
    keys = [f"user-{i}" for i in range(200)]
    headers = [{"x-workbench-routing-key": key} for key in keys for _ in range(5)]
    bodies = [_body(world) for _ in headers]
    results = asyncio.run(
        _fire(f"{world.router}/v2/models/sticky/infer", bodies, concurrency=8, headers=headers)
    )
    by_key: dict[str, set[str]] = {}
    for header, (status, version) in zip(headers, results, strict=True):
        assert status == 200
        by_key.setdefault(header["x-workbench-routing-key"], set()).add(version)
    assert all(len(versions) == 1 for versions in by_key.values())
    share = sum(1 for v in by_key.values() if v == {"2"}) / len(by_key)
    assert 0.35 < share < 0.65
    explicit = httpx.post(
        f"{world.router}/v2/models/sticky/infer", content=_body(world), headers={"x-workbench-version": "2"}
    )
    assert explicit.headers["x-workbench-model-version"] == "2"


def test_shadow_never_changes_or_delays_the_primary(world: World, churn: str) -> None:
    world.client.create_endpoint("shadowed", "models:/churn/1", shadows=[{"model": "models:/churn/3"}])
    rows = world.frame.head(3)
    plain = httpx.post(f"{world.router}/v2/models/{churn}/infer", json=oip_columns(rows)).json()
    request_ids = []
    answered: dict[str, float] = {}
    for i in range(6):
        request_id = f"shadow-test-{i}"
        request_ids.append(request_id)
        response = httpx.post(
            f"{world.router}/v2/models/shadowed/infer",
            json=oip_columns(rows),
            headers={"x-request-id": request_id},
        )
        answered[request_id] = time.time()
        assert response.status_code == 200
        assert response.headers["x-workbench-model-version"] == "1"
        assert response.json()["outputs"] == plain["outputs"]
    log_dir = world.settings.home / "predictions" / "shadowed"

    def shadow_records() -> list[dict[str, Any]]:
        return [r for r in read_records(log_dir) if r.get("shadow") and r["request_id"] in request_ids]

    records = wait_until(lambda: len(shadow_records()) == len(request_ids) and shadow_records(), timeout=30)
    assert {r["version"] for r in records} == {3}
    # Order, not duration: each primary answer reached the client before its shadow copy was done (the
    # shadow takes 0.5 s a batch; a router that waited for it would answer after the shadow's record time).
    late = {
        r["request_id"]: (answered[r["request_id"]], r["ts"])
        for r in records
        if answered[r["request_id"]] >= r["ts"]
    }
    assert not late, late
    primaries = {r["request_id"] for r in read_records(log_dir) if not r.get("shadow")}
    assert set(request_ids) <= primaries


def test_routes_change_under_load_without_a_failed_request(world: World) -> None:
    routes_change_under_load(world, swaps_to=("models:/churn/2", "models:/churn/1", "models:/churn/2"))


def routes_change_under_load(world: World, *, swaps_to: tuple[str, ...]) -> None:
    world.client.deploy("swap", "models:/churn/1")
    bodies = [_body(world, i) for i in range(400)]
    url = f"{world.router}/v2/models/swap/infer"

    async def swaps() -> None:
        for model in swaps_to:
            await asyncio.sleep(0.3)
            await asyncio.to_thread(world.client.deploy, "swap", model)

    async def scenario() -> list[tuple[int, str]]:
        # Load for as long as the swaps take (a replica start is slower on a busy machine), then a little more.
        deploys = asyncio.create_task(swaps())
        results: list[tuple[int, str]] = []
        while not deploys.done():
            results += await _fire(url, bodies, concurrency=8)
        await deploys
        return results + await _fire(url, bodies, concurrency=8)

    results = asyncio.run(scenario())
    failures = Counter(status for status, _ in results if status != 200)
    assert not failures, failures
    assert {version for _, version in results} == {"1", "2"}


def _actions_once(world: World, target: str, needed: str) -> list[str] | None:
    """The target's audit actions, oldest first, once ``needed`` is among them."""
    actions = [e.action for e in world.client.audit(target=target, oldest_first=True)]
    return actions if needed in actions else None


def test_a_killed_replica_is_restarted_and_the_endpoint_answers_again(world: World) -> None:
    world.client.deploy("crashy", "models:/churn/1")
    (replica,) = _replicas(world, "crashy")
    os.kill(replica["pid"], signal.SIGKILL)

    def restarted() -> dict[str, Any] | None:
        current = _replicas(world, "crashy")
        return current[0] if current and current[0]["pid"] != replica["pid"] else None

    new = wait_until(restarted, timeout=90)
    assert new["restarts"] >= 1
    assert replica_ready(f"http://127.0.0.1:{new['port']}")
    response = httpx.post(f"{world.router}/v2/models/crashy/infer", json=oip_columns(world.frame.head(2)))
    assert response.status_code == 200
    # The watchdog records the restart when it next sees the new replica ready: wait for that, not a time.
    actions = wait_until(lambda: _actions_once(world, "endpoint:crashy", "replica.restart"), timeout=60)
    assert "replica.crash" in actions


def test_undeploy_stops_the_replicas_and_the_route(world: World) -> None:
    world.client.deploy("gone", "models:/churn/2")
    (replica,) = _replicas(world, "gone")
    world.client.undeploy("gone", reason="test")
    response = httpx.post(f"{world.router}/v2/models/gone/infer", json=oip_columns(world.frame.head(1)))
    assert response.status_code == 404
    assert response.json() == {"error": "unknown endpoint 'gone'"}
    assert wait_until(lambda: not _alive(replica["pid"]), timeout=30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_cuda_without_a_gpu_is_refused_at_deploy_time(world: World, churn: str) -> None:
    if probe_inventory().cuda_devices:
        pytest.skip("this machine has a GPU: the refusal cannot happen here")
    before = world.client.get_endpoint(churn)
    replicas = _replicas(world, churn)
    with pytest.raises(ValidationError, match="no CUDA device is available"):
        world.client.deploy(churn, "models:/churn/2", device="cuda")
    assert world.client.get_endpoint(churn) == before
    assert _replicas(world, churn) == replicas


def test_metrics_are_exposed_by_router_and_replica(world: World, churn: str) -> None:
    httpx.post(f"{world.router}/v2/models/{churn}/infer", json=oip_columns(world.frame.head(2)))
    router_metrics = httpx.get(f"{world.router}/metrics").text
    assert (
        'workbench_router_requests_total{endpoint="churn-api",protocol="http",status="200",version="1"}'
        in router_metrics
    )
    replica = f"http://127.0.0.1:{_replicas(world, churn)[0]['port']}"
    text = httpx.get(f"{replica}/metrics").text
    for series in (
        "workbench_replica_requests_total",
        "workbench_replica_latency_seconds_bucket",
        "workbench_replica_batch_size_rows_bucket",
        "workbench_replica_queue_depth",
        "workbench_replica_prediction_log_dropped",
    ):
        assert series in text, series
    # The router serves every replica's series too, labelled: replicas' sockets are no scrape target.
    replica_id = re.escape(_replicas(world, churn)[0]["id"])
    assert re.search(
        rf'^workbench_replica_up\{{replica="{replica_id}"\}} 1\.0$', router_metrics, re.MULTILINE
    )
    for series in ("workbench_replica_requests_total", "workbench_replica_batch_size_rows_bucket"):
        assert re.search(rf'^{series}\{{[^}}]*replica="{replica_id}"', router_metrics, re.MULTILINE), series


def test_a_pyfunc_model_is_served_through_mlflow_pyfunc(world: World) -> None:
    world.client.deploy("scores", "models:/scorer/1")
    rows = world.frame.head(6)
    expected = rows["tenure_months"].to_numpy() * 0.01 + rows["contract_type"].to_numpy()
    oip = httpx.post(f"{world.router}/v2/models/scores/infer", json=oip_columns(rows))
    assert oip.status_code == 200, oip.text
    np.testing.assert_allclose(oip.json()["outputs"][0]["data"], expected)
    records = {"dataframe_records": rows[list(FEATURES)].to_dict(orient="records")}
    mlflow_json = httpx.post(f"{world.router}/endpoints/scores/invocations", json=records)
    np.testing.assert_allclose(mlflow_json.json()["predictions"], expected)
    metadata = httpx.get(f"{world.router}/v2/models/scores").json()
    assert metadata["parameters"]["flavor"] == "pyfunc"


def test_a_killed_router_is_restarted_on_its_port_with_its_routes(world: World, churn: str) -> None:
    router = world.plane.serving.status()["router"]
    url = world.router
    os.kill(router["pid"], signal.SIGKILL)

    def serving_again() -> bool:
        try:
            response = httpx.post(f"{url}/v2/models/{churn}/infer", json=oip_columns(world.frame.head(1)))
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    wait_until(serving_again, timeout=90)
    assert world.plane.serving.status()["router"]["pid"] != router["pid"]
    # The router may answer before the watchdog's next look records its restart: wait for the record.
    actions = wait_until(lambda: _actions_once(world, "router", "router.restart"), timeout=60)
    assert "router.crash" in actions
