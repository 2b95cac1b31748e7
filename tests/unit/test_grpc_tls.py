"""TLS settings for the router's gRPC port: what is refused at load time, and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._tls import Pki, make_pki
from workbench.errors import ValidationError
from workbench.grpc_tls import (
    CERT_VARIABLE,
    CLIENT_CA_VARIABLE,
    KEY_VARIABLE,
    GrpcTls,
    checked_pem,
    from_values,
)
from workbench.settings import Settings


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_nothing_set_is_plaintext_and_a_pair_is_tls(pki: Pki) -> None:
    assert from_values(None, None, None) is None
    tls = from_values(str(pki.server.cert), str(pki.server.key), None)
    assert tls == GrpcTls(cert=pki.server.cert, key=pki.server.key)
    mutual = from_values(str(pki.server.cert), str(pki.server.key), str(pki.ca))
    assert mutual is not None
    assert mutual.client_ca == pki.ca


def test_the_settings_carry_it_from_the_environment(pki: Pki, tmp_path: Path) -> None:
    env = {
        "WORKBENCH_HOME": str(tmp_path),
        CERT_VARIABLE: str(pki.server.cert),
        KEY_VARIABLE: str(pki.server.key),
        CLIENT_CA_VARIABLE: str(pki.ca),
    }
    settings = Settings.from_env(env)
    assert settings.router_grpc_tls == GrpcTls(cert=pki.server.cert, key=pki.server.key, client_ca=pki.ca)


@pytest.mark.parametrize(
    ("values", "variable", "message"),
    [
        (("cert", None, None), KEY_VARIABLE, "needs the certificate and its key"),
        ((None, "key", None), CERT_VARIABLE, "needs the certificate and its key"),
        ((None, None, "ca"), CLIENT_CA_VARIABLE, "mutual TLS is TLS first"),
    ],
)
def test_half_a_configuration_is_refused(
    pki: Pki, values: tuple[str | None, ...], variable: str, message: str
) -> None:
    paths = {"cert": str(pki.server.cert), "key": str(pki.server.key), "ca": str(pki.ca)}
    cert, key, ca = (paths[v] if v else None for v in values)
    with pytest.raises(ValidationError, match=message) as raised:
        from_values(cert, key, ca)
    assert raised.value.details["variable"] == variable


def test_a_key_that_is_not_the_certificates_is_named(pki: Pki) -> None:
    with pytest.raises(ValidationError, match="is not the key of the certificate") as raised:
        checked_pem(GrpcTls(cert=pki.server.cert, key=pki.client.key))
    assert raised.value.details["variable"] == KEY_VARIABLE


def test_unreadable_or_garbled_files_are_named(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot read"):
        from_values(str(tmp_path / "missing.crt"), str(pki.server.key), None)
    garbled = tmp_path / "garbled.pem"
    garbled.write_text("not a certificate")
    with pytest.raises(ValidationError, match="holds no PEM certificate"):
        from_values(str(garbled), str(pki.server.key), None)
    with pytest.raises(ValidationError, match="holds no unencrypted PEM private key"):
        from_values(str(pki.server.cert), str(garbled), None)
    with pytest.raises(ValidationError, match="holds no PEM certificate"):
        from_values(str(pki.server.cert), str(pki.server.key), str(garbled))
