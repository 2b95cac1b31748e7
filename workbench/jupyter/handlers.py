"""REST routes and the live stream under ``{base_url}/workbench/``, behind Jupyter's authentication.

Every route reads or acts through ``workbench.Client`` as the signed-in Jupyter user (the audit log's
actor), with the control plane's token, which never leaves this process. Errors come back as the control
plane's own ``{"error": {"type", "message", "details"}}`` with its status; a control plane that does not
answer is a 503 saying so.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.utils import url_path_join
from tornado.iostream import StreamClosedError

from workbench.client import Client
from workbench.errors import BadRequestError, ValidationError, WorkbenchError
from workbench.jupyter.dashboards import DashboardProxy, DashboardSocket
from workbench.jupyter.hub import LiveHub
from workbench.jupyter.proposals import (
    ExperimentAction,
    Proposals,
    parse_ask,
    perform_experiment_action,
    preview_experiment_action,
)
from workbench.protocol import IDEMPOTENCY_HEADER
from workbench.ui import intents

#: Jupyter's name for a token-authenticated request without a login (a fresh one every request).
_ANONYMOUS = re.compile(r"^[0-9a-f]{32}$")


def _server_account() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


#: Why, in the audit log, for what is done from JupyterLab.
REASON = "from JupyterLab"
#: Comment lines on the live stream when nothing else is sent, so proxies keep it open.
KEEPALIVE_S = 15.0


class Services:
    """What every handler shares: the control plane, the live hub, pending confirmations."""

    def __init__(self, client_factory: Callable[[], Client], hub: LiveHub, runs_dir: str) -> None:
        self.client_factory = client_factory
        self.hub = hub
        self.proposals = Proposals()
        self.runs_dir = runs_dir
        self._client: Client | None = None

    def client(self) -> Client:
        if self._client is None:
            self._client = self.client_factory()
        return self._client

    def as_user(self, user: str, idempotency_key: str | None = None) -> Client:
        return self.client().as_actor(user, idempotency_key=idempotency_key)

    @staticmethod
    def actor_for(user: Any) -> str:
        """The audit actor: the Jupyter user (``jupyter:alice`` behind JupyterHub or a login), or, on a
        single-user server reached with its token, the account that runs it: Jupyter then names each
        token-authenticated request an anonymous user of its own, which says nothing about who acted."""
        name = str(getattr(user, "username", None) or getattr(user, "name", None) or user)
        if _ANONYMOUS.match(name):
            name = _server_account()
        return f"jupyter:{name}"


class WorkbenchHandler(APIHandler):
    @property
    def services(self) -> Services:
        services: Services = self.settings["workbench_services"]
        return services

    @property
    def user_name(self) -> str:
        return self.services.actor_for(self.current_user)

    def body(self) -> dict[str, Any]:
        try:
            payload = json.loads(self.request.body or b"{}")
        except json.JSONDecodeError as exc:
            raise BadRequestError(f"malformed JSON body: {exc}") from None
        if not isinstance(payload, dict):
            raise BadRequestError("request body must be a JSON object")
        return payload

    def answer(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(payload, default=str))

    def refuse(self, exc: WorkbenchError) -> None:
        self.answer(
            {"error": {"type": exc.error_type, "message": exc.message, "details": exc.details}},
            exc.status_code,
        )

    async def call(self, work: Callable[[], Any], status: int = 200) -> None:
        """Run a blocking control-plane call off the server's loop; answer with its result or refusal."""
        try:
            result = await asyncio.to_thread(work)
        except WorkbenchError as exc:
            self.refuse(exc)
            return
        self.answer(result, status)

    def idempotency_key(self) -> str:
        key = self.request.headers.get(IDEMPOTENCY_HEADER, "").strip()
        if not key:
            raise ValidationError(
                "an action needs an Idempotency-Key header (one per confirmation), so a repeated copy acts once",
                header=IDEMPOTENCY_HEADER,
            )
        return key


