"""One HTTP exchange with an ASGI app, inside the process: how Ray deployments reuse the data plane's apps.

The local replica and router are ASGI apps behind uvicorn; on Ray, requests arrive as method calls (a
Ray handle) or from Ray's own HTTP proxy, and are handed to the same apps here, so both backends parse,
validate, batch, answer and log with one code path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from workbench.serving.asgi import Message, Receive, Scope

App = Callable[[Scope, Receive, Callable[[Message], Awaitable[None]]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]


def http_scope(method: str, path: str, headers: Sequence[tuple[bytes, bytes]], query: bytes = b"") -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": list(headers),
        "client": None,
        "server": None,
    }


async def exchange(app: App, scope: Scope, receive: Receive) -> tuple[int, Headers, bytes]:
    """Run ``app`` on one request; its status, headers and whole body."""
    started: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            started.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    if not started:
        return 500, [(b"content-type", b"application/json")], b'{"error": "no response"}'
    return int(started["status"]), list(started.get("headers", [])), b"".join(chunks)


async def call(
    app: App, method: str, path: str, headers: Sequence[tuple[bytes, bytes]], body: bytes
) -> tuple[int, Headers, bytes]:
    """One request whose body is already read (what a Ray handle call carries)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return await exchange(app, http_scope(method, path, headers), receive)
