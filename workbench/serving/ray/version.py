"""One model version as a Ray Serve deployment: the local replica's app, batched by ``@serve.batch``.

Each Ray replica loads and warms the model as a local replica does (a model that cannot must never get
traffic: the constructor raises and Ray reports the deployment as failed, with the reason), writes its
own prediction-log segments beside the local replicas' (one writer per replica, no collector to cross),
and answers the ingress's calls with the same bytes a local replica sends over HTTP.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ray import serve

from workbench.serving.config import ReplicaConfig
from workbench.serving.ray.batching import ServeBatcher
from workbench.serving.ray.inprocess import Headers, call
from workbench.serving.ray.serve_config import VERSION_DEPLOYMENT, VersionArgs

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class VersionServer:
    def __init__(self, args: dict[str, Any]) -> None:
        from workbench.serving.device import local_inventory, onnx_inventory, select_device
        from workbench.serving.model import load_model, serving_flavor, warm_up
        from workbench.serving.replica_app import ReplicaApp
        from workbench.telemetry import PredictionLogWriter

        version = VersionArgs.model_validate(args)
        context = serve.get_replica_context()
        # Unique per Ray replica and stable in its log's file names.
        replica_id = _UNSAFE.sub("-", f"{version.app}.{context.replica_id.unique_id}")
        model_dir = Path(version.model_dir)
        onnx = serving_flavor(model_dir) == "onnx"
        device = select_device(version.device, onnx_inventory() if onnx else local_inventory())
        model = load_model(model_dir, device, threads=version.threads, torchscript=version.torchscript)
        warm_up(model, sorted({1, version.max_batch_size}))
        if version.features is not None and version.feature_repo is not None:
            from workbench.features.replica import attach_lookup

            model = attach_lookup(model, version.features, Path(version.feature_repo))
        # The local replica's config from the same options; no sockets, no ready file, its log apart.
        options = version.model_dump(exclude={"app", "model_dir", "prediction_log_dir", "feature_repo"})
        config = ReplicaConfig(
            replica_id=replica_id, model_dir=model_dir, ready_file=Path("/dev/null"), **options
        )
        self.writer = None
        if version.prediction_log_dir is not None:
            self.writer = PredictionLogWriter(Path(version.prediction_log_dir), writer_id=replica_id)
            self.writer.start()
        self.app = ReplicaApp(config, model, writer=self.writer, batcher=ServeBatcher)
        self.app.ready = True

    async def handle(
        self, method: str, path: str, headers: Headers, body: bytes
    ) -> tuple[int, Headers, bytes]:
        """One request, as the ingress forwards it; answered as a local replica answers it over HTTP."""
        return await call(self.app, method, path, headers, body)

    def check_health(self) -> None:
        if not self.app.ready:
            raise RuntimeError("replica is not ready")

    def __del__(self) -> None:
        # Ray's graceful shutdown: requests in flight have finished; what they logged must reach disk.
        writer = getattr(self, "writer", None)
        if writer is not None:
            writer.close()


VersionDeployment = serve.deployment(name=VERSION_DEPLOYMENT)(VersionServer)


def version_app(args: dict[str, Any]) -> Any:
    """Ray Serve's application builder (``import_path`` in the config)."""
    return VersionDeployment.bind(args)
