"""The Open Inference Protocol as a third-party client speaks it: Triton's ``tritonclient.http`` and
``tritonclient.grpc`` against the real router and replicas (control plane, router and replica processes on
free ports, as in conftest); the router serves gRPC on its own port beside HTTP.

``tritonclient`` with its defaults sends inputs as binary tensor data and asks for every output as binary
data; with ``binary_data=False`` it sends JSON. Either way the answer must be the model's, errors must be
printable (``{"error": "<message>"}``), and the prediction log and the metrics must not tell them apart.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import httpx
import numpy as np
import pandas as pd
import pytest
from mlflow.pyfunc.model import PythonModel
from prometheus_client.parser import text_string_to_metric_families
from tritonclient import grpc as grpcclient  # type: ignore[import-untyped]
from tritonclient.http import (  # type: ignore[import-untyped]
    InferenceServerClient,
    InferInput,
    InferRequestedOutput,
)
from tritonclient.utils import InferenceServerException  # type: ignore[import-untyped]

from tests.serving.conftest import World, oip_columns, replica_ready, wait_until
from workbench._version import __version__
from workbench.demo.dataset import FEATURES
from workbench.serving.oip_grpc import messages
from workbench.telemetry import read_records


class GreetPyfunc(PythonModel):
    """A model with a string column, answering a number and a string per row: for BYTES both ways."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        names = model_input["name"].astype(str)
        return pd.DataFrame(
            {
                "score": names.str.len().to_numpy(dtype=np.float64)
                + model_input["x"].to_numpy(dtype=np.float64),
                "greeting": ("hello " + names).to_numpy(dtype=object),
            }
        )


@pytest.fixture(scope="module")
def endpoint(world: World) -> str:
    """Two versions taking traffic (80/20): metadata, readiness and inference for each of them."""
    world.client.create_endpoint(
        "oip", [{"model": "models:/churn/1", "weight": 80}, {"model": "models:/churn/2", "weight": 20}]
    )
    return "oip"


@pytest.fixture(scope="module")
def greeter(world: World) -> str:
    example = pd.DataFrame({"name": ["ana", "bo"], "x": [1.0, 2.0]})
    info = world.client.register_model("greeter", GreetPyfunc(), input_example=example)
    world.client.deploy("greet", f"models:/greeter/{info.version}")
    return "greet"


@pytest.fixture
def triton(world: World) -> Iterator[InferenceServerClient]:
    client = InferenceServerClient(world.router.removeprefix("http://"), network_timeout=120.0)
    try:
        yield client
    finally:
        client.close()


def _columns(rows: pd.DataFrame, floats: str) -> Iterator[tuple[str, np.ndarray[Any, Any], str]]:
    """(name, values, datatype) per feature column, as a tritonclient user builds inputs from a DataFrame."""
    for name in FEATURES:
        column = rows[name]
        if column.dtype.kind == "i":
            yield name, column.to_numpy(dtype=np.int64), "INT64"
        else:
            yield name, column.to_numpy(dtype=np.float32 if floats == "FP32" else np.float64), floats


