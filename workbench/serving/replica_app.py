"""The replica's ASGI app: Open Inference Protocol v2 and MLflow's ``/invocations`` for one model version.

Request path: read the bounded body → decode and validate against the signature → queue for the
dynamic batcher → encode → respond with the version in ``x-workbench-model-version``. Telemetry is a
counter bump and one non-blocking hand-off to the prediction-log writer, after the response is sent.

OIP requests and responses may carry binary tensor data (``Inference-Header-Content-Length``): decoded into
the same :class:`Decoded` as JSON, so they are batched, counted and logged the same way. OIP routes answer
errors as ``{"error": "<message>"}`` (see :mod:`workbench.serving.asgi`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

from workbench.errors import NotFoundError, WorkbenchError
from workbench.protocol import (
    PROBE_HEADER,
    REQUEST_ID_HEADER,
    ROUTING_KEY_HEADER,
    SHADOW_HEADER,
    VERSION_HEADER,
)
from workbench.serving.asgi import (
    HEADER_LENGTH,
    JSON,
    OCTET,
    TEXT,
    Receive,
    Scope,
    Send,
    decode_content,
    error_body,
    header,
    read_body,
    request_ids,
    send_bytes,
    send_error,
    send_json,
    server_metadata,
)
from workbench.serving.batcher import Batcher, BatchResult, DynamicBatcher
from workbench.serving.codec import Decoded, decode_mlflow, decode_oip, encode_mlflow
from workbench.serving.codec.oip import encode_oip_response
from workbench.serving.codec.oip_binary import parse_header_length
from workbench.serving.config import ReplicaConfig
from workbench.serving.metrics import ReplicaMetrics
from workbench.serving.model import LoadedModel
from workbench.telemetry import PredictionLogWriter
from workbench.telemetry.batch_record import BatchRecord

log = logging.getLogger("workbench.replica")

SHADOW = SHADOW_HEADER.encode()
#: The control plane's own requests (health gates, scoring reference data): answered and counted in the
#: metrics, never written to the prediction log, so no analysis or monitor mistakes them for traffic.
PROBE = PROBE_HEADER.encode()
REQUEST_ID = REQUEST_ID_HEADER.encode()
#: The unit an experiment assigns by, logged with the request (the router checks its length).
ROUTING_KEY = ROUTING_KEY_HEADER.encode()
MAX_KEY_LENGTH = 200
#: Batches whose log line still waits for a caller to finish; more than this means a caller never will.
MAX_OPEN_BATCH_LINES = 1024


class ReplicaApp:
    def __init__(
        self,
        config: ReplicaConfig,
        model: LoadedModel,
        *,
        writer: PredictionLogWriter | None = None,
        batcher: Callable[..., Batcher[Decoded]] = DynamicBatcher,
    ) -> None:
        self.config = config
        self.model = model
        self.writer = writer
        self.version = str(config.version)
        self.version_header = (VERSION_HEADER.encode(), self.version.encode())
        self.names = {config.endpoint, config.model}
        self.metrics = ReplicaMetrics(config.endpoint, self.version)
        self.batcher: Batcher[Decoded] = batcher(
            model.runner.run,
            max_batch_size=config.max_batch_size,
            max_wait=config.max_wait_ms / 1000.0,
            on_batch=self._on_batch,
        )
        self.ready = False
        self.draining = False
        self._request_ids = request_ids()
        self._batch_lines: dict[int, BatchRecord] = {}
        self.metrics.gauge(
            "workbench_replica_queue_depth", "Requests waiting for a batch", lambda: self.batcher.queue_depth
        )
        if writer is not None:
            self.metrics.gauge(
                "workbench_replica_prediction_log_dropped",
                "Prediction-log records dropped (overload or I/O errors)",
                lambda: float(writer.stats.dropped_overload + writer.stats.dropped_io_error),
            )
        attach_metrics = getattr(model.runner, "attach_metrics", None)
        if attach_metrics is not None:  # a runner that fetches features counts its lookups
            attach_metrics(self.metrics.registry, config.endpoint, self.version)
        if model.device.startswith("cuda"):
            self.metrics.gauge(
                "workbench_replica_gpu_memory_bytes", "CUDA memory allocated", _gpu_memory(model.device)
            )

    # -------------------------------------------------------------- ASGI
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        try:
            if method == "POST":
                await self._post(scope, receive, send, path)
            elif method == "GET":
                await self._get(send, path)
            else:
                await send_json(
                    send, 405, error_body(path, "method_not_allowed", f"{method} is not allowed on {path}")
                )
        except WorkbenchError as exc:
            await send_error(send, path, exc, [self.version_header])

    async def _post(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        parts = path.strip("/").split("/")
        if path in ("/invocations",) or (
            len(parts) == 3 and parts[0] == "endpoints" and parts[2] == "invocations"
        ):
            if len(parts) == 3:
                self._check_name(parts[1])
            await self._infer(scope, receive, send, oip=False)
            return
        if len(parts) >= 4 and parts[0] == "v2" and parts[1] == "models" and parts[-1] == "infer":
            self._check_model_path(parts)
            await self._infer(scope, receive, send, oip=True)
            return
        raise NotFoundError(f"no route for POST {path}")

    async def _get(self, send: Send, path: str) -> None:
        if path in ("/v2/health/live", "/ping", "/health"):
            await send_json(send, 200, {"live": True})
        elif path == "/v2/health/ready":
            ready = self.ready and not self.draining
            await send_json(
                send, 200 if ready else 503, {"ready": ready, "replica_id": self.config.replica_id}
            )
        elif path == "/metrics":
            await send_bytes(send, 200, self.metrics.exposition(), content_type=TEXT)
        elif path == "/v2":
            await send_json(send, 200, server_metadata())
        elif path.startswith("/v2/models/"):
            parts = path.strip("/").split("/")
            if parts[-1] == "ready":
                self._check_model_path(parts)
                ready = self.ready and not self.draining
                await send_json(send, 200 if ready else 503, {"name": parts[2], "ready": ready})
            else:
                self._check_model_path([*parts, "metadata"])
                await send_json(send, 200, self.metadata(parts[2]), [self.version_header])
        else:
            raise NotFoundError(f"no route for GET {path}")

    def _check_name(self, name: str) -> None:
        if name not in self.names:
            raise NotFoundError(f"unknown model or endpoint {name!r}", known=sorted(self.names))

    def _check_model_path(self, parts: list[str]) -> None:
        """``v2/models/{name}[/versions/{v}]/<action>``: the name and version must be this replica's."""
        if len(parts) not in (4, 6) or (len(parts) == 6 and parts[3] != "versions"):
            raise NotFoundError(f"no route for /{'/'.join(parts)}")
        self._check_name(parts[2])
        if len(parts) == 6 and parts[4] != self.version:
            raise NotFoundError(
                f"{parts[2]!r} has no version {parts[4]!r} here (this replica serves version {self.version})"
            )

    # ------------------------------------------------------------- infer
    async def _infer(self, scope: Scope, receive: Receive, send: Send, *, oip: bool) -> None:
        received = time.perf_counter()
        shadow = header(scope, SHADOW) is not None
        probe = header(scope, PROBE) is not None
        request_id_raw = header(scope, REQUEST_ID)
        request_id = request_id_raw.decode("latin-1") if request_id_raw else ""
        key_raw = header(scope, ROUTING_KEY)
        key = key_raw[:MAX_KEY_LENGTH].decode("latin-1") if key_raw else None
        status = 200
        decoded: Decoded | None = None
        result = None
        self.batcher.arriving()
        try:
            try:
                limit = self.config.payload_limit_bytes
                body = await read_body(scope, receive, limit)
                encoding = header(scope, b"content-encoding")
                if encoding is not None:
                    body = decode_content(body, encoding, limit)
                if oip:
                    header_length = parse_header_length(header(scope, HEADER_LENGTH))
                    decoded = decode_oip(body, self.model.schema, header_length=header_length)
                else:
                    decoded = decode_mlflow(body, self.model.schema)
            finally:
                self.batcher.arrived()
            request_id = request_id or decoded.request_id or next(self._request_ids)
            result = await self.batcher.submit(decoded, decoded.rows)
            headers = [self.version_header, (REQUEST_ID, request_id.encode())]
            content_type = JSON
            if oip:
                payload, json_length = encode_oip_response(
                    model_name=self.config.endpoint,
                    model_version=self.version,
                    request_id=decoded.request_id,
                    outputs=result.outputs,
                    selected=decoded.outputs,
                    binary=decoded.binary_outputs,
                )
                if json_length is not None:
                    content_type = OCTET
                    headers.append((HEADER_LENGTH, str(json_length).encode()))
            else:
                payload = encode_mlflow(result.outputs)
            await send_bytes(send, 200, payload, content_type=content_type, headers=headers)
        except WorkbenchError as exc:
            status = exc.status_code
            raise
        except Exception as exc:
            status = 500
            log.exception("inference failed")
            await send_json(
                send,
                500,
                error_body(scope["path"], "inference_error", f"{type(exc).__name__}: {exc}"),
                [self.version_header],
            )
        finally:
            self._record(received, status, shadow, request_id, decoded, result, logged=not probe, key=key)

    def _record(
        self,
        received: float,
        status: int,
        shadow: bool,
        request_id: str,
        decoded: Decoded | None,
        result: BatchResult | None,
        *,
        logged: bool = True,
        key: str | None = None,
    ) -> None:
        elapsed = time.perf_counter() - received
        self.metrics.requests(status, shadow).inc()
        if status == 200:
            self.metrics.latency.observe(elapsed)
            if result is not None:
                self.metrics.queue.observe(result.queue_seconds)
        if self.writer is None:
            return
        if result is not None and decoded is not None:
            self._record_in_batch(
                elapsed, status, shadow, request_id, decoded, result, logged=logged, key=key
            )
            return
        if not logged:
            return
        # Refused before the model ran: no batch, no inputs, no outputs.
        refused: dict[str, Any] = {
            "ts": time.time(),
            "endpoint": self.config.endpoint,
            "model": self.config.model,
            "version": self.config.version,
            "replica": self.config.replica_id,
            "request_id": request_id,
            "status": status,
            "shadow": shadow,
            "rows": decoded.rows if decoded is not None else 0,
            "latency_ms": round(elapsed * 1000, 4),
        }
        if key is not None:
            refused["key"] = key
        self.writer.log(refused)

    def _record_in_batch(
        self,
        elapsed: float,
        status: int,
        shadow: bool,
        request_id: str,
        decoded: Decoded,
        result: BatchResult,
        *,
        logged: bool,
        key: str | None = None,
    ) -> None:
        """Add a request to its batch's log line, and hand the line over once the batch is complete."""
        assert self.writer is not None
        line = self._batch_lines.get(result.batch_id)
        if line is None:
            rate = self.config.log_sample_rate
            head: dict[str, Any] = {
                "endpoint": self.config.endpoint,
                "model": self.config.model,
                "version": self.config.version,
                "replica": self.config.replica_id,
                "inference_ms": round(result.inference_seconds * 1000, 4),
                "batch_size": result.batch_size,
            }
            if result.lookup_ms is not None:
                head["lookup_ms"] = result.lookup_ms
            line = BatchRecord(
                head,
                result.batch_callers,
                sampled=rate >= 1.0 or random.random() < rate,
            )
            if len(self._batch_lines) >= MAX_OPEN_BATCH_LINES:
                # Callers that never finished (cannot happen short of a bug): drop the oldest line.
                self._batch_lines.pop(next(iter(self._batch_lines)))
            self._batch_lines[result.batch_id] = line
        if logged:
            complete = line.add(
                time.time(),
                request_id,
                status,
                shadow,
                decoded.rows,
                round(elapsed * 1000, 4),
                round(result.queue_seconds * 1000, 4),
                result.inputs
                if result.inputs is not None
                else decoded.columns
                if decoded.columns is not None
                else {"matrix": decoded.matrix},
                result.outputs,
                key,
                result.lookup,
            )
        else:
            complete = line.skip()
        if line.expected <= 0 or complete is not None:
            del self._batch_lines[result.batch_id]
        if complete is not None:
            self.writer.log(complete)

    def _on_batch(self, requests: int, rows: int, seconds: float) -> None:
        self.metrics.batch_size.observe(rows)
        self.metrics.inference.observe(seconds)
        self.metrics.rows.inc(rows)

    # ---------------------------------------------------------- metadata
    def metadata(self, name: str) -> dict[str, Any]:
        described = self.model.schema.oip_metadata()
        names = self.model.runner.output_names
        outputs = described["outputs"]
        if len(outputs) == len(names):
            outputs = [{**spec, "name": out} for spec, out in zip(outputs, names, strict=True)]
        else:
            outputs = [{"name": out, "datatype": "FP32", "shape": [-1]} for out in names]
        return {
            "name": name,
            "versions": [self.version],
            # The names KServe and Triton use, so their clients recognise the runtime.
            "platform": {"pytorch": "pytorch", "onnx": "onnxruntime_onnx"}.get(self.model.flavor, "mlflow"),
            "inputs": described["inputs"],
            "outputs": outputs,
            "parameters": {
                "model": self.config.model,
                "endpoint": self.config.endpoint,
                "replica_id": self.config.replica_id,
                "device": self.model.device,
                "flavor": self.model.flavor,
                "max_batch_size": self.config.max_batch_size,
                "max_wait_ms": self.config.max_wait_ms,
                **self.model.details,
            },
        }

    # ---------------------------------------------------------- lifespan
    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.batcher.start()
                if self.writer is not None:
                    self.writer.start()
                self.ready = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.draining = True
                await self.batcher.close()
                if self.writer is not None:
                    self.writer.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _gpu_memory(device: str) -> Callable[[], float]:
    def read() -> float:
        import torch

        return float(torch.cuda.memory_allocated(torch.device(device)))

    return read
