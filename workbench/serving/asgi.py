"""The few ASGI primitives the data plane needs, written directly: its budget is microseconds.

Starlette's routing and request objects cost tens of microseconds a call; the replica and the router
have a handful of fixed routes and only need to read a bounded body and send bytes.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

import orjson

from workbench.errors import PayloadTooLargeError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
TEXT = b"text/plain; version=0.0.4; charset=utf-8"


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


def request_ids() -> Iterator[str]:
    """Unique request ids without a syscall per request (``uuid4`` reads the OS's random source).

    A random per-process prefix and a counter: unique across processes and restarts for practical
    purposes, and an order of magnitude cheaper on the request path.
    """
    prefix = os.urandom(6).hex()
    return (f"{prefix}-{n:x}" for n in itertools.count(1))
