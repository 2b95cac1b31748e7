"""What the supervisor tells a replica or the router when it starts them: one JSON file each."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from workbench.grpc_tls import GrpcTls
from workbench.specs.features import FeatureLookup


class ReplicaConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    replica_id: str
    endpoint: str
    model: str
    version: int
    model_dir: Path
    device: str = "auto"
    threads: int | None = None
    #: Serve a torch model as a verified TorchScript trace (``serving.model``).
    torchscript: bool = False
    max_batch_size: int = 64
    max_wait_ms: float = 2.0
    payload_limit_bytes: int = 8 * 1024 * 1024
    host: str = "127.0.0.1"
    port: int = 0
    uds: Path | None = None
    ready_file: Path
    prediction_log_dir: Path | None = None
    log_sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    #: An endpoint with a feature lookup: its spec, and the Feast repository to read it from.
    features: FeatureLookup | None = None
    feature_repo: Path | None = None


class RouterConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int
    routes_file: Path
    token_file: Path
    ready_file: Path
    request_timeout_s: float = 60.0
    max_shadow_in_flight: int = 256
    #: OIP over gRPC beside HTTP (0: any free port), None: HTTP only.
    grpc_port: int | None = None
    #: TLS on the gRPC port (:mod:`workbench.grpc_tls`); None: plaintext.
    grpc_tls: GrpcTls | None = None


class ReadyInfo(BaseModel):
    """Written atomically by a process once it serves; how the supervisor learns its port and pid."""

    model_config = ConfigDict(frozen=True)

    pid: int
    port: int
    uds: Path | None = None
    device: str | None = None
    started_at: float
    #: The router's OIP gRPC port, when it serves one.
    grpc_port: int | None = None
