"""Keep-alive connection pools from the router to its replicas, over Unix sockets where possible.

A minimal HTTP/1.1 client on asyncio protocols with httptools' response parser (the parser uvicorn
itself uses). The router only ever talks to Workbench replicas, so it needs no redirects, cookies,
compression or proxies; what it needs is to cost little per request, and aiohttp's general-purpose
client measured several times more CPU per request on this path.

A request that fails before any response byte arrived (a pooled connection the replica closed while
draining, a replica that just died) is retried once on another replica of the same version: inference
is idempotent, and this is what makes route changes and replica restarts drop no requests.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import httptools

from workbench.protocol import BINARY_HEADER_LENGTH, REQUEST_ID_HEADER, VERSION_HEADER
from workbench.serving.routes import Upstream

log = logging.getLogger("workbench.router")
_CLOSE_DELAY_S = 30.0
_MAX_IDLE_PER_UPSTREAM = 256
# inference-header-content-length: a response carrying binary tensor data (OIP) needs it to be read.
PASSED_HEADERS = frozenset(
    {b"content-type", *(h.encode() for h in (VERSION_HEADER, REQUEST_ID_HEADER, BINARY_HEADER_LENGTH))}
)


@dataclass
class UpstreamResponse:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]


class Upstreams(Protocol):
    """How the router reaches a version's replicas: HTTP connection pools here, Ray handles on Ray."""

    def sync(self, upstreams: Mapping[str, Upstream]) -> None: ...

    async def send(
        self, upstreams: tuple[Upstream, ...], method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> UpstreamResponse: ...

    async def close(self) -> None: ...


class UpstreamError(Exception):
    """No replica of the chosen version could answer."""


class _NoResponseError(ConnectionError):
    """The connection failed before any byte of the response: safe to retry elsewhere."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[UpstreamResponse] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._received = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, though they behave as one.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"malformed response from replica: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._received:
            self._fail(ConnectionError("replica closed the connection mid-response"))
        else:
            self._fail(_NoResponseError("replica closed the connection"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered in PASSED_HEADERS:
            self._headers.append((lowered, value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
            waiter.set_result(UpstreamResponse(self._parser.get_status_code(), body, self._headers))
        if not self._parser.should_keep_alive():
            self.close()

    # client side
    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(self, request: bytes) -> asyncio.Future[UpstreamResponse]:
        assert self.transport is not None
        self._headers = []
        self._body = []
        self._received = False
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Pool:
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.idle: deque[_Connection] = deque()
        self.in_flight = 0

    async def connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        if self.upstream.uds:
            _, protocol = await loop.create_unix_connection(_Connection, self.upstream.uds)
        else:
            _, protocol = await loop.create_connection(_Connection, self.upstream.host, self.upstream.port)
        return protocol

    async def request(self, request: bytes, timeout: float) -> UpstreamResponse:
        reused = False
        while self.idle:
            connection = self.idle.pop()
            if not connection.closed:
                reused = True
                break
        else:
            try:
                connection = await self.connect()
            except OSError as exc:
                raise _NoResponseError(f"cannot connect: {exc}") from exc
        loop = asyncio.get_running_loop()
        waiter = connection.send(request)
        timer = loop.call_later(timeout, _expire, waiter, connection)
        try:
            response = await waiter
        except _NoResponseError:
            connection.close()
            if reused:  # a stale pooled connection: one fresh try on the same replica
                return await self._fresh(request, timeout)
            raise
        except BaseException:
            connection.close()
            raise
        finally:
            timer.cancel()
        if not connection.closed and len(self.idle) < _MAX_IDLE_PER_UPSTREAM:
            self.idle.append(connection)
        return response

    async def _fresh(self, request: bytes, timeout: float) -> UpstreamResponse:
        try:
            connection = await self.connect()
        except OSError as exc:
            raise _NoResponseError(f"cannot connect: {exc}") from exc
        waiter = connection.send(request)
        timer = asyncio.get_running_loop().call_later(timeout, _expire, waiter, connection)
        try:
            response = await waiter
        except BaseException:
            connection.close()
            raise
        finally:
            timer.cancel()
        if not connection.closed:
            self.idle.append(connection)
        return response

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


def _expire(waiter: asyncio.Future[UpstreamResponse], connection: _Connection) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("the replica did not answer in time"))
    connection.close()


def encode_request(method: str, path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1\r\nhost: replica\r\ncontent-length: {len(body)}\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
    lines.append("\r\n")
    return "".join(lines).encode("latin-1") + body


class UpstreamPools:
    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._pools: dict[str, _Pool] = {}
        self._round_robin = itertools.count()

    def sync(self, upstreams: Mapping[str, Upstream]) -> None:
        """Open pools for new replicas; close pools of removed ones once their requests are done."""
        for replica_id, upstream in upstreams.items():
            current = self._pools.get(replica_id)
            if current is None or current.upstream != upstream:
                if current is not None:
                    self._retire(current)
                self._pools[replica_id] = _Pool(upstream)
        for replica_id in list(self._pools):
            if replica_id not in upstreams:
                self._retire(self._pools.pop(replica_id))

    def _retire(self, pool: _Pool) -> None:
        async def close_later() -> None:
            await asyncio.sleep(_CLOSE_DELAY_S)
            pool.close()

        try:
            asyncio.get_running_loop().create_task(close_later())
        except RuntimeError:  # no loop (start-up, tests): nothing can be in flight
            pool.close()

    def _order(self, upstreams: tuple[Upstream, ...]) -> list[_Pool]:
        pools = [self._pools[u.replica_id] for u in upstreams if u.replica_id in self._pools]
        if len(pools) > 1:
            start = next(self._round_robin) % len(pools)
            pools = pools[start:] + pools[:start]
            pools.sort(key=lambda p: p.in_flight)  # stable: round-robin among the least loaded
        return pools

    async def send(
        self, upstreams: tuple[Upstream, ...], method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> UpstreamResponse:
        pools = self._order(upstreams)
        if not pools:
            raise UpstreamError("no replica is serving this version")
        request = encode_request(method, path, body, headers)
        last: Exception | None = None
        for pool in pools[:2]:
            pool.in_flight += 1
            try:
                return await pool.request(request, self._timeout)
            except _NoResponseError as exc:
                last = exc
                log.info("replica %s failed before answering (%s)", pool.upstream.replica_id, exc)
            finally:
                pool.in_flight -= 1
        raise UpstreamError(f"replicas did not answer: {last}")

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
