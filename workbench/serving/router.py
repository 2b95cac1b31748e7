"""``python -m workbench.serving.router CONFIG``: the data plane's front door, until SIGTERM."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from workbench.serving.config import RouterConfig
from workbench.serving.process import bind_tcp, configure_logging, ready_info, serve_app, write_ready
from workbench.serving.router_app import RouterApp

log = logging.getLogger("workbench.router")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m workbench.serving.router CONFIG.json", file=sys.stderr)
        return 2
    configure_logging()
    config = RouterConfig.model_validate_json(Path(args[0]).read_bytes())
    token = config.token_file.read_text().strip()
    app = RouterApp(
        token=token,
        routes_file=config.routes_file,
        request_timeout=config.request_timeout_s,
        max_shadow_in_flight=config.max_shadow_in_flight,
        grpc_address=(config.host, config.grpc_port) if config.grpc_port is not None else None,
        grpc_tls=config.grpc_tls,
    )
    try:
        sock = bind_tcp(config.host, config.port)
    except OSError as exc:
        print(
            f"workbench-router-error: cannot listen on {config.host}:{config.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 2
    port = int(sock.getsockname()[1])

    def started() -> None:
        info = ready_info(port, None, None).model_copy(update={"grpc_port": app.grpc_port})
        write_ready(config.ready_file, info)
        tls = (
            ""
            if config.grpc_tls is None
            else " with mutual TLS"
            if config.grpc_tls.client_ca
            else " with TLS"
        )
        log.info("router serving on %s:%d (OIP gRPC: %s%s)", config.host, port, app.grpc_port or "off", tls)

    try:
        serve_app(app, [sock], on_started=started, graceful_timeout=10)
    except SystemExit:  # uvicorn's way of saying the start-up failed
        if app.startup_error is None:
            raise
    if app.startup_error is not None:
        print(f"workbench-router-error: {app.startup_error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
