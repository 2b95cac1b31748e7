"""The dashboards in JupyterLab tabs: served through Jupyter, under Jupyter's authentication.

The first tab starts a dashboard server for this Jupyter server (its own process, on a loopback port,
serving under ``{base_url}workbench/dashboards`` so its pages' links and websocket come back here), and
every request under that path is forwarded to it: pages and scripts over HTTP, each page's Bokeh
websocket frame by frame. Jupyter decides who may look; the dashboard's own sign-in is done here, once
per Jupyter user, with the control plane's token, and its session cookie stays here too: the browser
holds only Jupyter's credentials, and the dashboard records the Jupyter user as the actor.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import urllib.parse
from http.cookies import SimpleCookie
from typing import Any

import tornado.web
import tornado.websocket
from jupyter_server.base.handlers import JupyterHandler
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse

from workbench.launcher import free_port
from workbench.settings import Settings
from workbench.ui.process import DashboardProcess

log = logging.getLogger("workbench.jupyter")

#: Request headers not forwarded: Jupyter's credentials stay with Jupyter; hop-by-hop ones are per hop.
_DROP_REQUEST = {"host", "cookie", "authorization", "connection", "upgrade", "content-length", "x-xsrftoken"}
_DROP_RESPONSE = {"set-cookie", "content-length", "transfer-encoding", "connection", "content-encoding"}
START_TIMEOUT_S = 90.0


class DashboardServer:
    """The dashboard process behind the tabs, started on first use, and its sign-ins per Jupyter user."""

    def __init__(self, settings: Settings, prefix: str) -> None:
        self.settings = settings
        self.prefix = prefix.rstrip("/")
        self._process: DashboardProcess | None = None
        self._start_lock = threading.Lock()
        self._cookies: dict[str, str] = {}
        self._login_lock = asyncio.Lock()

    @property
    def origin(self) -> str:
        assert self._process is not None
        return f"http://127.0.0.1:{self._process.port}"

    def ensure_started(self) -> None:
        """Blocking (run it off the loop): start the process and wait until its sign-in page answers."""
        with self._start_lock:
            current = self._process
            if current is not None and current.process is not None and current.process.poll() is None:
                return
            process = DashboardProcess(
                self.settings,
                self.settings.home / "logs" / "dashboards-for-jupyter.log",
                host="127.0.0.1",
                port=free_port(),
                prefix=self.prefix,
                exit_with_parent=True,
            )
            problem = process.start(timeout=START_TIMEOUT_S)
            if problem is not None:
                raise tornado.web.HTTPError(503, reason=f"the dashboards could not start: {problem}")
            self._process = process
            log.info("workbench: dashboards for JupyterLab at %s", process.url)

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    async def cookie(self, user: str, *, renew: bool = False) -> str:
        """The dashboard's session cookie for ``user``, signing in (server-side) when there is none."""
        async with self._login_lock:
            if not renew and user in self._cookies:
                return self._cookies[user]
            token = self.settings.read_token() or ""
            body = urllib.parse.urlencode({"username": user, "password": token})
            try:
                response = await AsyncHTTPClient().fetch(
                    f"{self.origin}{self.prefix}/login",
                    method="POST",
                    body=body,
                    follow_redirects=False,
                    raise_error=False,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
            except OSError as exc:
                raise tornado.web.HTTPError(502, reason=f"the dashboards did not answer: {exc}") from None
            jar: SimpleCookie = SimpleCookie()
            for header in response.headers.get_list("Set-Cookie"):
                jar.load(header)
            if "user" not in jar:
                raise tornado.web.HTTPError(502, reason="the dashboards refused the sign-in")
            cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in jar.items())
            self._cookies[user] = cookie
            return cookie


def _is_login_redirect(response: HTTPResponse) -> bool:
    return response.code in (302, 303) and "login" in response.headers.get("Location", "")


class DashboardProxy(JupyterHandler):
    """Pages, scripts and archived files of the dashboards, forwarded as they are."""

    @property
    def dashboards(self) -> DashboardServer:
        server: DashboardServer = self.settings["workbench_dashboards"]
        return server

    @property
    def actor(self) -> str:
        name: str = self.settings["workbench_services"].actor_for(self.current_user)
        return name

    @tornado.web.authenticated
    async def get(self, path: str = "") -> None:
        await asyncio.to_thread(self.dashboards.ensure_started)
        response = await self._forward(await self.dashboards.cookie(self.actor))
        if _is_login_redirect(response):  # the dashboard's session expired: sign in again once
            response = await self._forward(await self.dashboards.cookie(self.actor, renew=True))
        self.set_status(response.code, response.reason)
        for name, value in response.headers.get_all():
            if name.lower() not in _DROP_RESPONSE:
                self.add_header(name, value)
        if response.body:
            self.write(response.body)
        await self.finish()

    async def _forward(self, cookie: str) -> HTTPResponse:
        headers = {k: v for k, v in self.request.headers.get_all() if k.lower() not in _DROP_REQUEST}
        headers["Cookie"] = cookie
        request = HTTPRequest(
            self.dashboards.origin + self.request.uri,
            method="GET",
            headers=headers,
            follow_redirects=False,
            decompress_response=True,
            request_timeout=120,
        )
        try:
            return await AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as exc:
            raise tornado.web.HTTPError(502, reason=f"the dashboards did not answer: {exc}") from None


class DashboardSocket(JupyterHandler, tornado.websocket.WebSocketHandler):
    """A page's Bokeh websocket, relayed frame by frame to the dashboard process."""

    _upstream: tornado.websocket.WebSocketClientConnection | None = None

    @property
    def dashboards(self) -> DashboardServer:
        server: DashboardServer = self.settings["workbench_dashboards"]
        return server

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.current_user is None:
            raise tornado.web.HTTPError(403)
        actor = self.settings["workbench_services"].actor_for(self.current_user)
        await asyncio.to_thread(self.dashboards.ensure_started)
        cookie = await self.dashboards.cookie(actor)
        protocols = [
            p.strip() for p in self.request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
        ]
        upstream = HTTPRequest(
            self.dashboards.origin.replace("http://", "ws://") + self.request.uri,
            headers={"Cookie": cookie, "Origin": self.dashboards.origin},
        )
        try:
            self._upstream = await tornado.websocket.websocket_connect(
                upstream,
                subprotocols=protocols or None,
                on_message_callback=self._from_upstream,
                max_message_size=50 * 2**20,
            )
        except (OSError, HTTPClientError, tornado.websocket.WebSocketError) as exc:
            raise tornado.web.HTTPError(
                502, reason=f"the dashboards refused the page's connection: {exc}"
            ) from None
        await super().get(*args, **kwargs)

    def check_origin(self, origin_to_satisfy_tornado: str = "") -> bool:
        """Jupyter's origin rules (the page is Jupyter's own), not tornado's same-host check alone."""
        return bool(JupyterHandler.check_origin(self, origin_to_satisfy_tornado))

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return "bokeh" if "bokeh" in subprotocols else (subprotocols[0] if subprotocols else None)

    def _from_upstream(self, message: str | bytes | None) -> None:
        if message is None:
            self.close()
            return
        try:
            self.write_message(message, binary=isinstance(message, bytes))
        except tornado.websocket.WebSocketClosedError:
            if self._upstream is not None:
                self._upstream.close()

    async def on_message(self, message: str | bytes) -> None:
        if self._upstream is not None:
            await self._upstream.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        if self._upstream is not None:
            self._upstream.close()
            self._upstream = None