def _inputs(rows: pd.DataFrame, *, binary: bool, floats: str = "FP64") -> list[InferInput]:
    inputs = []
    for name, array, datatype in _columns(rows, floats):
        tensor = InferInput(name, [len(rows)], datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


def _counter(url: str, name: str, **labels: str) -> float:
    """The value of one counter series in a Prometheus exposition (0 when the series does not exist yet)."""
    text = httpx.get(f"{url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def _replica_url(world: World, endpoint: str, version: int) -> str:
    replicas = world.client.endpoint_status(endpoint)["replicas"]
    (replica,) = [r for r in replicas if r["state"] == "ready" and r["version"] == version]
    return f"http://127.0.0.1:{replica['port']}"


# --------------------------------------------------------------------------------------------------------------
# Health and metadata


def test_health_and_server_metadata(world: World, endpoint: str, triton: InferenceServerClient) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    metadata = triton.get_server_metadata()
    assert metadata == {"name": "workbench", "version": __version__, "extensions": ["binary_tensor_data"]}
    replica = InferenceServerClient(_replica_url(world, endpoint, 1).removeprefix("http://"))
    try:
        assert replica.get_server_metadata() == metadata
    finally:
        replica.close()


def test_model_metadata_and_readiness_for_every_version(
    world: World, endpoint: str, triton: InferenceServerClient
) -> None:
    metadata = triton.get_model_metadata(endpoint)
    assert metadata["name"] == endpoint
    assert metadata["versions"] == ["1", "2"]
    assert metadata["platform"] == "pytorch"
    assert [i["name"] for i in metadata["inputs"]] == list(FEATURES)
    assert [o["name"] for o in metadata["outputs"]] == ["predictions"]
    # The endpoint's metadata is that of the version taking the most traffic, every time.
    assert {triton.get_model_metadata(endpoint)["parameters"]["model"] for _ in range(10)} == {"churn"}
    for version in ("1", "2"):
        described = triton.get_model_metadata(endpoint, version)
        assert described["versions"] == ["1", "2"]
        assert described["inputs"] == metadata["inputs"]
        assert triton.is_model_ready(endpoint, version)
    assert triton.is_model_ready(endpoint)
    assert not triton.is_model_ready(endpoint, "9")
    assert not triton.is_model_ready("nope")
    with pytest.raises(InferenceServerException) as info:
        triton.get_model_metadata("nope")
    assert info.value.status() == "404"
    assert "unknown endpoint 'nope'" in str(info.value)


# --------------------------------------------------------------------------------------------------------------
# Inference


@pytest.mark.parametrize("binary", [True, False], ids=["client-defaults", "json"])
@pytest.mark.parametrize("floats", ["FP64", "FP32"])
@pytest.mark.parametrize("version", [1, 2])
def test_inference_gives_the_models_answer(
    world: World, endpoint: str, triton: InferenceServerClient, binary: bool, floats: str, version: int
) -> None:
    rows = world.frame.iloc[10:17]
    result = triton.infer(
        endpoint, _inputs(rows, binary=binary, floats=floats), model_version=str(version), request_id="r-1"
    )
    response = result.get_response()
    assert response["model_version"] == str(version)
    assert response["id"] == "r-1"
    (output,) = response["outputs"]
    # tritonclient asks for every output as binary data when it names none, whatever its inputs were.
    assert output["parameters"]["binary_data_size"] == 4 * len(rows)
    scores = result.as_numpy("predictions")
    assert scores.dtype == np.float32
    # The model consumes float32 whatever the client sent: FP32 and FP64 inputs give the same answer.
    expected = world.expected(version, rows)
    np.testing.assert_allclose(scores, expected, rtol=1e-6, atol=1e-6)


def test_a_matrix_input_and_outputs_asked_for_as_json(
    world: World, endpoint: str, triton: InferenceServerClient
) -> None:
    rows = world.frame.head(4)
    matrix = InferInput("features", [len(rows), len(FEATURES)], "FP32")
    matrix.set_data_from_numpy(rows[list(FEATURES)].to_numpy(dtype=np.float32))
    outputs = [InferRequestedOutput("predictions", binary_data=False)]
    result = triton.infer(endpoint, [matrix], model_version="2", outputs=outputs)
    (output,) = result.get_response()["outputs"]
    assert "parameters" not in output or "binary_data_size" not in output["parameters"]
    np.testing.assert_allclose(output["data"], world.expected(2, rows).reshape(-1), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(result.as_numpy("predictions"), world.expected(2, rows), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("binary", [True, False], ids=["client-defaults", "json"])
def test_bytes_inputs_and_outputs(
    world: World, greeter: str, triton: InferenceServerClient, binary: bool
) -> None:
    names = np.array(["ana", "zoë", "bo"], dtype=object)
    text = InferInput("name", [3], "BYTES")
    text.set_data_from_numpy(names, binary_data=binary)
    x = InferInput("x", [3], "FP64")
    x.set_data_from_numpy(np.array([0.5, 1.0, -1.0]), binary_data=binary)
    result = triton.infer(greeter, [text, x])
    np.testing.assert_allclose(result.as_numpy("score"), [3.5, 4.0, 1.0])
    greetings = [value.decode("utf-8") for value in result.as_numpy("greeting").tolist()]
    assert greetings == ["hello ana", "hello zoë", "hello bo"]
    datatypes = {o["name"]: o["datatype"] for o in result.get_response()["outputs"]}
    assert datatypes == {"score": "FP64", "greeting": "BYTES"}


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests(
    world: World, endpoint: str, triton: InferenceServerClient, algorithm: str
) -> None:
    rows = world.frame.iloc[20:25]
    result = triton.infer(
        endpoint,
        _inputs(rows, binary=True),
        model_version="1",
        request_compression_algorithm=algorithm,
        response_compression_algorithm=algorithm,  # may be ignored: the answer comes uncompressed
    )
    np.testing.assert_allclose(result.as_numpy("predictions"), world.expected(1, rows), rtol=1e-6, atol=1e-6)


def test_an_unknown_content_encoding_is_refused(world: World, endpoint: str) -> None:
    response = httpx.post(
        f"{world.router}/v2/models/{endpoint}/infer",
        json=oip_columns(world.frame.head(1)),
        headers={"content-encoding": "br"},
    )
    assert response.status_code == 415
    assert response.json() == {
        "error": "unsupported Content-Encoding 'br': send gzip, deflate or no encoding"
    }


# --------------------------------------------------------------------------------------------------------------
# Errors


def test_an_error_the_client_can_print(world: World, endpoint: str, triton: InferenceServerClient) -> None:
    rows = world.frame.head(2)
    inputs = [i for i in _inputs(rows, binary=True) if i.name() != "tenure_months"]
    with pytest.raises(InferenceServerException) as info:
        triton.infer(endpoint, inputs, model_version="1")
    assert info.value.status() == "400"
    assert "missing input(s) ['tenure_months']" in str(info.value)
    wrong = _inputs(rows, binary=True)
    tenure = InferInput("tenure_months", [2], "BYTES")  # a numeric column refuses strings
    tenure.set_data_from_numpy(np.array(["one", "two"], dtype=object))
    with pytest.raises(InferenceServerException) as info:
        triton.infer(endpoint, [tenure, *wrong[1:]], model_version="1")
    assert info.value.status() == "400"
    assert "input 'tenure_months' has datatype BYTES" in str(info.value)


def _binary_body(rows: pd.DataFrame) -> tuple[bytes, int]:
    body, length = InferenceServerClient.generate_request_body(_inputs(rows, binary=True))
    assert length is not None
    return body, length


@pytest.mark.parametrize("via", ["router", "replica"])
@pytest.mark.parametrize("case", ["header longer than the body", "sizes do not add up", "truncated tensor"])
def test_malformed_binary_tensors_are_a_clear_400_and_change_nothing(
    world: World, endpoint: str, via: str, case: str
) -> None:
    rows = world.frame.head(3)
    body, length = _binary_body(rows)
    replica = _replica_url(world, endpoint, 1)
    base = world.router if via == "router" else replica
    url = f"{base}/v2/models/{endpoint}/versions/1/infer"
    if case == "header longer than the body":
        sent, header, fragment = body, len(body) + 1, "says the JSON header has"
    elif case == "sizes do not add up":
        sent, header, fragment = body + b"\x00" * 8, length, "8 bytes of binary data follow"
    else:
        sent, header, fragment = body[:-4], length, "input 'has_partner' declares 24 bytes"
    before = httpx.post(url, content=body, headers={"inference-header-content-length": str(length)})
    assert before.status_code == 200, before.text
    response = httpx.post(url, content=sent, headers={"inference-header-content-length": str(header)})
    assert response.status_code == 400, response.text
    error = response.json()
    assert set(error) == {"error"}
    assert isinstance(error["error"], str)
    assert fragment in error["error"], error
    assert replica_ready(replica)
    after = httpx.post(url, content=body, headers={"inference-header-content-length": str(length)})
    assert after.status_code == 200
    assert after.content == before.content


def test_bytes_tensors_with_bad_lengths_are_refused(world: World, greeter: str) -> None:
    doc = b'{"inputs":[{"name":"name","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":9}},'
    doc += b'{"name":"x","shape":[2],"datatype":"FP64","data":[1,2]}]}'
    tail = struct.pack("<I", 1) + b"a" + struct.pack("<I", 7)  # the second element says 7 bytes, holds 0
    response = httpx.post(
        f"{world.router}/v2/models/{greeter}/infer",
        content=doc + tail,
        headers={"inference-header-content-length": str(len(doc))},
    )
    assert response.status_code == 400
    assert response.json() == {"error": "input 'name' BYTES element 1 says it has 7 bytes, but only 0 remain"}


# --------------------------------------------------------------------------------------------------------------
# Telemetry


def test_binary_requests_are_counted_and_logged_exactly_as_json_ones(
    world: World, endpoint: str, triton: InferenceServerClient
) -> None:
    rows = world.frame.iloc[40:52]
    replica = _replica_url(world, endpoint, 2)
    labels = {"endpoint": endpoint, "version": "2", "status": "200"}
    replica_before = _counter(replica, "workbench_replica_requests_total", status="200", shadow="false")
    router_before = _counter(world.router, "workbench_router_requests_total", **labels)
    ids: dict[str, tuple[int, bool]] = {}
    for i in range(len(rows)):
        for binary in (True, False):
            request_id = f"conformance-{'bin' if binary else 'json'}-{i}"
            ids[request_id] = (i, binary)
            triton.infer(
                endpoint,
                _inputs(rows.iloc[[i]], binary=binary),
                model_version="2",
                headers={"x-request-id": request_id},
            )
    assert _counter(
        replica, "workbench_replica_requests_total", status="200", shadow="false"
    ) - replica_before == len(ids)
    assert _counter(world.router, "workbench_router_requests_total", **labels) - router_before == len(ids)
    log_dir = world.settings.home / "predictions" / endpoint

    def logged() -> dict[str, dict[str, Any]]:
        return {r["request_id"]: r for r in read_records(log_dir) if r.get("request_id") in ids}

    records = wait_until(lambda: len(logged()) == len(ids) and logged(), timeout=30)
    expected = world.expected(2, rows)
    for i in range(len(rows)):
        binary, json = records[f"conformance-bin-{i}"], records[f"conformance-json-{i}"]
        for record in (binary, json):
            assert record["version"] == 2
            assert record["status"] == 200
            assert record["rows"] == 1
            assert record["shadow"] is False
        assert binary["inputs"] == json["inputs"]
        assert binary["inputs"] == {name: [rows.iloc[i][name]] for name in FEATURES}
        assert binary["outputs"] == json["outputs"]
        (scores,) = binary["outputs"].values()
        assert scores == pytest.approx([float(expected[i])], abs=1e-6)


def test_json_clients_are_unchanged(world: World, endpoint: str) -> None:
    """A plain JSON body with no binary parameters gets a plain JSON answer, as before the extension."""
    response = httpx.post(
        f"{world.router}/v2/models/{endpoint}/versions/1/infer", json=oip_columns(world.frame.head(2))
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "inference-header-content-length" not in response.headers
    (output,) = response.json()["outputs"]
    np.testing.assert_allclose(output["data"], world.expected(1, world.frame.head(2)).reshape(-1), atol=1e-6)


def test_binary_requests_are_mirrored_to_shadows_intact(world: World, triton: InferenceServerClient) -> None:
    world.client.create_endpoint("oip-shadowed", "models:/churn/1", shadows=[{"model": "models:/churn/2"}])
    rows = world.frame.iloc[60:63]
    ids = [f"mirrored-{i}" for i in range(len(rows))]
    for i, request_id in enumerate(ids):
        triton.infer(
            "oip-shadowed", _inputs(rows.iloc[[i]], binary=True), headers={"x-request-id": request_id}
        )
    log_dir = world.settings.home / "predictions" / "oip-shadowed"

    def logged() -> list[dict[str, Any]]:
        return [r for r in read_records(log_dir) if r.get("request_id") in ids]

    records = wait_until(lambda: len(logged()) == 2 * len(ids) and logged(), timeout=30)
    shadows = {r["request_id"]: r for r in records if r["shadow"]}
    primaries = {r["request_id"]: r for r in records if not r["shadow"]}
    assert set(shadows) == set(primaries) == set(ids)
    expected = world.expected(2, rows)
    for i, request_id in enumerate(ids):
        shadow, primary = shadows[request_id], primaries[request_id]
        assert (shadow["version"], shadow["status"], primary["version"], primary["status"]) == (
            2,
            200,
            1,
            200,
        )
        assert shadow["inputs"] == primary["inputs"]
        (scores,) = shadow["outputs"].values()
        assert scores == pytest.approx([float(expected[i])], abs=1e-6)


# --------------------------------------------------------------------------------------------------------------
# The same protocol over gRPC: tritonclient.grpc with its defaults, against the router's gRPC port (issue 17)


@pytest.fixture
def triton_grpc(world: World) -> Iterator[grpcclient.InferenceServerClient]:
    client = grpcclient.InferenceServerClient(world.router_grpc)
    try:
        yield client
    finally:
        client.close()


def _grpc_inputs(rows: pd.DataFrame, floats: str = "FP64") -> list[grpcclient.InferInput]:
    inputs = []
    for name, array, datatype in _columns(rows, floats):
        tensor = grpcclient.InferInput(name, [len(rows)], datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def _grpc_error(call: Callable[[], Any]) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value


def test_grpc_health_and_server_metadata(world: World, triton_grpc: grpcclient.InferenceServerClient) -> None:
    assert triton_grpc.is_server_live()
    assert triton_grpc.is_server_ready()
    assert triton_grpc.get_server_metadata(as_json=True) == {
        "name": "workbench",
        "version": __version__,
        "extensions": ["binary_tensor_data"],
    }


def test_grpc_model_metadata_and_readiness_for_every_version(
    world: World, endpoint: str, triton_grpc: grpcclient.InferenceServerClient
) -> None:
    metadata = triton_grpc.get_model_metadata(endpoint)
    assert metadata.name == endpoint
    assert list(metadata.versions) == ["1", "2"]
    assert metadata.platform == "pytorch"
    assert [i.name for i in metadata.inputs] == list(FEATURES)
    assert [o.name for o in metadata.outputs] == ["predictions"]
    http = InferenceServerClient(world.router.removeprefix("http://"))
    try:
        over_http = http.get_model_metadata(endpoint)
    finally:
        http.close()
    assert [(i.name, i.datatype, list(i.shape)) for i in metadata.inputs] == [
        (i["name"], i["datatype"], i["shape"]) for i in over_http["inputs"]
    ]
    for version in ("1", "2"):
        assert list(triton_grpc.get_model_metadata(endpoint, version).versions) == ["1", "2"]
        assert triton_grpc.is_model_ready(endpoint, version)
    assert triton_grpc.is_model_ready(endpoint)
    assert not triton_grpc.is_model_ready(endpoint, "9")
    assert not triton_grpc.is_model_ready("nope")
    error = _grpc_error(lambda: triton_grpc.get_model_metadata("nope"))
    assert error.status() == "StatusCode.NOT_FOUND"
    assert "unknown endpoint 'nope'" in error.message()


@pytest.mark.parametrize("floats", ["FP64", "FP32"])
@pytest.mark.parametrize("version", [1, 2])
def test_grpc_inference_gives_the_models_answer(
    world: World, endpoint: str, triton_grpc: grpcclient.InferenceServerClient, floats: str, version: int
) -> None:
    rows = world.frame.iloc[10:17]
    result = triton_grpc.infer(
        endpoint, _grpc_inputs(rows, floats), model_version=str(version), request_id="r-1"
    )
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == (endpoint, str(version), "r-1")
    (output,) = response.outputs
    assert (output.name, output.datatype, list(output.shape)) == ("predictions", "FP32", [len(rows)])
    scores = result.as_numpy("predictions")
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores, world.expected(version, rows), rtol=1e-6, atol=1e-6)


def test_grpc_a_matrix_input_and_a_requested_output(
    world: World, endpoint: str, triton_grpc: grpcclient.InferenceServerClient
) -> None:
    rows = world.frame.head(4)
    matrix = grpcclient.InferInput("features", [len(rows), len(FEATURES)], "FP32")
    matrix.set_data_from_numpy(rows[list(FEATURES)].to_numpy(dtype=np.float32))
    outputs = [grpcclient.InferRequestedOutput("predictions")]
    result = triton_grpc.infer(endpoint, [matrix], model_version="2", outputs=outputs)
    np.testing.assert_allclose(result.as_numpy("predictions"), world.expected(2, rows), rtol=1e-6, atol=1e-6)
    error = _grpc_error(
        lambda: triton_grpc.infer(
            endpoint, [matrix], model_version="2", outputs=[grpcclient.InferRequestedOutput("nope")]
        )
    )
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert "nope" in error.message()


def test_grpc_bytes_inputs_and_outputs(
    world: World, greeter: str, triton_grpc: grpcclient.InferenceServerClient
) -> None:
    text = grpcclient.InferInput("name", [3], "BYTES")
    text.set_data_from_numpy(np.array(["ana", "zoë", "bo"], dtype=object))
    x = grpcclient.InferInput("x", [3], "FP64")
    x.set_data_from_numpy(np.array([0.5, 1.0, -1.0]))
    result = triton_grpc.infer(greeter, [text, x])
    np.testing.assert_allclose(result.as_numpy("score"), [3.5, 4.0, 1.0])
    greetings = [value.decode("utf-8") for value in result.as_numpy("greeting").tolist()]
    assert greetings == ["hello ana", "hello zoë", "hello bo"]
    assert {o.name: o.datatype for o in result.get_response().outputs} == {
        "score": "FP64",
        "greeting": "BYTES",
    }


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_grpc_compressed_requests(
    world: World, endpoint: str, triton_grpc: grpcclient.InferenceServerClient, algorithm: str
) -> None:
    rows = world.frame.iloc[20:25]
    result = triton_grpc.infer(
        endpoint, _grpc_inputs(rows), model_version="1", compression_algorithm=algorithm
    )
    np.testing.assert_allclose(result.as_numpy("predictions"), world.expected(1, rows), rtol=1e-6, atol=1e-6)


def test_grpc_errors_carry_the_http_message_and_the_matching_code(
    world: World, endpoint: str, triton_grpc: grpcclient.InferenceServerClient
) -> None:
    rows = world.frame.head(2)
    inputs = [i for i in _grpc_inputs(rows) if i.name() != "tenure_months"]
    error = _grpc_error(lambda: triton_grpc.infer(endpoint, inputs, model_version="1"))
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert "missing input(s) ['tenure_months']" in error.message()
    tenure = grpcclient.InferInput("tenure_months", [2], "BYTES")
    tenure.set_data_from_numpy(np.array(["one", "two"], dtype=object))
    wrong = _grpc_inputs(rows)
    error = _grpc_error(lambda: triton_grpc.infer(endpoint, [tenure, *wrong[1:]], model_version="1"))
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert "input 'tenure_months' has datatype BYTES" in error.message()
    error = _grpc_error(lambda: triton_grpc.infer("nope", _grpc_inputs(rows)))
    assert error.status() == "StatusCode.NOT_FOUND"
    assert "unknown endpoint 'nope'" in error.message()
    error = _grpc_error(lambda: triton_grpc.infer(endpoint, _grpc_inputs(rows), model_version="9"))
    assert error.status() == "StatusCode.NOT_FOUND"
    assert "does not serve version 9" in error.message()
    # Triton's extensions are not served: UNIMPLEMENTED, as for any method a gRPC server does not have.
    error = _grpc_error(lambda: triton_grpc.get_model_config(endpoint))
    assert error.status() == "StatusCode.UNIMPLEMENTED"
    assert triton_grpc.is_server_live()


def test_grpc_typed_contents_reach_the_model_as_raw_tensors_do(world: World, endpoint: str) -> None:
    """A client that fills ``contents`` instead of ``raw_input_contents`` (not tritonclient's way)."""
    rows = world.frame.iloc[30:33]
    request = messages.ModelInferRequest(model_name=endpoint, model_version="1")
    for name in FEATURES:
        column = rows[name]
        if column.dtype.kind == "i":
            tensor = request.inputs.add(name=name, datatype="INT64", shape=[len(rows)])
            tensor.contents.int64_contents.extend(int(v) for v in column)
        else:
            tensor = request.inputs.add(name=name, datatype="FP64", shape=[len(rows)])
            tensor.contents.fp64_contents.extend(float(v) for v in column)
    with grpc.insecure_channel(world.router_grpc) as channel:
        infer = channel.unary_unary(
            f"/{messages.SERVICE}/ModelInfer",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=messages.ModelInferResponse.FromString,
        )
        response, call = infer.with_call(request, metadata=[("x-request-id", "typed-1")])
    scores = np.frombuffer(response.raw_output_contents[0], dtype="<f4")
    np.testing.assert_allclose(scores, world.expected(1, rows), rtol=1e-6, atol=1e-6)
    sent_back = dict(call.trailing_metadata())
    assert sent_back["x-request-id"] == "typed-1"
    assert sent_back["x-workbench-model-version"] == "1"


def test_grpc_routing_metadata_picks_versions_as_http_headers_do(
    world: World, endpoint: str, triton_grpc: grpcclient.InferenceServerClient
) -> None:
    rows = world.frame.iloc[[5]]

    def served(headers: dict[str, str]) -> str:
        result = triton_grpc.infer(endpoint, _grpc_inputs(rows), headers=headers)
        return str(result.get_response().model_version)

    assert {served({"x-workbench-version": "2"}) for _ in range(5)} == {"2"}
    for key in ("customer-1", "customer-2", "customer-3"):
        http = httpx.post(
            f"{world.router}/v2/models/{endpoint}/infer",
            json=oip_columns(rows),
            headers={"x-workbench-routing-key": key},
        )
        assert {served({"x-workbench-routing-key": key}) for _ in range(4)} == {
            http.headers["x-workbench-model-version"]
        }
    seen = {served({}) for _ in range(60)}
    assert seen == {"1", "2"}  # 80/20 weights: both versions answer unpinned calls


def test_grpc_requests_are_counted_logged_and_mirrored_as_http_ones(
    world: World, triton_grpc: grpcclient.InferenceServerClient
) -> None:
    world.client.create_endpoint(
        "oip-grpc-shadowed", "models:/churn/1", shadows=[{"model": "models:/churn/2"}]
    )
    rows = world.frame.iloc[70:74]
    labels = {"endpoint": "oip-grpc-shadowed", "version": "1", "status": "200"}
    before = _counter(world.router, "workbench_router_requests_total", protocol="grpc", **labels)
    ids = [f"grpc-{i}" for i in range(len(rows))]
    for i, request_id in enumerate(ids):
        triton_grpc.infer(
            "oip-grpc-shadowed", _grpc_inputs(rows.iloc[[i]]), headers={"x-request-id": request_id}
        )
    counted = _counter(world.router, "workbench_router_requests_total", protocol="grpc", **labels)
    assert counted - before == len(ids)
    log_dir = world.settings.home / "predictions" / "oip-grpc-shadowed"

    def logged() -> list[dict[str, Any]]:
        return [r for r in read_records(log_dir) if r.get("request_id") in ids]

    records = wait_until(lambda: len(logged()) == 2 * len(ids) and logged(), timeout=30)
    primaries = {r["request_id"]: r for r in records if not r["shadow"]}
    shadows = {r["request_id"]: r for r in records if r["shadow"]}
    assert set(primaries) == set(shadows) == set(ids)
    for i, request_id in enumerate(ids):
        assert primaries[request_id]["inputs"] == {name: [rows.iloc[i][name]] for name in FEATURES}
        assert shadows[request_id]["inputs"] == primaries[request_id]["inputs"]
        assert (primaries[request_id]["version"], shadows[request_id]["version"]) == (1, 2)
        (scores,) = primaries[request_id]["outputs"].values()
        assert scores == pytest.approx([float(world.expected(1, rows)[i])], abs=1e-6)


def test_grpc_traffic_drops_nothing_while_the_routes_change(world: World) -> None:
    """Deploys that swap the version (what rollouts do to the routes) under gRPC load: no call fails, and
    calls are answered by the old and then the new version."""
    world.client.deploy("grpc-swap", "models:/churn/1")
    rows = world.frame.iloc[[3]]
    request = messages.ModelInferRequest(model_name="grpc-swap")
    for name in FEATURES:
        integer = rows[name].dtype.kind == "i"
        request.inputs.add(name=name, datatype="INT64" if integer else "FP64", shape=[1])
        request.raw_input_contents.append(rows[name].to_numpy(dtype="<i8" if integer else "<f8").tobytes())
    body = request.SerializeToString()

    async def scenario() -> tuple[list[str], list[str]]:
        answered: list[str] = []
        failed: list[str] = []
        async with grpc.aio.insecure_channel(world.router_grpc) as channel:
            infer = channel.unary_unary(
                f"/{messages.SERVICE}/ModelInfer",
                request_serializer=None,
                response_deserializer=messages.ModelInferResponse.FromString,
            )

            async def load(stop: asyncio.Event) -> None:
                while not stop.is_set():
                    try:
                        answered.append((await infer(body, timeout=30)).model_version)
                    except grpc.aio.AioRpcError as exc:
                        failed.append(f"{exc.code().name}: {exc.details()}")

            stop = asyncio.Event()
            workers = [asyncio.create_task(load(stop)) for _ in range(8)]
            for model in ("models:/churn/2", "models:/churn/1", "models:/churn/2"):
                await asyncio.sleep(0.3)
                await asyncio.to_thread(world.client.deploy, "grpc-swap", model)
            await asyncio.sleep(0.5)
            stop.set()
            await asyncio.gather(*workers)
        return answered, failed

    answered, failed = asyncio.run(scenario())
    assert failed == []
    assert set(answered) == {"1", "2"}
    assert answered[-1] == "2"
