"""Bad inference input gets a 4xx JSON error naming the problem, and the replica stays healthy.

OIP routes (``/v2/...``) answer errors as the protocol says, ``{"error": "<message>"}``; MLflow's
``/invocations`` and unknown routes keep the control plane's ``{"error": {"type", "message", "details"}}``.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import orjson
import pytest

from tests.serving._router_process import router_command, write_router_config
from tests.serving.conftest import World, oip_columns, replica_ready
from workbench.demo.dataset import FEATURES
from workbench.serving.oip_grpc import messages


@pytest.fixture(scope="module")
def endpoint(world: World) -> str:
    world.client.deploy("strict", "models:/churn/1", payload_limit_bytes=64 * 1024)
    return "strict"


def _good(world: World) -> dict[str, Any]:
    return oip_columns(world.frame.head(2))


def _without(body: dict[str, Any], name: str) -> dict[str, Any]:
    return {**body, "inputs": [i for i in body["inputs"] if i["name"] != name]}


def _replace(body: dict[str, Any], name: str, **changes: Any) -> dict[str, Any]:
    return {**body, "inputs": [({**i, **changes} if i["name"] == name else i) for i in body["inputs"]]}


def _cases(world: World) -> list[tuple[str, bytes, int, str]]:
    good = _good(world)
    nan = _replace(good, "tenure_months", data=[float("nan"), 1.0])
    return [
        ("malformed json", b'{"inputs": [', 400, "malformed JSON"),
        ("not an object", b"[1, 2, 3]", 400, "inputs"),
        ("missing input", orjson.dumps(_without(good, "tenure_months")), 400, "tenure_months"),
        (
            "extra input",
            orjson.dumps(
                {
                    **good,
                    "inputs": [
                        *good["inputs"],
                        {"name": "shoe_size", "shape": [2], "datatype": "FP64", "data": [1, 2]},
                    ],
                }
            ),
            400,
            "shoe_size",
        ),
        ("wrong shape", orjson.dumps(_replace(good, "tenure_months", shape=[3])), 400, "tenure_months"),
        (
            "wrong datatype",
            orjson.dumps(_replace(good, "tenure_months", datatype="BYTES", data=["a", "b"])),
            400,
            "tenure_months",
        ),
        ("unknown datatype", orjson.dumps(_replace(good, "tenure_months", datatype="FP128")), 400, "FP128"),
        (
            "nan",
            orjson.dumps(nan, option=orjson.OPT_SERIALIZE_NUMPY).replace(b"null", b"NaN"),
            400,
            "tenure_months",
        ),
        ("oversized", b'{"inputs": [' + b" " * (70 * 1024) + b"]}", 413, "limit"),
    ]


@pytest.mark.parametrize(
    "case",
    [
        "malformed json",
        "not an object",
        "missing input",
        "extra input",
        "wrong shape",
        "wrong datatype",
        "unknown datatype",
        "nan",
        "oversized",
    ],
)
@pytest.mark.parametrize("via", ["router", "replica"])
def test_bad_inference_input(world: World, endpoint: str, case: str, via: str) -> None:
    name, body, status, fragment = next(c for c in _cases(world) if c[0] == case)
    (replica,) = [r for r in world.client.endpoint_status(endpoint)["replicas"] if r["state"] == "ready"]
    replica_url = f"http://127.0.0.1:{replica['port']}"
    base = world.router if via == "router" else replica_url
    response = httpx.post(
        f"{base}/v2/models/{endpoint}/infer", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status, (name, response.text)
    error = response.json()
    assert set(error) == {"error"}, error
    assert isinstance(error["error"], str), error
    assert fragment in error["error"], error
    assert replica_ready(replica_url)
    assert httpx.post(f"{base}/v2/models/{endpoint}/infer", json=_good(world)).status_code == 200


def test_nan_in_a_json_body_is_rejected(world: World, endpoint: str) -> None:
    body = _good(world)
    raw = orjson.dumps(body).replace(b'"data":[', b'"data":[NaN,', 1)
    response = httpx.post(f"{world.router}/v2/models/{endpoint}/infer", content=raw)
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("path", "status", "fragment"),
    [
        ("/v2/models/nope/infer", 404, "unknown endpoint"),
        ("/v2/models/strict/versions/9/infer", 404, "version 9"),
        ("/v2/models/strict/versions/x/infer", 400, "version"),
        ("/v2/whatever", 404, "no route"),
        ("/endpoints/nope/invocations", 404, "unknown endpoint"),
        ("/v3/whatever", 404, "no route"),
    ],
)
def test_unknown_endpoints_and_versions(
    world: World, endpoint: str, path: str, status: int, fragment: str
) -> None:
    response = httpx.post(f"{world.router}{path}", json=_good(world))
    assert response.status_code == status
    error = response.json()
    assert set(error) == {"error"}, error
    if path.startswith("/v2/"):
        assert isinstance(error["error"], str), error
        assert fragment in error["error"]
    else:
        assert set(error["error"]) == {"type", "message", "details"}, error
        assert fragment in error["error"]["message"]


def test_mlflow_bad_input_names_the_column(world: World, endpoint: str) -> None:
    features = world.frame.head(2)[list(FEATURES)]
    body = {
        "dataframe_split": {"columns": list(FEATURES)[1:], "data": features.iloc[:, 1:].to_numpy().tolist()}
    }
    response = httpx.post(f"{world.router}/endpoints/{endpoint}/invocations", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"type", "message", "details"}, error
    assert FEATURES[0] in error["message"]
    both = {"dataframe_split": body["dataframe_split"], "instances": []}
    assert httpx.post(f"{world.router}/endpoints/{endpoint}/invocations", json=both).status_code == 400


def _binary(world: World) -> tuple[bytes, int]:
    """The good request in binary form: a JSON header, then each column's 2 values as little-endian bytes."""
    good = _good(world)
    tail = b""
    for item in good["inputs"]:
        dtype = "<i8" if item["datatype"] == "INT64" else "<f8"
        raw = np.asarray(item.pop("data"), dtype=dtype).tobytes()
        item["parameters"] = {"binary_data_size": len(raw)}
        tail += raw
    head = orjson.dumps(good)
    return head + tail, len(head)


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("header longer than the body", "says the JSON header has"),
        ("header shorter than the JSON", "are not the JSON header"),
        ("sizes that do not add up", "bytes of binary data follow the JSON header, but"),
        ("a tensor cut short", "declares 16 bytes of binary data"),
        ("header that is not a number", "must be the JSON header's length in bytes"),
        ("no header at all", "no Inference-Header-Content-Length header"),
    ],
)
@pytest.mark.parametrize("via", ["router", "replica"])
def test_malformed_binary_tensors(world: World, endpoint: str, case: str, fragment: str, via: str) -> None:
    body, length = _binary(world)
    sent, header = {
        "header longer than the body": (body, str(len(body) + 1)),
        "header shorter than the JSON": (body, str(length - 1)),
        "sizes that do not add up": (body + b"\x00" * 8, str(length)),
        "a tensor cut short": (body[:-1], str(length)),
        "header that is not a number": (body, "12x"),
        "no header at all": (body, None),
    }[case]
    (replica,) = [r for r in world.client.endpoint_status(endpoint)["replicas"] if r["state"] == "ready"]
    replica_url = f"http://127.0.0.1:{replica['port']}"
    base = world.router if via == "router" else replica_url
    url = f"{base}/v2/models/{endpoint}/infer"
    headers = {"content-type": "application/octet-stream"}
    if header is not None:
        headers["inference-header-content-length"] = header
    response = httpx.post(url, content=sent, headers=headers)
    assert response.status_code == 400, response.text
    error = response.json()
    assert set(error) == {"error"}, error
    assert fragment in error["error"], error
    assert replica_ready(replica_url)
    good = httpx.post(url, content=body, headers={"inference-header-content-length": str(length)})
    assert good.status_code == 200, good.text
    assert good.json()["outputs"] == httpx.post(url, json=_good(world)).json()["outputs"]


