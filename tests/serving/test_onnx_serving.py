"""An ONNX model end to end: saved by ``mlflow.onnx``, registered through the real control plane, served by
onnxruntime in a real replica process behind the real router.

The model is the demo's churn v1 exported from torch, so every prediction is checked against the torch
module it came from. A world of its own (one ONNX model, one endpoint) keeps this module to seconds.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
import torch

from tests._servers import run_server
from tests.serving.conftest import oip_columns, oip_matrix, wait_until
from workbench.api import create_app
from workbench.client import Client
from workbench.control_plane import ControlPlane
from workbench.demo.dataset import FEATURES, generate_churn, split_frame
from workbench.demo.training import train_version
from workbench.settings import Settings
from workbench.telemetry import read_records

ENDPOINT = "churn-onnx-api"


@dataclass
class OnnxWorld:
    settings: Settings
    plane: ControlPlane
    client: Client
    frame: pd.DataFrame
    module: torch.nn.Module
    source: Path

    @property
    def router(self) -> str:
        url = self.plane.serving.status()["router_url"]
        assert url, "the router is not running"
        return str(url)

    def expected(self, rows: pd.DataFrame) -> np.ndarray[Any, Any]:
        with torch.inference_mode():
            x = torch.from_numpy(rows[list(FEATURES)].to_numpy(dtype=np.float32))
            result: np.ndarray[Any, Any] = self.module(x).numpy()
        return result

    def replica(self) -> dict[str, Any]:
        (replica,) = [r for r in self.client.endpoint_status(ENDPOINT)["replicas"] if r["state"] == "ready"]
        return replica


def _save_onnx(module: torch.nn.Module, example: pd.DataFrame, path: Path) -> None:
    """Export with torch's dynamo exporter (batch dimension dynamic), save with MLflow's onnx flavour."""
    import mlflow.onnx
    from mlflow.models import infer_signature

    x = torch.from_numpy(example.to_numpy(dtype=np.float32))
    with warnings.catch_warnings():  # the exporter's FutureWarnings about torch internals
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (x,),
            dynamo=True,
            verbose=False,
            input_names=["x"],
            output_names=["probability"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
        assert program is not None
        with torch.inference_mode():
            output = module(x).numpy()
        mlflow.onnx.save_model(
            program.model_proto,
            str(path),
            signature=infer_signature(example, output),
            input_example=example,
            pip_requirements=["onnxruntime", "onnx"],
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Iterator[OnnxWorld]:
    root = tmp_path_factory.mktemp("onnx-serving")
    home = root / "home"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    settings = Settings.for_home(
        home, allowed_roots=(root,), api_port=0, router_port=0, serving_backend="local"
    )
    data = generate_churn(4000, seed=3)
    train, holdout = split_frame(data, holdout_fraction=0.25, seed=3)
    module = train_version(1, train, holdout, seed=3).module.eval()
    model_dir = root / "churn-onnx"
    _save_onnx(module, holdout[list(FEATURES)].head(2), model_dir)
    plane = ControlPlane(settings)
    plane.start_serving()
    try:
        with (
            run_server(create_app(settings, plane)) as url,
            Client(url, settings=settings, actor="tester") as client,
        ):
            client.register_from_path("churn-onnx", model_dir)
            client.deploy(ENDPOINT, "models:/churn-onnx/1", max_batch_size=32, max_wait_ms=5)
            yield OnnxWorld(settings, plane, client, holdout.reset_index(drop=True), module, model_dir)
    finally:
        plane.close()


def test_the_registered_version_is_an_mlflow_onnx_model(world: OnnxWorld) -> None:
    version = world.client.get_version("churn-onnx", 1)
    assert "onnx" in version.flavors
    assert "pytorch" not in version.flavors
    # mlflow.onnx saves tensors over 1 KB as external data beside model.onnx: the replica must find them.
    assert [p.suffix for p in world.source.iterdir() if p.name.endswith(".data")] == [".data"]


def test_the_replica_runs_onnxruntime_and_says_so(world: OnnxWorld) -> None:
    replica = world.replica()
    assert replica["device"] == "cpu"
    for base in (world.router, f"http://127.0.0.1:{replica['port']}"):
        metadata = httpx.get(f"{base}/v2/models/{ENDPOINT}").json()
        parameters = metadata["parameters"]
        assert parameters["flavor"] == "onnx"
        assert parameters["device"] == "cpu"
        assert parameters["providers"] == ["CPUExecutionProvider"]
        assert parameters["onnxruntime_version"]
        assert parameters["threads"] >= 1
        assert parameters["load_seconds"] >= 0
        assert [i["name"] for i in metadata["inputs"]] == list(FEATURES)
    # The point of serving ONNX: the replica never loaded torch (hundreds of MB of shared libraries).
    maps = Path(f"/proc/{replica['pid']}/maps").read_text()
    assert "libtorch" not in maps
    assert "onnxruntime" in maps


def test_oip_and_mlflow_protocols_return_the_torch_models_predictions(world: OnnxWorld) -> None:
    rows = world.frame.head(17)
    expected = world.expected(rows)
    for body in (oip_columns(rows.head(1), request_id="one"), oip_columns(rows), oip_matrix(rows)):
        response = httpx.post(f"{world.router}/v2/models/{ENDPOINT}/infer", json=body)
        assert response.status_code == 200, response.text
        assert response.headers["x-workbench-model-version"] == "1"
        (output,) = response.json()["outputs"]
        n = body["inputs"][0]["shape"][0]
        assert output["shape"][0] == n
        np.testing.assert_allclose(output["data"], expected[:n], rtol=1e-5, atol=1e-5)
    features = rows[list(FEATURES)]
    for mlflow_body in (
        {"dataframe_split": {"columns": list(FEATURES), "data": features.to_numpy().tolist()}},
        {"dataframe_records": features.to_dict(orient="records")},
        {"inputs": {name: features[name].tolist() for name in FEATURES}},
    ):
        response = httpx.post(f"{world.router}/endpoints/{ENDPOINT}/invocations", json=mlflow_body)
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(response.json()["predictions"], expected, rtol=1e-5, atol=1e-5)


def _batches(replica_url: str) -> tuple[float, float]:
    """(batches, rows) the replica has run for its endpoint, from its Prometheus histogram."""
    text = httpx.get(f"{replica_url}/metrics").text

    def value(series: str) -> float:
        match = re.search(
            rf"^workbench_replica_batch_size_rows_{series}\{{[^}}]*\}} (\S+)$", text, re.MULTILINE
        )
        return float(match.group(1)) if match else 0.0

    return value("count"), value("sum")


async def _concurrent(url: str, bodies: list[dict[str, Any]], ids: list[str]) -> list[tuple[int, Any]]:
    """Every body at once, on a connection each: (status, JSON) per request."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=len(bodies))) as session:

        async def one(body: dict[str, Any], request_id: str) -> tuple[int, Any]:
            async with session.post(url, json=body, headers={"x-request-id": request_id}) as response:
                return response.status, await response.json()

        return await asyncio.gather(*(one(body, i) for body, i in zip(bodies, ids, strict=True)))


