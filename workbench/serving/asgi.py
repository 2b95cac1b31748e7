"""The few ASGI primitives the data plane needs, written directly: its budget is microseconds.

Starlette's routing and request objects cost tens of microseconds a call; the replica and the router
have a handful of fixed routes and only need to read a bounded body and send bytes.

Errors take two shapes. Open Inference Protocol routes (``/v2...``) answer as the protocol says,
``{"error": "<message>"}``, which OIP clients (``tritonclient``, KServe's) print; everything else answers
as the control plane does, ``{"error": {"type", "message", "details"}}``.
"""

from __future__ import annotations

import itertools
import os
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

import orjson

from workbench._version import __version__
from workbench.errors import BadRequestError, PayloadTooLargeError, WorkbenchError
from workbench.protocol import BINARY_HEADER_LENGTH

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: The OIP extensions the data plane implements, as ``GET /v2`` lists them.
OIP_EXTENSIONS = ("binary_tensor_data",)

#: The binary tensor data extension's header (lower-case, as ASGI gives it): the JSON header's length.
HEADER_LENGTH = BINARY_HEADER_LENGTH.encode()

JSON = b"application/json"
OCTET = b"application/octet-stream"
TEXT = b"text/plain; version=0.0.4; charset=utf-8"


class UnsupportedEncodingError(BadRequestError):
    """A request body in a Content-Encoding the data plane does not decode."""

    status_code = 415
    error_type = "unsupported_media_type"


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, refused early (by Content-Length) or as soon as it passes ``limit``."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = 0
            if declared > limit:
                raise PayloadTooLargeError(
                    f"request body of {declared} bytes exceeds the endpoint's limit of {limit} bytes",
                    limit=limit,
                )
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client disconnected")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(
                    f"request body exceeds the endpoint's limit of {limit} bytes", limit=limit
                )
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def decode_content(body: bytes, encoding: bytes | None, limit: int) -> bytes:
    """The body as sent before its ``Content-Encoding`` (gzip or deflate), refused past ``limit`` bytes.

    OIP clients compress only when asked (``tritonclient``'s ``request_compression_algorithm``); responses
    are never compressed, which HTTP allows whatever ``Accept-Encoding`` said.
    """
    if encoding is None:
        return body
    name = encoding.strip().lower()
    if name in (b"", b"identity"):
        return body
    if name not in (b"gzip", b"deflate", b"x-gzip"):
        raise UnsupportedEncodingError(
            f"unsupported Content-Encoding {encoding.decode('latin-1')!r}: send gzip, deflate or no encoding"
        )
    # 32 + MAX_WBITS: a zlib or a gzip stream, whichever the header says ("deflate" is zlib in HTTP).
    decompressor = zlib.decompressobj(32 + zlib.MAX_WBITS)
    try:
        plain = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequestError(f"the body is not valid {name.decode()} data: {exc}") from None
    if len(plain) > limit:
        raise PayloadTooLargeError(
            f"the decompressed request body exceeds the endpoint's limit of {limit} bytes", limit=limit
        )
    if not decompressor.eof:
        raise BadRequestError(f"the body's {name.decode()} data is truncated")
    return plain


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: bytes = JSON,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, payload: Any, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    await send_bytes(send, status, orjson.dumps(payload), headers=headers)


def error_payload(error_type: str, message: str, **details: Any) -> dict[str, Any]:
    """The same error shape as the control plane's: ``{"error": {"type", "message", "details"}}``."""
    return {"error": {"type": error_type, "message": message, "details": details}}


def is_oip(path: str) -> bool:
    """Whether ``path`` is an Open Inference Protocol route, whose errors take the protocol's shape."""
    return path.startswith("/v2") and (len(path) == 3 or path[3] == "/")


def server_metadata() -> dict[str, Any]:
    """OIP server metadata (``GET /v2``): the same from the router and from a replica."""
    return {"name": "workbench", "version": __version__, "extensions": list(OIP_EXTENSIONS)}


def error_body(path: str, error_type: str, message: str, **details: Any) -> dict[str, Any]:
    """An error in the shape the route's protocol uses (see the module docstring)."""
    if is_oip(path):
        return {"error": message}
    return error_payload(error_type, message, **details)


async def send_error(
    send: Send, path: str, exc: WorkbenchError, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    await send_json(
        send, exc.status_code, error_body(path, exc.error_type, exc.message, **exc.details), headers
    )


def request_ids() -> Iterator[str]:
    """Unique request ids without a syscall per request (``uuid4`` reads the OS's random source).

    A random per-process prefix and a counter: unique across processes and restarts for practical
    purposes, and an order of magnitude cheaper on the request path.
    """
    prefix = os.urandom(6).hex()
    return (f"{prefix}-{n:x}" for n in itertools.count(1))
