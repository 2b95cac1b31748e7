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
        write_ready(config.ready_file, ready_info(port, None, None))
        log.info("router serving on %s:%d", config.host, port)

    serve_app(app, [sock], on_started=started, graceful_timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
