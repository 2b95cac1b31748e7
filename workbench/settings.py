"""Settings are read once from the environment into one frozen object and then passed explicitly.

Nothing else in the package reads ``os.environ``: tests build a ``Settings`` for a temporary home and
hand it down, so two control planes (or a control plane and its tests) never share hidden global state.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from workbench import grpc_tls
from workbench.errors import ValidationError
from workbench.grpc_tls import GrpcTls
from workbench.priority import BACKGROUND_NICE

DEFAULT_API_PORT = 8765
DEFAULT_ROUTER_PORT = 8766
DEFAULT_DASHBOARD_PORT = 8767
DEFAULT_ROUTER_GRPC_PORT = 8768
#: ``router_grpc_port`` unset: 8768 beside the default router port, any free port beside another one.
GRPC_FOLLOWS_ROUTER = -1
DEFAULT_DASHBOARD_SESSION_S = 8 * 3600.0
DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024
DEFAULT_HISTORY_RETENTION_S = 7 * 86_400.0
DEFAULT_ROLLUP_RETENTION_S = 90 * 86_400.0
DEFAULT_FEEDBACK_RETENTION_S = 30 * 86_400.0
DEFAULT_EXPERIMENT_LOOK_S = 10.0


def _port(raw: str, name: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise ValidationError(f"{name} must be an integer port, got {raw!r}", variable=name) from None
    if not 0 <= port <= 65535:
        raise ValidationError(f"{name} must be between 0 and 65535, got {port}", variable=name)
    return port


def http_url(host: str, port: int) -> str:
    """``http://host:port``, with IPv6 literals bracketed as URLs require."""
    return f"http://[{host}]:{port}" if ":" in host and not host.startswith("[") else f"http://{host}:{port}"


def _nice(raw: str) -> int:
    return _bounded_int(raw, "WORKBENCH_BACKGROUND_NICE", 0, 19)


def _bounded_int(raw: str, name: str, least: int, most: int) -> int:
    message = f"{name} must be an integer from {least} to {most}, got {raw!r}"
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(message, variable=name) from None
    if not least <= value <= most:
        raise ValidationError(message, variable=name)
    return value


def _cpus(raw: str, name: str) -> float:
    message = f"{name} must be a number of CPUs from 0 to 64, got {raw!r}"
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(message, variable=name) from None
    if not 0.0 <= value <= 64.0:
        raise ValidationError(message, variable=name)
    return value