class StateHandler(WorkbenchHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        user = self.user_name
        await self.call(lambda: {**self.services.hub.state(), "user": user})


class EventsHandler(WorkbenchHandler):
    """Server-sent events: ``state`` (the whole sidebar) on connect and on change, ``traffic`` each second."""

    @tornado.web.authenticated
    async def get(self) -> None:
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        hub = self.services.hub
        queue = hub.subscribe()
        try:
            first = await asyncio.to_thread(hub.state)
            await self._send("state", first)
            while True:
                try:
                    kind, data = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_S)
                except TimeoutError:
                    self.write(": keepalive\n\n")
                    await self.flush()
                    continue
                await self._send(kind, data)
        except StreamClosedError:
            pass
        finally:
            hub.unsubscribe(queue)

    async def _send(self, kind: str, data: dict[str, Any]) -> None:
        self.write(f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n")
        await self.flush()


class PreviewHandler(WorkbenchHandler):
    @tornado.web.authenticated
    async def post(self) -> None:
        user = self.user_name
        try:
            intent = parse_ask(self.body())
        except WorkbenchError as exc:
            self.refuse(exc)
            return

        def preview() -> dict[str, Any]:
            with self.services.as_user(user) as client:
                if isinstance(intent, ExperimentAction):
                    resolved, shown = preview_experiment_action(client, intent)
                    return self.services.proposals.add(user, resolved, shown).public()
                view = intents.read_view(
                    client, intent.endpoint, for_rollback=isinstance(intent, intents.Rollback)
                )
            return self.services.proposals.add(user, intent, intents.preview(intent, view)).public()

        await self.call(preview)


class PerformHandler(WorkbenchHandler):
    def _log_action(self, user: str, action: str, outcome: str, asked: float, began: float) -> None:
        """Jupyter's log says who did what through the sidebar, and how long it waited to start."""
        done = time.monotonic()
        self.log.info(
            "workbench: %s: %s: %s (waited %.0f ms, took %.0f ms)",
            user, action, outcome, (began - asked) * 1000, (done - began) * 1000,
        )  # fmt: skip

    @tornado.web.authenticated
    async def post(self) -> None:
        user = self.user_name
        try:
            key = self.idempotency_key()
            proposal_id = str(self.body().get("proposal", ""))
            proposal = self.services.proposals.get(proposal_id, user)
        except WorkbenchError as exc:
            self.refuse(exc)
            return

        asked = time.monotonic()

        def perform() -> dict[str, Any]:
            began = time.monotonic()
            try:
                with self.services.as_user(user, idempotency_key=key) as client:
                    intent = proposal.intent
                    if isinstance(intent, ExperimentAction):
                        message = perform_experiment_action(client, intent, proposal.preview, reason=REASON)
                    else:
                        message = intents.perform(client, intent, proposal.preview, reason=REASON).message
            except WorkbenchError as exc:
                self._log_action(user, proposal.preview.action, f"refused ({exc.message})", asked, began)
                raise
            self._log_action(user, proposal.preview.action, message, asked, began)
            self.services.hub.poke()
            return {"message": message, "endpoint": proposal.intent.endpoint}

        await self.call(perform)


class ModelsHandler(WorkbenchHandler):
    """The registry browser: models with their versions, aliases, metrics and lineage."""

    @tornado.web.authenticated
    async def get(self, name: str | None = None) -> None:
        user = self.user_name

        def read() -> Any:
            with self.services.as_user(user) as client:
                if name is None:
                    return [m.model_dump(mode="json") for m in client.list_models()]
                model = client.get_model(name).model_dump(mode="json")
                versions = sorted(client.list_versions(name), key=lambda v: -v.version)
                return {**model, "versions": [v.model_dump(mode="json") for v in versions]}

        await self.call(read)


class RunbooksHandler(WorkbenchHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        user = self.user_name

        def read() -> Any:
            with self.services.as_user(user) as client:
                return client.runbooks()

        await self.call(read)


class RunbookRunsHandler(WorkbenchHandler):
    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        user = self.user_name
        try:
            key = self.idempotency_key()
            body = self.body()
            parameters = body.get("parameters", {})
            if not isinstance(parameters, dict):
                raise ValidationError("parameters must be a JSON object of name → value")
        except WorkbenchError as exc:
            self.refuse(exc)
            return

        def start() -> Any:
            with self.services.as_user(user, idempotency_key=key) as client:
                run = client.run_runbook(name, parameters, reason=REASON)
            self.services.hub.poke()
            return run.model_dump(mode="json")

        await self.call(start, 201)


class RunsHandler(WorkbenchHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str | None = None) -> None:
        user = self.user_name
        wait_s = min(float(self.get_query_argument("wait_s", "0") or 0), 15.0)

        def read() -> Any:
            with self.services.as_user(user) as client:
                if run_id is None:
                    return [r.model_dump(mode="json") for r in client.runbook_runs(limit=30)]
                run = client.runbook_run(run_id)
                if wait_s > 0 and not run.status.is_final:
                    run = client.wait_run(run_id, timeout_s=wait_s)
                return run.model_dump(mode="json")

        await self.call(read)


class OpenRunHandler(WorkbenchHandler):
    """Copy a run's executed notebook into Jupyter's files, so JupyterLab opens it as a document."""

    @tornado.web.authenticated
    async def post(self, run_id: str) -> None:
        user = self.user_name
        root = Path(self.settings.get("server_root_dir") or ".").expanduser()
        relative = Path(self.services.runs_dir) / f"{run_id}.ipynb"

        def fetch() -> dict[str, Any]:
            with self.services.as_user(user) as client:
                run = client.runbook_run(run_id)
                if not run.status.is_final:
                    raise ValidationError(f"run {run_id} has not ended yet ({run.status.value})", run=run_id)
                content = client.run_notebook(run_id)
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            return {"path": relative.as_posix(), "status": run.status.value}

        await self.call(fetch)


def routes(base_url: str) -> list[tuple[str, type[JupyterHandler]]]:
    def at(path: str) -> str:
        return url_path_join(base_url, "workbench", path)

    run_id = r"(?P<run_id>[A-Za-z0-9_\-]{1,64})"
    name = r"(?P<name>[A-Za-z0-9_.\-]{1,128})"
    return [
        (at("state"), StateHandler),
        (at("events"), EventsHandler),
        (at("preview"), PreviewHandler),
        (at("perform"), PerformHandler),
        (at("models"), ModelsHandler),
        (at(f"models/{name}"), ModelsHandler),
        (at("runbooks"), RunbooksHandler),
        (at(f"runbooks/{name}/runs"), RunbookRunsHandler),
        (at("runs"), RunsHandler),
        (at(f"runs/{run_id}"), RunsHandler),
        (at(f"runs/{run_id}/open"), OpenRunHandler),
        # A dashboard page's websocket first: every other path under dashboards/ is a page or a file.
        (at("dashboards") + r"/.*/ws", DashboardSocket),
        (at("dashboards") + r"(/.*)?", DashboardProxy),
    ]