# --------------------------------------------------------------------------------------------------------------
# OIP over gRPC (issue 17): the same limits and the same messages, with gRPC's status codes


def test_grpc_a_request_over_the_endpoint_limit_is_refused_and_serving_goes_on(
    world: World, endpoint: str
) -> None:
    rows = world.frame.head(2)
    request = messages.ModelInferRequest(model_name=endpoint)
    for name in FEATURES:
        integer = rows[name].dtype.kind == "i"
        request.inputs.add(name=name, datatype="INT64" if integer else "FP64", shape=[len(rows)])
        request.raw_input_contents.append(rows[name].to_numpy(dtype="<i8" if integer else "<f8").tobytes())
    big = messages.ModelInferRequest()
    big.CopyFrom(request)
    big.inputs[0].shape[:] = [20_000]
    big.raw_input_contents[0] = b"\x00" * 8 * 20_000  # 160 KB: over the endpoint's 64 KiB
    with grpc.insecure_channel(world.router_grpc) as channel:
        infer = channel.unary_unary(
            f"/{messages.SERVICE}/ModelInfer",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=messages.ModelInferResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as info:
            infer(big)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "exceeds the endpoint's limit of 65536 bytes" in str(info.value.details())
        # Not a tensor per input: the protocol's rule, said before anything is forwarded.
        short = messages.ModelInferRequest()
        short.CopyFrom(request)
        del short.raw_input_contents[-1]
        with pytest.raises(grpc.RpcError) as info:
            infer(short)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"raw_input_contents has {len(FEATURES) - 1} entries for {len(FEATURES)} inputs" in str(
            info.value.details()
        )
        answer = infer(request)
    np.testing.assert_allclose(
        np.frombuffer(answer.raw_output_contents[0], dtype="<f4"), world.expected(1, rows), atol=1e-6
    )


def test_a_taken_grpc_port_stops_the_router_with_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        write_router_config(tmp_path, grpc_port=port)
        result = subprocess.run(
            router_command(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2, result.stderr
    assert f"workbench-router-error: cannot listen for gRPC on 127.0.0.1:{port}" in result.stderr
    assert not (tmp_path / "ready.json").exists()