def _raw_request(path: str, body: dict[str, Any], *, compress: bool = False) -> bytes:
    payload = orjson.dumps(body)
    head = f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    if compress:
        payload = gzip.compress(payload)
        head += "content-encoding: gzip\r\n"
    return f"{head}content-length: {len(payload)}\r\n\r\n".encode() + payload


async def _simultaneous(port: int, requests: list[bytes]) -> list[tuple[int, Any]]:
    """Every request on a connection of its own, all connected first and then written in one go."""
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in requests]
    for (_, writer), request in zip(connections, requests, strict=True):
        writer.write(request)
    results: list[tuple[int, Any]] = []
    for reader, writer in connections:
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
        body = await reader.readexactly(int(headers["content-length"]))
        results.append((int(lines[0].split(" ")[1]), orjson.loads(body)))
        writer.close()
        await writer.wait_closed()
    return results


def _check(world: OnnxWorld, rows: pd.DataFrame, results: list[tuple[int, Any]], ids: list[str]) -> None:
    expected = world.expected(rows)
    for i, (status, payload) in enumerate(results):
        assert status == 200, payload
        assert payload["id"] == ids[i]
        np.testing.assert_allclose(payload["outputs"][0]["data"], [expected[i]], rtol=1e-5, atol=1e-5)


