"""TLS for the router's gRPC port: a certificate and key in PEM files, and optionally a client CA.

With a client CA the port asks every caller for a certificate signed by it (mutual TLS) and refuses
calls without one; without, any client that trusts the server's certificate may call, and the
endpoints' own access rules apply as over plaintext. The files are read and checked when the settings
are loaded (``workbench up`` stops with the reason) and again by the router when it starts, so a key that
does not match its certificate is named as such rather than left to a handshake failure on the first
call.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from workbench.errors import ValidationError

if TYPE_CHECKING:
    import grpc

CERT_VARIABLE = "WORKBENCH_ROUTER_GRPC_TLS_CERT"
KEY_VARIABLE = "WORKBENCH_ROUTER_GRPC_TLS_KEY"
CLIENT_CA_VARIABLE = "WORKBENCH_ROUTER_GRPC_TLS_CLIENT_CA"


class GrpcTls(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    cert: Path
    key: Path
    #: Client certificates must be signed by this CA (mutual TLS); None: no client certificate asked.
    client_ca: Path | None = None


def _read(path: Path, variable: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"{variable}: cannot read {path}: {exc.strerror}", variable=variable) from None


def checked_pem(tls: GrpcTls) -> tuple[bytes, bytes, bytes | None]:
    """The PEM bytes of certificate chain, key and client CA, once they are known to belong together."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    chain = _read(tls.cert, CERT_VARIABLE)
    key = _read(tls.key, KEY_VARIABLE)
    client_ca = _read(tls.client_ca, CLIENT_CA_VARIABLE) if tls.client_ca is not None else None
    try:
        certificate = x509.load_pem_x509_certificates(chain)[0]
    except ValueError as exc:
        raise ValidationError(
            f"{CERT_VARIABLE}: {tls.cert} holds no PEM certificate ({exc})", variable=CERT_VARIABLE
        ) from None
    try:
        private_key = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as exc:
        raise ValidationError(
            f"{KEY_VARIABLE}: {tls.key} holds no unencrypted PEM private key ({exc})", variable=KEY_VARIABLE
        ) from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if private_key.public_key().public_bytes(
        serialization.Encoding.DER, spki
    ) != certificate.public_key().public_bytes(serialization.Encoding.DER, spki):
        raise ValidationError(
            f"{KEY_VARIABLE}: the key in {tls.key} is not the key of the certificate in {tls.cert}",
            variable=KEY_VARIABLE,
        )
    if client_ca is not None:
        try:
            x509.load_pem_x509_certificates(client_ca)
        except ValueError as exc:
            raise ValidationError(
                f"{CLIENT_CA_VARIABLE}: {tls.client_ca} holds no PEM certificate ({exc})",
                variable=CLIENT_CA_VARIABLE,
            ) from None
    return chain, key, client_ca


def server_credentials(tls: GrpcTls) -> grpc.ServerCredentials:
    import grpc

    chain, key, client_ca = checked_pem(tls)
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def from_values(cert: str | None, key: str | None, client_ca: str | None) -> GrpcTls | None:
    """The TLS settings from the three variables' values: certificate and key together or neither."""
    if not cert and not key:
        if client_ca:
            raise ValidationError(
                f"{CLIENT_CA_VARIABLE} needs {CERT_VARIABLE} and {KEY_VARIABLE}: mutual TLS is TLS first",
                variable=CLIENT_CA_VARIABLE,
            )
        return None
    if not cert or not key:
        missing = CERT_VARIABLE if not cert else KEY_VARIABLE
        raise ValidationError(
            f"{missing} is not set: TLS needs the certificate and its key", variable=missing
        )
    tls = GrpcTls(
        cert=Path(cert).expanduser().resolve(),
        key=Path(key).expanduser().resolve(),
        client_ca=Path(client_ca).expanduser().resolve() if client_ca else None,
    )
    checked_pem(tls)
    return tls
