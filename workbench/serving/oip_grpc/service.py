"""``inference.GRPCInferenceService`` on the router, beside its HTTP port, on the same event loop.

Every RPC goes through :meth:`RouterApp.route`, the path HTTP requests take: the same version choice
(``model_version``, else the ``x-workbench-version`` metadata, else the ``x-workbench-routing-key``
sticky key, else the weights), the same replica pools, shadows, metrics (``protocol="grpc"``) and
prediction log. Metadata plays the part of headers both ways: the router reads the same names from the
call's metadata, and sends the replica's ``x-*`` headers back as trailing metadata (which version
answered, the request id). Errors carry the HTTP answer's message with the matching gRPC status code.

Only the protocol's six RPCs are served; Triton's extensions (model config, statistics, repository
control, shared memory) answer UNIMPLEMENTED, as gRPC does for any method a server does not have.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import grpc
import orjson

from workbench.errors import WorkbenchError
from workbench.grpc_tls import GrpcTls, server_credentials
from workbench.serving.asgi import server_metadata
from workbench.serving.codec.oip_binary import parse_header_length
from workbench.serving.oip_grpc import messages, tensors

if TYPE_CHECKING:
    from typing import TypeAlias

    from workbench.serving.router_app import Routed, RouterApp

    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

log = logging.getLogger("workbench.router.grpc")

#: What grpcio accepts before the endpoint's own payload limit is checked (:func:`tensors.check_size`,
#: then :meth:`RouterApp.route`): 64 MiB. An endpoint allowing more takes larger requests over HTTP.
MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024
#: RPCs handled at once; more wait in gRPC's queue (each holds a request and its translation in memory).
MAX_CONCURRENT_RPCS: Final = 1024
HEADER_LENGTH: Final = b"inference-header-content-length"

_STATUS: Final[dict[int, grpc.StatusCode]] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def status_code(http_status: int) -> grpc.StatusCode:
    """The gRPC status an HTTP answer's status means (the mapping gRPC's own HTTP gateway uses)."""
    return _STATUS.get(
        http_status, grpc.StatusCode.INTERNAL if http_status >= 500 else grpc.StatusCode.UNKNOWN
    )


def _error_message(body: bytes) -> str:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")[:2000]
    if isinstance(document, dict):
        error = document.get("error")
        if isinstance(error, str):
            return error
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return str(document)[:2000]


class InferenceService:
    """The servicer: each RPC becomes an HTTP-shaped request through the router's own path."""

    def __init__(self, router: RouterApp) -> None:
        self.router = router

    # ------------------------------------------------------------------ plumbing
    async def _route(
        self,
        context: Context,
        method: str,
        path: str,
        body: bytes = b"",
        extra: dict[str, str] | None = None,
    ) -> Routed:
        metadata = {key.encode(): value.encode("latin-1") for key, value in _text_metadata(context)}
        passed = {
            name.decode(): value.decode("latin-1") for name, value in metadata.items() if name in _PASSED
        }
        passed.update(extra or {})

        async def read(limit: int) -> bytes:
            if len(body) > limit:
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"request of {len(body)} bytes exceeds the endpoint's limit of {limit} bytes",
                )
            return body

        try:
            return await self.router.route(method, path, metadata.get, passed, read, protocol="grpc")
        except WorkbenchError as exc:
            await context.abort(status_code(exc.status_code), exc.message)
            raise  # unreachable: abort raises

    async def _answer(self, context: Context, routed: Routed) -> None:
        """The replica's ``x-*`` headers as trailing metadata (they travel with the status, so they cost no
        extra send: initial metadata was 8 % of the router's CPU under load), or an abort with its error."""
        context.set_trailing_metadata(
            [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in routed.headers
                if name.startswith(b"x-")
            ]
        )
        if routed.status != 200:
            self.router.settle(routed)
            await context.abort(status_code(routed.status), _error_message(routed.body))

    # ------------------------------------------------------------------ RPCs
    async def server_live(self, request: Any, context: Context) -> Any:
        return messages.ServerLiveResponse(live=True)

    async def server_ready(self, request: Any, context: Context) -> Any:
        return messages.ServerReadyResponse(ready=True)

    async def server_metadata(self, request: Any, context: Context) -> Any:
        return messages.ServerMetadataResponse(**server_metadata())

    async def model_ready(self, request: Any, context: Context) -> Any:
        """Not ready (rather than an error) for an endpoint or version the router does not serve, as HTTP."""
        try:
            routed = await self.router.route(
                "GET",
                _model_path(request.name, request.version, "ready"),
                _no_metadata,
                {},
                _no_body,
                protocol="grpc",
            )
        except WorkbenchError:
            return messages.ModelReadyResponse(ready=False)
        self.router.settle(routed)
        return messages.ModelReadyResponse(ready=routed.status == 200)

    async def model_metadata(self, request: Any, context: Context) -> Any:
        routed = await self._route(context, "GET", _model_path(request.name, request.version))
        await self._answer(context, routed)
        self.router.settle(routed)
        return tensors.metadata_response(orjson.loads(routed.body))

    async def model_infer(self, request: Any, context: Context) -> Any:
        try:
            routes = self.router.table.endpoints.get(request.model_name)
            if routes is not None:
                tensors.check_size(request, routes.payload_limit_bytes)
            body, header_length = tensors.request_body(request)
        except WorkbenchError as exc:
            await context.abort(status_code(exc.status_code), exc.message)
            raise  # unreachable: abort raises
        extra = {"content-type": "application/octet-stream", HEADER_LENGTH.decode(): str(header_length)}
        path = _model_path(request.model_name, request.model_version, "infer")
        routed = await self._route(context, "POST", path, body, extra)
        await self._answer(context, routed)
        length = next((value for name, value in routed.headers if name == HEADER_LENGTH), None)
        try:
            response = tensors.infer_response(routed.body, parse_header_length(length))
        except (ValueError, KeyError, TypeError, WorkbenchError) as exc:
            log.error("replica answer to %s could not be translated: %s", path, exc)
            routed.status = 500  # counted as what the client got
            self.router.settle(routed)
            await context.abort(grpc.StatusCode.INTERNAL, f"the replica's answer could not be read: {exc}")
            raise  # unreachable: abort raises
        self.router.settle(routed)
        return response


