"""The router as a Ray Serve deployment: the local router's app, reaching versions through Ray handles.

Ray's HTTP proxy hands each request to :class:`RayRouter`, which runs the same
:class:`~workbench.serving.router_app.RouterApp` as the local router: weighted, sticky, header and
path version choice, shadows, metrics, errors, response headers. Only the last hop differs
(:class:`RayUpstreams`): a call to the version's Ray Serve application instead of an HTTP request to a
replica's socket; Ray picks the replica. The route table arrives as the deployment's ``user_config``,
which Ray applies to every running ingress replica in place; ``PUT /-/routes`` is refused here.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from ray import serve
from starlette.requests import Request
from starlette.responses import Response

from workbench.serving.ray.inprocess import exchange
from workbench.serving.ray.serve_config import INGRESS_DEPLOYMENT, VERSION_DEPLOYMENT
from workbench.serving.router_app import RouterApp
from workbench.serving.routes import RouteTable, Upstream
from workbench.serving.upstreams import PASSED_HEADERS, UpstreamError, UpstreamResponse

log = logging.getLogger("workbench.router")


class RayUpstreams:
    """The router's last hop on Ray: one handle per version application."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._handles: dict[str, Any] = {}

    def sync(self, upstreams: Mapping[str, Upstream]) -> None:
        wanted = {u.ray_app for u in upstreams.values() if u.ray_app}
        for name in list(self._handles):
            if name not in wanted:
                del self._handles[name]

    def _handle(self, app: str) -> Any:
        handle = self._handles.get(app)
        if handle is None:
            try:
                handle = serve.get_deployment_handle(VERSION_DEPLOYMENT, app_name=app).options(
                    method_name="handle"
                )
            except Exception as exc:  # Ray raises its own errors for an application it does not know
                raise UpstreamError(f"Ray Serve application {app} is not available: {exc}") from None
            self._handles[app] = handle
        return handle

    async def send(
        self, upstreams: tuple[Upstream, ...], method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> UpstreamResponse:
        apps = [u.ray_app for u in upstreams if u.ray_app]
        if not apps:
            raise UpstreamError("no replica is serving this version")
        encoded = [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
        ]
        try:
            status, answered, payload = await asyncio.wait_for(
                self._handle(apps[0]).remote(method, path, encoded, body), self._timeout
            )
        except (TimeoutError, UpstreamError):
            raise
        except Exception as exc:  # the replica died, the application is being deleted, Ray is unreachable
            self._handles.pop(apps[0], None)
            raise UpstreamError(f"{type(exc).__name__}: {exc}") from None
        kept = [(name, value) for name, value in answered if name in PASSED_HEADERS]
        return UpstreamResponse(status, payload, kept)

    async def close(self) -> None:
        self._handles.clear()


class RayRouter:
    def __init__(self, request_timeout_s: float = 60.0, max_shadow_in_flight: int = 256) -> None:
        # Admin reads need a token nobody has: routes are read from the control plane, not from here.
        self.app = RouterApp(
            token=secrets.token_hex(16),
            routes_file=None,
            request_timeout=request_timeout_s,
            max_shadow_in_flight=max_shadow_in_flight,
            pools=RayUpstreams(request_timeout_s),
        )

    def reconfigure(self, config: dict[str, Any]) -> None:
        table = RouteTable.model_validate(config.get("routes") or {})
        self.app.apply(table)
        log.info("serving routes revision %d", table.revision)

    def revision(self) -> int:
        return self.app.table.revision

    async def __call__(self, request: Request) -> Response:
        status, headers, body = await exchange(self.app, request.scope, request.receive)
        response = Response(content=body, status_code=status)
        response.raw_headers = headers
        return response


RouterDeployment = serve.deployment(name=INGRESS_DEPLOYMENT)(RayRouter)


def router_app(args: dict[str, Any]) -> Any:
    """Ray Serve's application builder (``import_path`` in the config)."""
    return RouterDeployment.bind(float(args.get("request_timeout_s", 60.0)))
