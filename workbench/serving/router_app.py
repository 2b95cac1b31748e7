"""The router's ASGI app: picks a version per request, forwards to a replica, mirrors to shadows.

Version choice, in order: the version in the URL (``/v2/models/{e}/versions/{v}/infer``), the
``x-workbench-version`` header, a sticky key (``x-workbench-routing-key``: same key, same version while
weights stand), else a weighted random draw. Shadow copies are fired after the primary is sent and
never awaited by it; their number in flight is capped and overflow is counted, not queued.

Routes are replaced whole by the control plane (``PUT /-/routes``) and swapped atomically: a request
keeps the table it started with. The table is persisted, so a restarted router serves the last routes
even while the control plane is down.

Open Inference Protocol: the router answers server metadata (``GET /v2``), health and an endpoint's
readiness itself, and forwards model metadata (to the version in the path, else the one taking the most
traffic; ``versions`` lists every version the endpoint serves) and version readiness. Bodies pass through
untouched, binary tensor data included (its ``Inference-Header-Content-Length`` header both ways).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import ValidationError as PydanticValidationError

from workbench.errors import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    UnavailableError,
    WorkbenchError,
    describe_validation_errors,
)
from workbench.grpc_tls import GrpcTls
from workbench.protocol import (
    PROBE_HEADER,
    REQUEST_ID_HEADER,
    ROUTING_KEY_HEADER,
    SHADOW_HEADER,
    VERSION_SELECT_HEADER,
)
from workbench.serving import replica_metrics
from workbench.serving.asgi import (
    HEADER_LENGTH,
    TEXT,
    Receive,
    Scope,
    Send,
    error_body,
    error_payload,
    header,
    read_body,
    request_ids,
    send_bytes,
    send_error,
    send_json,
    server_metadata,
)
from workbench.serving.live_concurrency import LiveConcurrency
from workbench.serving.metrics import LATENCY_BUCKETS
from workbench.serving.routes import (
    EndpointRoutes,
    RouteTable,
    ShadowRoute,
    Upstream,
    VersionRoute,
    choose_sticky,
    choose_weighted,
    find_version,
    primary_version,
    served_versions,
    should_mirror,
)
from workbench.serving.upstreams import UpstreamError, UpstreamPools, Upstreams

log = logging.getLogger("workbench.router")

VERSION_SELECT = VERSION_SELECT_HEADER.encode()
ROUTING_KEY = ROUTING_KEY_HEADER.encode()
REQUEST_ID = REQUEST_ID_HEADER.encode()
PROBE = PROBE_HEADER.encode()
ADMIN_LIMIT = 4 * 1024 * 1024
#: Request headers a replica needs to read the body as sent (binary tensor data, compression).
#: The routing key goes on too: the replica logs it, which is how an experiment learns its units.
FORWARDED_HEADERS = frozenset({b"content-type", b"content-encoding", HEADER_LENGTH, ROUTING_KEY})
MAX_KEY_LENGTH = 200


#: The status counted for a request its client abandoned before the answer (nginx's convention).
CLIENT_CLOSED = 499


class RouterMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "workbench_router_requests",
            "Requests through the router, by the transport that brought them (http, grpc)",
            ["endpoint", "version", "status", "protocol"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "workbench_router_latency_seconds",
            "Time in the router, upstream included",
            ["endpoint", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.shadows = Counter(
            "workbench_router_shadow_requests",
            "Mirrored requests by outcome (sent, failed; dropped: over the router's cap; shed: the shadow had "
            "as many in flight as the live version had lately)",
            ["endpoint", "version", "outcome"],
            registry=self.registry,
        )
        self.revision = Gauge(
            "workbench_router_routes_revision", "Route table revision", registry=self.registry
        )
        self._counters: dict[tuple[str, str, int, str], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    def count(self, endpoint: str, version: str, status: int, protocol: str = "http") -> None:
        """Label children cached: ``labels()`` costs microseconds a call on the hot path."""
        key = (endpoint, version, status, protocol)
        child = self._counters.get(key)
        if child is None:
            child = self._counters[key] = self.requests.labels(endpoint, version, str(status), protocol)
        child.inc()

    def observe(self, endpoint: str, version: str, seconds: float) -> None:
        key = (endpoint, version)
        child = self._histograms.get(key)
        if child is None:
            child = self._histograms[key] = self.latency.labels(endpoint, version)
        child.observe(seconds)


@dataclass(slots=True)
class Routed:
    """A data-plane answer on its way back: what to send, and what :meth:`RouterApp.settle` does after."""

    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    #: (endpoint, version, protocol, perf_counter at arrival) of an answer that counts in the metrics
    measured: tuple[str, str, str, float] | None = None
    #: :meth:`RouterApp._mirror`'s arguments, when the request goes to the endpoint's shadows too
    mirror: tuple[EndpointRoutes, str, bytes, str, dict[str, str]] | None = None


class RouterApp:
    def __init__(
        self,
        *,
        token: str,
        routes_file: Path | None,
        request_timeout: float = 60.0,
        max_shadow_in_flight: int = 256,
        min_shadow_in_flight: int = 8,
        pools: Upstreams | None = None,
        grpc_address: tuple[str, int] | None = None,
        grpc_tls: GrpcTls | None = None,
    ) -> None:
        """``routes_file`` None and ``pools`` given: routes come from elsewhere than ``PUT /-/routes``
        (Ray Serve's config, :mod:`workbench.serving.ray.ingress`), and requests go through ``pools``.
        ``grpc_address``: also serve OIP over gRPC there (:mod:`workbench.serving.oip_grpc`), started with
        the app; ``grpc_port`` is then the port bound, or ``startup_error`` says why none was."""
        self._token = token.encode()
        self.routes_file = routes_file
        self.table = RouteTable()
        self.metrics = RouterMetrics()
        self.pools: Upstreams = pools if pools is not None else UpstreamPools(request_timeout)
        self.max_shadow_in_flight = max_shadow_in_flight
        self.min_shadow_in_flight = min_shadow_in_flight
        self._shadow_in_flight = 0
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        self._live = LiveConcurrency()
        self._shadow_by_target: dict[tuple[str, int], int] = {}
        self._random = random.Random()
        self._request_ids = request_ids()
        self.grpc_address = grpc_address
        self.grpc_tls = grpc_tls
        self.grpc_port: int | None = None
        self.startup_error: str | None = None
        self._grpc_server: Any = None

    # ------------------------------------------------------------- routes
    def load_persisted(self) -> None:
        if self.routes_file is not None and self.routes_file.is_file():
            try:
                self.table = RouteTable.model_validate_json(self.routes_file.read_bytes())
                log.info("serving persisted routes, revision %d", self.table.revision)
            except (OSError, PydanticValidationError) as exc:
                log.error("ignoring unreadable routes file %s: %s", self.routes_file, exc)

    def apply(self, table: RouteTable) -> None:
        self.pools.sync(_all_upstreams(table))
        self.table = table
        self.metrics.revision.set(table.revision)
        if self.routes_file is None:
            return
        tmp = self.routes_file.with_suffix(".tmp")
        tmp.write_bytes(table.model_dump_json().encode())
        os.replace(tmp, self.routes_file)

    # --------------------------------------------------------------- ASGI
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        try:
            if path.startswith("/-/"):
                await self._admin(scope, receive, send, path)
            elif path in ("/v2/health/live", "/v2/health/ready", "/ping", "/health"):
                await send_json(send, 200, {"live": True, "ready": True, "revision": self.table.revision})
            elif path == "/metrics":
                await send_bytes(send, 200, await self._exposition(), content_type=TEXT)
            elif path == "/v2" and scope["method"] == "GET":
                await send_json(send, 200, server_metadata())
            else:
                await self._forward(scope, receive, send, path)
        except WorkbenchError as exc:
            await send_error(send, path, exc)

    async def _exposition(self) -> bytes:
        """The router's series and every replica's (:mod:`~workbench.serving.replica_metrics`). Replicas
        behind Ray handles are left out: Ray balances a call over an application's replicas, so their
        counters would interleave under one label; Ray exports them itself (docs/scale-out.md)."""
        own = generate_latest(self.metrics.registry)
        upstreams = [u for u in _all_upstreams(self.table).values() if u.ray_app is None]
        if not upstreams:
            return own

        async def scrape(upstream: Upstream) -> bytes | None:
            try:
                response = await asyncio.wait_for(
                    self.pools.send((upstream,), "GET", "/metrics", b"", {}), replica_metrics.SCRAPE_TIMEOUT_S
                )
            except (UpstreamError, TimeoutError, OSError) as exc:
                log.info("replica %s did not answer a metrics scrape: %s", upstream.replica_id, exc)
                return None
            return response.body if response.status == 200 else None

        bodies = await asyncio.gather(*(scrape(u) for u in upstreams))
        texts = {u.replica_id: body for u, body in zip(upstreams, bodies, strict=True)}
        # Parsing and re-encoding costs about a millisecond per replica: off the loop that forwards requests.
        return await asyncio.to_thread(replica_metrics.merge, own, texts)

    async def _forward(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        passed = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in FORWARDED_HEADERS
        }

        async def body(limit: int) -> bytes:
            return await read_body(scope, receive, limit)

        routed = await self.route(
            scope["method"], path, partial(header, scope), passed, body, protocol="http"
        )
        await send_bytes(
            send, routed.status, routed.body, content_type=routed.content_type, headers=routed.headers
        )
        self.settle(routed)

    async def route(
        self,
        method: str,
        path: str,
        lookup: Callable[[bytes], bytes | None],
        passed: dict[str, str],
        body: Callable[[int], Awaitable[bytes]],
        *,
        protocol: str,
    ) -> Routed:
        """One data-plane request, whatever transport brought it: choose the version, forward, answer.

        ``lookup`` reads a request header (gRPC: invocation metadata), ``passed`` holds the headers the replica
        gets, ``body`` reads the body within the endpoint's limit. Metrics and shadows wait for :meth:`settle`,
        called once the answer is on its way, so neither delays it.
        """
        started = time.perf_counter()
        table = self.table
        parts = path.strip("/").split("/")
        endpoint_name, version_in_path = _parse(parts, method)
        routes = table.endpoints.get(endpoint_name)
        if routes is None:
            raise NotFoundError(f"unknown endpoint {endpoint_name!r}", known=sorted(table.endpoints))
        if parts[-1] == "ready" and method == "GET" and version_in_path is None:
            ready = any(r.upstreams for r in routes.versions if r.weight > 0)
            return Routed(200 if ready else 503, orjson.dumps({"name": endpoint_name, "ready": ready}))
        payload = await body(routes.payload_limit_bytes) if method == "POST" else b""
        metadata = method == "GET" and parts[-1] not in ("ready", "infer")
        route = self._choose(lookup, routes, version_in_path, primary=metadata)
        request_id_raw = lookup(REQUEST_ID)
        request_id = request_id_raw.decode("latin-1") if request_id_raw else next(self._request_ids)
        headers = {"content-type": "application/json", **passed, REQUEST_ID_HEADER: request_id}
        probe = lookup(PROBE) is not None
        if probe:
            headers[PROBE_HEADER] = "1"
        version_label = str(route.version)
        # Only an endpoint with shadows needs its live concurrency (the bound on its mirrored copies).
        tracked = bool(routes.shadows)
        if tracked:
            self._live.enter(endpoint_name)
        try:
            try:
                response = await self.pools.send(route.upstreams, method, path, payload, headers)
            except UpstreamError:
                if self.table is table or endpoint_name not in self.table.endpoints:
                    raise
                # The routes changed while this request was on its way (its replica may be draining):
                # choose again from the new table, once.
                routes = self.table.endpoints[endpoint_name]
                route = self._choose(lookup, routes, version_in_path)
                version_label = str(route.version)
                response = await self.pools.send(route.upstreams, method, path, payload, headers)
        except UpstreamError as exc:
            self.metrics.count(endpoint_name, version_label, 503, protocol)
            raise UnavailableError(
                f"endpoint {endpoint_name!r} version {route.version} is unavailable: {exc}"
            ) from None
        except asyncio.CancelledError:
            # The caller gave up (a gRPC client's cancel or deadline): counted as nginx's "client closed
            # request", so a client timing out shows in the error rates instead of vanishing from them.
            self.metrics.count(endpoint_name, version_label, CLIENT_CLOSED, protocol)
            raise
        except TimeoutError:
            self.metrics.count(endpoint_name, version_label, 504, protocol)
            timeout = error_body(path, "timeout", f"version {route.version} did not answer in time")
            return Routed(504, orjson.dumps(timeout))
        finally:
            if tracked:
                self._live.leave(endpoint_name)
        forwarded = [h for h in response.headers if h[0] != b"content-type"]
        if not any(name == REQUEST_ID for name, _ in forwarded):
            # The replica echoes the id it was given; say it here only when it did not (once, not twice).
            forwarded.append((REQUEST_ID, request_id.encode()))
        response_body = response.body
        if metadata and response.status == 200:
            response_body = _with_versions(response_body, served_versions(routes))
        mirror = method == "POST" and routes.shadows and version_in_path is None and not probe
        return Routed(
            response.status,
            response_body,
            content_type=_content_type(response.headers),
            headers=forwarded,
            measured=(endpoint_name, version_label, protocol, started),
            mirror=(routes, path, payload, request_id, passed) if mirror else None,
        )

    def settle(self, routed: Routed) -> None:
        """After the answer is sent: count and time it, and mirror it to the endpoint's shadows."""
        if routed.measured is not None:
            endpoint_name, version_label, protocol, started = routed.measured
            self.metrics.count(endpoint_name, version_label, routed.status, protocol)
            self.metrics.observe(endpoint_name, version_label, time.perf_counter() - started)
        if routed.mirror is not None:
            self._mirror(*routed.mirror)

    def _choose(
        self,
        lookup: Callable[[bytes], bytes | None],
        routes: EndpointRoutes,
        version_in_path: int | None,
        *,
        primary: bool = False,
    ) -> VersionRoute | ShadowRoute:
        """The version a request goes to; ``primary``: the one taking the most traffic, unless one is named."""
        explicit = version_in_path
        if explicit is None and (raw := lookup(VERSION_SELECT)) is not None:
            if not raw.isdigit():
                raise BadRequestError(
                    f"{VERSION_SELECT_HEADER} must be a version number, got {raw.decode('latin-1')!r}"
                )
            explicit = int(raw)
        if explicit is not None:
            found = find_version(routes, explicit)
            if found is None:
                raise NotFoundError(
                    f"endpoint {routes.name!r} does not serve version {explicit}",
                    versions=[r.version for r in routes.versions] + [s.version for s in routes.shadows],
                )
            return found
        key = lookup(ROUTING_KEY)
        if primary:
            chosen = primary_version(routes)
        elif key:
            if len(key) > MAX_KEY_LENGTH:
                raise BadRequestError(
                    f"{ROUTING_KEY_HEADER} is {len(key)} bytes long; at most {MAX_KEY_LENGTH} are allowed"
                )
            chosen = choose_sticky(routes.versions, key.decode("latin-1"), salt=routes.sticky_salt)
        else:
            chosen = choose_weighted(routes.versions, self._random.random())
        if chosen is None:
            raise UnavailableError(f"endpoint {routes.name!r} has no version with traffic weight")
        return chosen

    def _mirror(
        self, routes: EndpointRoutes, path: str, body: bytes, request_id: str, passed: Mapping[str, str]
    ) -> None:
        for shadow in routes.shadows:
            if not should_mirror(shadow, request_id):
                continue
            label = (routes.name, str(shadow.version))
            if self._shadow_in_flight >= self.max_shadow_in_flight:
                self.metrics.shadows.labels(*label, "dropped").inc()
                continue
            # A shadow is loaded as the live version is, never more. Clients stop sending while the live
            # replica stalls, but mirrored copies keep coming while the shadow's does: unbounded, its queue
            # would grow to lengths the live version never sees, and the latency comparison would blame the
            # candidate for the mirror's open loop (and a slow candidate would take CPU from live traffic).
            # The floor lets light traffic mirror whole to a slow candidate: a few queued copies are a batch.
            target = (routes.name, shadow.version)
            in_flight = self._shadow_by_target.get(target, 0)
            if in_flight >= max(self.min_shadow_in_flight, self._live.recent_peak(routes.name)):
                self.metrics.shadows.labels(*label, "shed").inc()
                continue
            self._shadow_in_flight += 1
            self._shadow_by_target[target] = in_flight + 1
            task = asyncio.get_running_loop().create_task(
                self._send_shadow(shadow, path, body, request_id, label, passed, target)
            )
            self._shadow_tasks.add(task)
            task.add_done_callback(self._shadow_tasks.discard)

    async def _send_shadow(
        self,
        shadow: ShadowRoute,
        path: str,
        body: bytes,
        request_id: str,
        label: tuple[str, str],
        passed: Mapping[str, str],
        target: tuple[str, int],
    ) -> None:
        headers = {
            "content-type": "application/json",
            **passed,
            REQUEST_ID_HEADER: request_id,
            SHADOW_HEADER: "1",
        }
        try:
            response = await self.pools.send(shadow.upstreams, "POST", path, body, headers)
            self.metrics.shadows.labels(*label, "sent" if response.status < 500 else "failed").inc()
        except Exception:  # a shadow must never affect anything: count it and move on
            self.metrics.shadows.labels(*label, "failed").inc()
        finally:
            self._shadow_in_flight -= 1
            left = self._shadow_by_target.pop(target) - 1
            if left:
                self._shadow_by_target[target] = left

    # -------------------------------------------------------------- admin
    async def _admin(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        if path == "/-/health":
            await send_json(send, 200, {"status": "ok", "revision": self.table.revision, "pid": os.getpid()})
            return
        self._authenticate(scope)
        if path != "/-/routes":
            raise NotFoundError(f"no admin route {path}")
        if scope["method"] == "GET":
            await send_bytes(send, 200, self.table.model_dump_json().encode())
        elif scope["method"] == "PUT" and self.routes_file is None:
            await send_json(
                send,
                405,
                error_payload(
                    "method_not_allowed",
                    "this router takes its routes from the serving backend's config, not PUT /-/routes",
                ),
            )
        elif scope["method"] == "PUT":
            body = await read_body(scope, receive, ADMIN_LIMIT)
            try:
                table = RouteTable.model_validate_json(body)
            except PydanticValidationError as exc:
                message, details = describe_validation_errors(exc.errors())
                raise BadRequestError(f"invalid route table: {message}", errors=details) from None
            if table.revision < self.table.revision:
                await send_json(
                    send,
                    409,
                    error_payload(
                        "conflict", f"revision {table.revision} is older than {self.table.revision}"
                    ),
                )
                return
            self.apply(table)
            await send_json(send, 200, {"revision": table.revision})
        else:
            await send_json(send, 405, error_payload("method_not_allowed", f"{scope['method']} not allowed"))

    def _authenticate(self, scope: Scope) -> None:
        raw = header(scope, b"authorization") or b""
        scheme, _, presented = raw.partition(b" ")
        if scheme.lower() != b"bearer" or not secrets.compare_digest(presented.strip(), self._token):
            raise AuthenticationError("the router's admin API needs the control plane's bearer token")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.load_persisted()
                self.pools.sync(_all_upstreams(self.table))
                self.metrics.revision.set(self.table.revision)
                if self.grpc_address is not None:
                    from workbench.serving import oip_grpc  # grpc loads only where it is served

                    try:
                        self._grpc_server, self.grpc_port = await oip_grpc.start(
                            self, *self.grpc_address, tls=self.grpc_tls
                        )
                    except OSError as exc:
                        self.startup_error = str(exc)
                        await send({"type": "lifespan.startup.failed", "message": self.startup_error})
                        return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._grpc_server is not None:
                    await self._grpc_server.stop(grace=5)
                if self._shadow_tasks:
                    await asyncio.wait(self._shadow_tasks, timeout=5)
                await self.pools.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _parse(parts: list[str], method: str) -> tuple[str, int | None]:
    """(endpoint, version in the path) for the data-plane routes the router forwards."""
    if len(parts) == 3 and parts[0] == "endpoints" and parts[2] == "invocations" and method == "POST":
        return parts[1], None
    if len(parts) >= 3 and parts[0] == "v2" and parts[1] == "models":
        rest = parts[3:]
        if len(rest) >= 2 and rest[0] == "versions":
            if not rest[1].isdigit():
                raise BadRequestError(f"version must be a number, got {rest[1]!r}")
            rest_action = rest[2:]
            if rest_action in ([], ["ready"], ["infer"]):
                return parts[2], int(rest[1])
        elif rest in ([], ["ready"], ["infer"]):
            return parts[2], None
    raise NotFoundError(f"no route for {method} /{'/'.join(parts)}")


def _all_upstreams(table: RouteTable) -> dict[str, Upstream]:
    upstreams: dict[str, Upstream] = {}
    for routes in table.endpoints.values():
        routed: list[VersionRoute | ShadowRoute] = [*routes.versions, *routes.shadows]
        for route in routed:
            for upstream in route.upstreams:
                upstreams[upstream.replica_id] = upstream
    return upstreams


def _with_versions(body: bytes, versions: list[int]) -> bytes:
    """Model metadata from one replica, with ``versions`` listing every version the endpoint serves."""
    try:
        metadata = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if type(metadata) is not dict:
        return body
    metadata["versions"] = [str(version) for version in versions]
    return orjson.dumps(metadata)


def _content_type(headers: list[tuple[bytes, bytes]]) -> bytes:
    for name, value in headers:
        if name == b"content-type":
            return value
    return b"application/json"
