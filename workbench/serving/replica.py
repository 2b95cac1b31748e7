"""``python -m workbench.serving.replica CONFIG``: one model version, served until SIGTERM.

Exit codes tell the supervisor what happened before serving started: 2 for a configuration it must
not retry (no such device, unreadable model), 1 for anything else.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.serving.config import ReplicaConfig
from workbench.serving.process import (
    bind_tcp,
    bind_unix,
    configure_logging,
    ready_info,
    serve_app,
    write_ready,
)

log = logging.getLogger("workbench.replica")
EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m workbench.serving.replica CONFIG.json", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging()
    config = ReplicaConfig.model_validate_json(Path(args[0]).read_bytes())
    from workbench.serving.device import local_inventory, onnx_inventory, select_device
    from workbench.serving.model import load_model, serving_flavor, warm_up

    try:
        # Ask the runtime that will serve: an ONNX replica must not import torch only to count GPUs.
        onnx = serving_flavor(config.model_dir) == "onnx"
        device = select_device(config.device, onnx_inventory() if onnx else local_inventory())
        model = load_model(config.model_dir, device, threads=config.threads, torchscript=config.torchscript)
        warm_up(model, sorted({1, config.max_batch_size}))
        if config.features is not None:
            from workbench.features.replica import attach_lookup

            assert config.feature_repo is not None
            model = attach_lookup(model, config.features, config.feature_repo)
    except Exception as exc:  # a model that cannot load or run its warm-up must never get traffic
        message = exc.message if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"
        print(f"workbench-replica-error: {message}", file=sys.stderr, flush=True)
        return EXIT_CONFIG

    from workbench.serving.replica_app import ReplicaApp
    from workbench.telemetry import PredictionLogWriter

    writer = None
    if config.prediction_log_dir is not None:
        writer = PredictionLogWriter(config.prediction_log_dir, writer_id=config.replica_id)
    app = ReplicaApp(config, model, writer=writer)
    sockets = [bind_tcp(config.host, config.port)]
    if config.uds is not None:
        sockets.append(bind_unix(config.uds))
    port = int(sockets[0].getsockname()[1])

    def started() -> None:
        write_ready(config.ready_file, ready_info(port, config.uds, device))
        log.info(
            "replica %s serving %s/v%s on port %d", config.replica_id, config.model, config.version, port
        )

    serve_app(app, sockets, on_started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
