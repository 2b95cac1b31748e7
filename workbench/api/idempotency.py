"""``Idempotency-Key`` on changing calls: a repeated copy gets the first copy's answer instead of running.

ASGI middleware, so it sees the whole request and the route's whole answer without knowing the route:
every changing call (deploy, rollback, rollout actions, runbook runs, registrations) gets the same
guarantee. Only an authenticated call is looked up (the token is checked here first), so a key can
neither be replayed nor poisoned without the token; the caller (actor) is part of what must match.

A copy arriving while the first still runs (a double click) waits for its answer, up to ``WAIT_S``; a
deploy can take that long. Replayed answers carry ``Idempotent-Replayed: true``.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import orjson

from workbench.api.auth import bearer_matches
from workbench.protocol import ACTOR_HEADER, IDEMPOTENCY_HEADER, REPLAYED_HEADER
from workbench.store.idempotency import Claim, IdempotencyStore

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_KEY = re.compile(r"^[A-Za-z0-9._:\-]{8,200}$")
#: How long a second copy waits for the first copy's answer before it is told the first still runs.
WAIT_S = 120.0
_POLL_S = 0.05


def _error(status: int, error_type: str, message: str, details: dict[str, Any]) -> tuple[int, bytes]:
    return status, orjson.dumps({"error": {"type": error_type, "message": message, "details": details}})


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, *, token: str, store: Callable[[Scope], IdempotencyStore]) -> None:
        self.app = app
        self._token = token
        self._store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _CHANGING:
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value for name, value in scope.get("headers", [])}
        raw_key = headers.get(IDEMPOTENCY_HEADER)
        authorization = headers.get("authorization", b"").decode("latin-1")
        if raw_key is None or not bearer_matches(authorization, self._token):
            await self.app(scope, receive, send)  # no key, or the route's own auth answers 401
            return
        key = raw_key.decode("latin-1").strip()
        if not _KEY.match(key):
            await _send(
                send,
                *_error(
                    422,
                    "validation_error",
                    "Idempotency-Key must be 8 to 200 letters, digits or . _ : - (a UUID is a good key)",
                    {"header": IDEMPOTENCY_HEADER},
                ),
            )
            return
        body = await _read_body(receive)
        actor = headers.get(ACTOR_HEADER, b"").decode("utf-8", "replace").strip()[:200] or "api"
        path = scope.get("path", "")
        query = scope.get("query_string", b"")
        fingerprint = hashlib.sha256(
            b"\n".join([scope["method"].encode(), path.encode(), query, body])
        ).hexdigest()
        store = self._store(scope)
        claim = await self._claim(store, key, actor, scope["method"], path, fingerprint)
        if claim.mismatch:
            await _send(
                send,
                *_error(
                    422,
                    "validation_error",
                    "this Idempotency-Key was already used for a different request: use a new key per "
                    "action, and the same key only to repeat the same action",
                    {"header": IDEMPOTENCY_HEADER},
                ),
            )
            return
        if claim.running:
            await _send(
                send,
                *_error(
                    409,
                    "conflict",
                    f"the first request with this Idempotency-Key has not answered after {WAIT_S:.0f} s; "
                    "repeat it later to get its answer",
                    {"header": IDEMPOTENCY_HEADER},
                ),
            )
            return
        if claim.answer is not None:
            answer = claim.answer
            await _send(
                send,
                answer.status,
                answer.body,
                content_type=answer.content_type.encode(),
                extra=[(REPLAYED_HEADER.encode(), b"true")],
            )
            return
        await self._run(scope, body, send, store, key)

    async def _claim(
        self, store: IdempotencyStore, key: str, actor: str, method: str, path: str, fingerprint: str
    ) -> Claim:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while True:
            claim = await anyio.to_thread.run_sync(
                lambda: store.claim(key, actor=actor, method=method, path=path, fingerprint=fingerprint)
            )
            if not claim.running or loop.time() >= deadline:
                return claim
            await asyncio.sleep(_POLL_S)

    async def _run(self, scope: Scope, body: bytes, send: Send, store: IdempotencyStore, key: str) -> None:
        status = 500
        content_type = b"application/json"
        chunks: list[bytes] = []
        delivered = False

        async def replay_body() -> Message:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        content_type = value
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_body, capture)
        except BaseException:
            await anyio.to_thread.run_sync(lambda: store.release(key))
            raise
        answer = b"".join(chunks)
        await anyio.to_thread.run_sync(
            lambda: store.answer(key, status, answer, content_type.decode("latin-1"))
        )


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def _send(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: bytes = b"application/json",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