_PASSED: Final = frozenset({b"x-workbench-routing-key"})


def _text_metadata(context: Context) -> list[tuple[str, str]]:
    """Invocation metadata, binary (``-bin``) entries left out: routing reads text values only."""
    return [(key, value) for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)]


def _no_metadata(name: bytes) -> bytes | None:
    return None


async def _no_body(limit: int) -> bytes:
    return b""


def _model_path(name: str, version: str, action: str | None = None) -> str:
    path = f"/v2/models/{name}"
    if version:
        path += f"/versions/{version}"
    return f"{path}/{action}" if action else path


def _unary(
    handler: Callable[[Any, Context], Awaitable[Any]], request_type: str
) -> grpc.RpcMethodHandler[Any, Any]:
    request_class = messages.message(request_type)
    return grpc.unary_unary_rpc_method_handler(
        handler,
        request_deserializer=request_class.FromString,
        response_serializer=lambda message: message.SerializeToString(),
    )


def handler(router: RouterApp) -> grpc.GenericRpcHandler:
    service = InferenceService(router)
    methods = {
        "ServerLive": service.server_live,
        "ServerReady": service.server_ready,
        "ServerMetadata": service.server_metadata,
        "ModelReady": service.model_ready,
        "ModelMetadata": service.model_metadata,
        "ModelInfer": service.model_infer,
    }
    return grpc.method_handlers_generic_handler(
        messages.SERVICE,
        {name: _unary(method, messages.RPCS[name][0]) for name, method in methods.items()},
    )


async def start(
    router: RouterApp, host: str, port: int, *, tls: GrpcTls | None = None
) -> tuple[grpc.aio.Server, int]:
    """A started gRPC server for ``router`` on ``host:port`` (0: any free port), and the port it bound;
    with ``tls``, a TLS port only (no plaintext beside it).

    Raises OSError when the address cannot be bound or the TLS files cannot be used, so the router refuses
    to start rather than serve HTTP alone while its gRPC address is taken or its TLS broken.
    """
    credentials = None
    if tls is not None:
        try:
            credentials = server_credentials(tls)
        except WorkbenchError as exc:
            raise OSError(exc.message) from None
    server = grpc.aio.server(
        maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", 4 * MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    server.add_generic_rpc_handlers((handler(router),))
    try:
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise OSError(f"cannot listen for gRPC on {host}:{port}: {exc}") from None
    if bound == 0:
        raise OSError(f"cannot listen for gRPC on {host}:{port}: the address is in use or not available")
    await server.start()
    log.info("OIP gRPC on %s:%d", host, bound)
    return server, bound