def _flag(raw: str | None) -> bool:
    return (raw or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Where everything lives and how the control plane is reached.

    Every store is chosen by URL so that a team can point Workbench at an MLflow tracking server and
    PostgreSQL instead of the embedded SQLite files under ``home``.
    """

    home: Path
    mlflow_tracking_uri: str
    mlflow_registry_uri: str
    artifact_root: Path
    state_url: str
    host: str = "127.0.0.1"
    api_port: int = DEFAULT_API_PORT
    router_port: int = DEFAULT_ROUTER_PORT
    #: OIP over gRPC on the router: a port (0: any free one), None: not served, or GRPC_FOLLOWS_ROUTER.
    router_grpc_port: int | None = GRPC_FOLLOWS_ROUTER
    #: TLS (and with a client CA, mutual TLS) on the router's gRPC port; None: plaintext.
    router_grpc_tls: GrpcTls | None = None
    token_file: Path = field(default=Path())
    token: str | None = field(default=None, repr=False)  # never printed: a repr may reach a log or a page
    open_reads: bool = False
    #: Fork replicas from a process with their imports done (~0.2 s a start instead of ~1.5 s); off:
    #: each replica is a fresh interpreter (for a model library that cannot be forked after import).
    replica_forkserver: bool = True
    allowed_roots: tuple[Path, ...] = ()
    api_url: str = ""
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    serving_backend: str = "local"
    #: The Ray Serve backend: an existing cluster's address (``host:port`` of its GCS, or ``auto``);
    #: empty starts a local cluster under ``home`` and reuses it across control-plane restarts.
    ray_address: str = ""
    #: Logical CPUs a local cluster advertises to Ray's scheduler (None: the machine's cores). Replicas
    #: reserve CPUs from it, so more than the cores lets more replicas share them, as processes do locally.
    ray_num_cpus: float | None = None
    #: The Ray ingress (the router): how many replicas, and the CPU each reserves.
    ray_ingress_replicas: int = 1
    ray_ingress_cpus: float = 0.25
    #: How often the control plane compares the applications Ray runs with those it declared, and
    #: declares them again when one is missing or foreign (removed by hand, lost with a head node).
    ray_reconcile_s: float = 10.0
    runbook_dirs: tuple[Path, ...] = ()
    actor: str | None = None
    #: How long monitor history is kept point by point, and as per-minute rollups (pruned by the loop).
    history_retention_s: float = DEFAULT_HISTORY_RETENTION_S
    rollup_retention_s: float = DEFAULT_ROLLUP_RETENTION_S
    #: How long a request can be labelled: the request-id index forgets older predictions.
    feedback_retention_s: float = DEFAULT_FEEDBACK_RETENTION_S
    #: The Feast repository (None: ``home/features``) and its online store: ``sqlite`` or ``redis://host:port``.
    feature_repo: Path | None = None
    feature_online_store: str = "sqlite"
    #: How often a running A/B experiment is looked at (each look is kept, audited if its verdict changed).
    experiment_look_s: float = DEFAULT_EXPERIMENT_LOOK_S
    #: The served dashboards: started by ``workbench up`` unless disabled; a sign-in lasts ``session_s``.
    dashboard: bool = True
    dashboard_port: int = DEFAULT_DASHBOARD_PORT
    dashboard_session_s: float = DEFAULT_DASHBOARD_SESSION_S
    #: A JSON file ``{"user": "password"}`` for named sign-ins; without it, any name with the API token.
    dashboard_users: Path | None = None
    #: Panel's OAuth provider (``github``, ``google``, ``azure``, ``okta``, ``generic``...) instead of the
    #: password sign-in; its key and secret come from Panel's own PANEL_OAUTH_* variables.
    dashboard_oauth_provider: str | None = None
    #: Niceness of the control plane's monitoring threads, so that serving on the same machine comes
    #: first (``workbench.priority``); 0 runs them at the usual priority.
    background_nice: int = BACKGROUND_NICE

    @classmethod
    def for_home(cls, home: Path | str, **overrides: object) -> Settings:
        """The embedded default rooted at ``home``: everything on local disk, nothing to install."""
        home = Path(home).expanduser().resolve()
        base = cls(
            home=home,
            mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
            mlflow_registry_uri=f"sqlite:///{home / 'mlflow.db'}",
            artifact_root=home / "mlartifacts",
            state_url=f"sqlite:///{home / 'state.db'}",
            token_file=home / "api-token",
            allowed_roots=(home, Path.cwd().resolve()),
        )
        settings = replace(base, **overrides)  # type: ignore[arg-type]
        if not settings.api_url:
            settings = replace(settings, api_url=http_url(settings.host, settings.api_port))
        return settings

    def grpc_port(self) -> int | None:
        """The port the router serves OIP over gRPC on (0: any free one), or None when it does not.

        Unset, it is 8768 beside the default router port; a router moved elsewhere (tests, a second
        workbench on one machine) takes any free port for gRPC rather than collide on 8768. The port bound
        is in ``workbench status``.
        """
        if self.router_grpc_port != GRPC_FOLLOWS_ROUTER:
            return self.router_grpc_port
        return DEFAULT_ROUTER_GRPC_PORT if self.router_port == DEFAULT_ROUTER_PORT else 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("WORKBENCH_HOME", "./.workbench"))
        overrides: dict[str, object] = {}
        if uri := env.get("WORKBENCH_MLFLOW_TRACKING_URI"):
            overrides["mlflow_tracking_uri"] = uri
            overrides["mlflow_registry_uri"] = uri
        if uri := env.get("WORKBENCH_MLFLOW_REGISTRY_URI"):
            overrides["mlflow_registry_uri"] = uri
        if url := env.get("WORKBENCH_STATE_URL"):
            overrides["state_url"] = url
        if host := env.get("WORKBENCH_HOST"):
            overrides["host"] = host
        if port := env.get("WORKBENCH_API_PORT"):
            overrides["api_port"] = _port(port, "WORKBENCH_API_PORT")
        if port := env.get("WORKBENCH_ROUTER_PORT"):
            overrides["router_port"] = _port(port, "WORKBENCH_ROUTER_PORT")
        if port := env.get("WORKBENCH_ROUTER_GRPC_PORT"):
            overrides["router_grpc_port"] = (
                None if port.strip().lower() == "off" else _port(port, "WORKBENCH_ROUTER_GRPC_PORT")
            )
        tls = grpc_tls.from_values(
            env.get(grpc_tls.CERT_VARIABLE),
            env.get(grpc_tls.KEY_VARIABLE),
            env.get(grpc_tls.CLIENT_CA_VARIABLE),
        )
        if tls is not None:
            overrides["router_grpc_tls"] = tls
        if token_file := env.get("WORKBENCH_TOKEN_FILE"):
            overrides["token_file"] = Path(token_file).expanduser().resolve()
        if token := env.get("WORKBENCH_TOKEN"):
            overrides["token"] = token
        overrides["open_reads"] = _flag(env.get("WORKBENCH_OPEN_READS"))
        if (flag := env.get("WORKBENCH_REPLICA_FORKSERVER")) is not None:
            overrides["replica_forkserver"] = _flag(flag)
        if roots := env.get("WORKBENCH_ALLOWED_ROOTS"):
            overrides["allowed_roots"] = tuple(
                Path(r).expanduser().resolve() for r in roots.split(os.pathsep) if r
            )
        if url := env.get("WORKBENCH_URL"):
            overrides["api_url"] = url.rstrip("/")
        if backend := env.get("WORKBENCH_SERVING_BACKEND"):
            overrides["serving_backend"] = backend
        if address := env.get("WORKBENCH_RAY_ADDRESS"):
            overrides["ray_address"] = address.strip()
        if raw := env.get("WORKBENCH_RAY_NUM_CPUS"):
            overrides["ray_num_cpus"] = _cpus(raw, "WORKBENCH_RAY_NUM_CPUS") or None
        if raw := env.get("WORKBENCH_RAY_INGRESS_REPLICAS"):
            overrides["ray_ingress_replicas"] = _bounded_int(raw, "WORKBENCH_RAY_INGRESS_REPLICAS", 1, 32)
        if raw := env.get("WORKBENCH_RAY_INGRESS_CPUS"):
            overrides["ray_ingress_cpus"] = _cpus(raw, "WORKBENCH_RAY_INGRESS_CPUS")
        if raw := env.get("WORKBENCH_RAY_RECONCILE_S"):
            overrides["ray_reconcile_s"] = _seconds(raw, "WORKBENCH_RAY_RECONCILE_S", least=0.5, most=3600.0)
        if nice := env.get("WORKBENCH_BACKGROUND_NICE"):
            overrides["background_nice"] = _nice(nice)
        if dirs := env.get("WORKBENCH_RUNBOOKS_DIRS"):
            overrides["runbook_dirs"] = tuple(
                Path(d).expanduser().resolve() for d in dirs.split(os.pathsep) if d
            )
        if actor := env.get("WORKBENCH_ACTOR"):
            overrides["actor"] = actor.strip()[:200]
        if limit := env.get("WORKBENCH_MAX_UPLOAD_BYTES"):
            overrides["max_upload_bytes"] = _port_like_int(limit, "WORKBENCH_MAX_UPLOAD_BYTES")
        if port := env.get("WORKBENCH_DASHBOARD_PORT"):
            overrides["dashboard_port"] = _port(port, "WORKBENCH_DASHBOARD_PORT")
        if (flag := env.get("WORKBENCH_DASHBOARD")) is not None:
            overrides["dashboard"] = _flag(flag)
        if provider := env.get("WORKBENCH_DASHBOARD_OAUTH_PROVIDER"):
            overrides["dashboard_oauth_provider"] = provider.strip()
        if users := env.get("WORKBENCH_DASHBOARD_USERS"):
            overrides["dashboard_users"] = Path(users).expanduser()
        if raw := env.get("WORKBENCH_DASHBOARD_SESSION_S"):
            try:
                session_s = float(raw)
            except ValueError:
                session_s = -1.0
            if not 1.0 <= session_s <= 30 * 86_400.0:
                raise ValidationError(
                    f"WORKBENCH_DASHBOARD_SESSION_S must be between 1 s and 30 days, got {raw!r}",
                    variable="WORKBENCH_DASHBOARD_SESSION_S",
                )
            overrides["dashboard_session_s"] = session_s
        for variable, name in (
            ("WORKBENCH_HISTORY_RETENTION_S", "history_retention_s"),
            ("WORKBENCH_HISTORY_ROLLUP_RETENTION_S", "rollup_retention_s"),
            ("WORKBENCH_FEEDBACK_RETENTION_S", "feedback_retention_s"),
        ):
            if raw := env.get(variable):
                overrides[name] = _seconds(raw, variable)
        if repo := env.get("WORKBENCH_FEATURE_REPO"):
            overrides["feature_repo"] = Path(repo).expanduser().resolve()
        if online := env.get("WORKBENCH_FEATURE_ONLINE_STORE"):
            overrides["feature_online_store"] = online
        if raw := env.get("WORKBENCH_EXPERIMENT_LOOK_S"):
            overrides["experiment_look_s"] = _seconds(
                raw, "WORKBENCH_EXPERIMENT_LOOK_S", least=0.5, most=86_400.0
            )
        return cls.for_home(home, **overrides)

    @property
    def feature_repo_path(self) -> Path:
        return self.feature_repo or self.home / "features"

    def read_token(self) -> str | None:
        """The token a client presents: explicit first, else the file the control plane wrote."""
        if self.token:
            return self.token
        try:
            return self.token_file.read_text().strip() or None
        except OSError:
            return None


def _port_like_int(raw: str, name: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(f"{name} must be an integer, got {raw!r}", variable=name) from None
    if value <= 0:
        raise ValidationError(f"{name} must be positive, got {value}", variable=name)
    return value


def _seconds(raw: str, name: str, *, least: float = 60.0, most: float = 10 * 365 * 86_400.0) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(f"{name} must be a number of seconds, got {raw!r}", variable=name) from None
    if not (value >= least and value <= most):
        raise ValidationError(f"{name} must be between {least:g} s and {most:g} s, got {raw}", variable=name)
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once (for the CLI and notebooks)."""
    return Settings.from_env()