def test_concurrent_requests_are_batched_and_each_gets_its_own_rows(world: OnnxWorld) -> None:
    replica = world.replica()
    replica_url = f"http://127.0.0.1:{replica['port']}"
    path = f"/v2/models/{ENDPOINT}/infer"
    _, rows_before = _batches(replica_url)

    # 64 at once through the router: every answer carries its own request's prediction.
    routed = world.frame.iloc[100:164]
    ids = [f"onnx-routed-{i}" for i in range(len(routed))]
    bodies = [oip_columns(routed.iloc[[i]], request_id=ids[i]) for i in range(len(routed))]
    _check(world, routed, asyncio.run(_concurrent(f"{world.router}{path}", bodies, ids)), ids)
    batches_routed, rows_routed = _batches(replica_url)
    assert rows_routed - rows_before == 64

    # Whether those overlapped in the replica depends on timing: a replica with a core to itself answers
    # a one-row request before the next arrives. So that 64 requests do wait together, a big gzipped
    # request goes first: the replica's event loop is busy decoding its 25k rows (one read, ~4 MB of
    # JSON) while the small ones land, and the batcher must then take them in shared batches.
    big = pd.concat([world.frame.iloc[[0]]] * 25_000, ignore_index=True)
    direct = world.frame.iloc[300:364]
    ids = [f"onnx-direct-{i}" for i in range(len(direct))]
    requests = [_raw_request(path, oip_columns(big, request_id="big"), compress=True)] + [
        _raw_request(path, oip_columns(direct.iloc[[i]], request_id=ids[i])) for i in range(len(direct))
    ]
    (big_status, big_payload), *small = asyncio.run(_simultaneous(replica["port"], requests))
    assert big_status == 200, big_payload
    np.testing.assert_allclose(
        big_payload["outputs"][0]["data"], np.full(len(big), world.expected(big.head(1))[0]), rtol=1e-5
    )
    _check(world, direct, small, ids)
    batches_after, rows_after = _batches(replica_url)
    assert rows_after - rows_routed == len(big) + 64
    assert batches_after - batches_routed < 1 + 64, "64 concurrent requests and no batch held two"


def test_prediction_logging_records_the_requests(world: OnnxWorld) -> None:
    rows = world.frame.iloc[200:206]
    expected = world.expected(rows)
    ids = [f"onnx-logged-{i}" for i in range(len(rows))]
    for i, request_id in enumerate(ids):
        one = rows.iloc[[i]]
        if i % 2:
            url = f"{world.router}/v2/models/{ENDPOINT}/infer"
            body: dict[str, Any] = oip_columns(one)
        else:
            url = f"{world.router}/endpoints/{ENDPOINT}/invocations"
            body = {"dataframe_records": one[list(FEATURES)].to_dict(orient="records")}
        response = httpx.post(url, json=body, headers={"x-request-id": request_id})
        assert response.status_code == 200, response.text
    log_dir = world.settings.home / "predictions" / ENDPOINT

    def logged() -> dict[str, dict[str, Any]]:
        return {r["request_id"]: r for r in read_records(log_dir) if r.get("request_id") in set(ids)}

    records = wait_until(lambda: len(logged()) == len(ids) and logged(), timeout=30)
    for i, request_id in enumerate(ids):
        record = records[request_id]
        assert record["model"] == "churn-onnx"
        assert record["version"] == 1
        assert record["status"] == 200
        for name in FEATURES:
            assert record["inputs"][name] == [rows.iloc[i][name]], (request_id, name)
        (scores,) = record["outputs"].values()
        assert scores == pytest.approx([float(expected[i])], abs=1e-5)
