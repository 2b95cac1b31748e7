"""Keep-alive connection pools to replicas, one per replica, over Unix sockets where possible.

A request that fails before any response byte arrived (a pooled connection the replica closed while
draining, a replica that just died) is retried once on another replica of the same version: inference
is idempotent, and this is what makes route changes and replica restarts drop no requests.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from workbench.serving.routes import Upstream

log = logging.getLogger("workbench.router")
_CLOSE_DELAY_S = 30.0


@dataclass
class UpstreamResponse:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]


class UpstreamError(Exception):
    """No replica of the chosen version could answer."""


_PASSED_HEADERS = ("content-type", "x-workbench-model-version", "x-request-id")


class _Pool:
    def __init__(self, upstream: Upstream, timeout: float) -> None:
        self.upstream = upstream
        connector: aiohttp.BaseConnector
        if upstream.uds:
            connector = aiohttp.UnixConnector(path=upstream.uds, limit=0, keepalive_timeout=60)
        else:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
        self.base = "http://replica" if upstream.uds else f"http://{upstream.host}:{upstream.port}"
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=timeout),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )
        self.in_flight = 0


class UpstreamPools:
    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._pools: dict[str, _Pool] = {}
        self._round_robin = itertools.count()

    def sync(self, upstreams: Mapping[str, Upstream]) -> None:
        """Open pools for new replicas; close pools of removed ones after their in-flight requests."""
        for replica_id, upstream in upstreams.items():
            current = self._pools.get(replica_id)
            if current is None or current.upstream != upstream:
                if current is not None:
                    self._retire(current)
                self._pools[replica_id] = _Pool(upstream, self._timeout)
        for replica_id in list(self._pools):
            if replica_id not in upstreams:
                self._retire(self._pools.pop(replica_id))

    def _retire(self, pool: _Pool) -> None:
        async def close_later() -> None:
            await asyncio.sleep(_CLOSE_DELAY_S)
            await pool.session.close()

        asyncio.get_running_loop().create_task(close_later())

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
        attempts = pools[:2] if len(pools) > 1 else [pools[0], pools[0]]
        last: Exception | None = None
        for pool in attempts:
            pool.in_flight += 1
            try:
                async with pool.session.request(
                    method, pool.base + path, data=body, headers=headers
                ) as response:
                    payload = await response.read()
                    passed = [
                        (name.encode(), value.encode())
                        for name in _PASSED_HEADERS
                        if (value := response.headers.get(name)) is not None
                    ]
                    return UpstreamResponse(response.status, payload, passed)
            except (aiohttp.ClientConnectionError, aiohttp.ServerDisconnectedError) as exc:
                last = exc
                log.info("replica %s failed before answering (%s); retrying", pool.upstream.replica_id, exc)
            finally:
                pool.in_flight -= 1
        raise UpstreamError(f"replicas did not answer: {last}")

    async def close(self) -> None:
        for pool in self._pools.values():
            await pool.session.close()
        self._pools.clear()
