"""The router's gRPC port over TLS and mutual TLS: a real router process, tritonclient's own TLS options,
and the calls a TLS port must refuse (plaintext, an untrusted server, a client without a certificate).

The transport is what TLS changes; the RPCs behind it are the plaintext port's (``test_oip_conformance.py``
runs them all), so server and model RPCs through the router's own path are enough here.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tritonclient import grpc as triton  # type: ignore[import-untyped]
from tritonclient.utils import InferenceServerException  # type: ignore[import-untyped]

from tests._tls import Pair, Pki, make_pki
from tests.serving._router_process import router_command, write_router_config
from workbench.grpc_tls import GrpcTls
from workbench.serving.config import ReadyInfo


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _start(directory: Path, tls: GrpcTls) -> tuple[subprocess.Popen[bytes], Path]:
    config = write_router_config(directory, grpc_port=0, grpc_tls=tls)
    with (directory / "router.log").open("wb") as log:
        process = subprocess.Popen(router_command(directory), stderr=log)
    return process, config.ready_file


def _log(ready_file: Path) -> str:
    return (ready_file.parent / "router.log").read_text()


def _grpc_url(process: subprocess.Popen[bytes], ready_file: Path) -> str:
    deadline = time.monotonic() + 60
    while not ready_file.is_file():
        if process.poll() is not None:
            raise AssertionError(f"the router exited: {_log(ready_file)}")
        if time.monotonic() > deadline:
            raise AssertionError("the router did not start in 60 s")
        time.sleep(0.05)
    info = ReadyInfo.model_validate_json(ready_file.read_bytes())
    assert info.grpc_port
    return f"localhost:{info.grpc_port}"


@pytest.fixture(scope="module")
def tls_router(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, ready = _start(tmp_path_factory.mktemp("tls"), GrpcTls(cert=pki.server.cert, key=pki.server.key))
    try:
        yield _grpc_url(process, ready)
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def mutual_router(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tls = GrpcTls(cert=pki.server.cert, key=pki.server.key, client_ca=pki.ca)
    process, ready = _start(tmp_path_factory.mktemp("mtls"), tls)
    try:
        yield _grpc_url(process, ready)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_client_that_trusts_the_ca_is_served_over_tls(tls_router: str, pki: Pki) -> None:
    client = triton.InferenceServerClient(tls_router, ssl=True, root_certificates=str(pki.ca))
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.get_server_metadata().name == "workbench"
    assert client.is_model_ready("no-such-endpoint") is False  # through the router's own path


def test_plaintext_and_an_untrusted_server_are_refused(tls_router: str, pki: Pki) -> None:
    with pytest.raises(InferenceServerException, match="UNAVAILABLE"):
        triton.InferenceServerClient(tls_router).is_server_live(client_timeout=10)
    stranger_ca = triton.InferenceServerClient(tls_router, ssl=True, root_certificates=str(pki.stranger.cert))
    with pytest.raises(InferenceServerException, match="UNAVAILABLE"):
        stranger_ca.is_server_live(client_timeout=10)


def _presenting(url: str, pki: Pki, pair: Pair) -> Any:
    """A client trusting the test CA and presenting ``pair`` as its certificate."""
    return triton.InferenceServerClient(
        url,
        ssl=True,
        root_certificates=str(pki.ca),
        private_key=str(pair.key),
        certificate_chain=str(pair.cert),
    )


def test_mutual_tls_serves_a_client_with_a_certificate_of_its_ca_only(mutual_router: str, pki: Pki) -> None:
    assert _presenting(mutual_router, pki, pki.client).is_server_live()
    anonymous = triton.InferenceServerClient(mutual_router, ssl=True, root_certificates=str(pki.ca))
    for refused in (anonymous, _presenting(mutual_router, pki, pki.stranger)):
        with pytest.raises(InferenceServerException, match="UNAVAILABLE"):
            refused.is_server_live(client_timeout=10)


def test_a_key_that_does_not_match_stops_the_router_with_the_reason(pki: Pki, tmp_path: Path) -> None:
    process, ready = _start(tmp_path, GrpcTls(cert=pki.server.cert, key=pki.client.key))
    assert process.wait(timeout=60) == 2, _log(ready)
    stderr = _log(ready)
    assert "workbench-router-error" in stderr
    assert "is not the key of the certificate" in stderr
    assert not ready.exists()
