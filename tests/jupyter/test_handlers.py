"""The JupyterLab extension's server routes, in a real Jupyter server against a real control plane."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPResponse

from tests._runbooks import settings_with_greet
from tests.jupyter.conftest import until
from workbench.client import Client
from workbench.control_plane import ControlPlane
from workbench.protocol import IDEMPOTENCY_HEADER
from workbench.settings import Settings

pytestmark = pytest.mark.slow

USER_PREFIX = "jupyter:"
Fetch = Callable[..., Any]


@pytest.fixture
def settings(tmp_path: Path, mlflow_template: Path) -> Settings:
    return settings_with_greet(tmp_path, mlflow_template)


@pytest.fixture
def served(client: Client, model_dir: Path) -> None:
    client.register_from_path("churn", model_dir, reason="seed")
    client.register_from_path("churn", model_dir, reason="seed v2")
    client.create_endpoint("churn", "models:/churn/1", reason="launch")


@pytest.fixture
def workbench_env(api_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("WORKBENCH_URL", api_url)
    monkeypatch.setenv("WORKBENCH_HOME", str(settings.home))
    return settings.read_token() or ""


@pytest.fixture
def jp_server_config(workbench_env: str) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"workbench.jupyter": True}},
        "Workbench": {"idle_stop_s": 0.5},
    }


async def _json(fetch: Fetch, *path: str, **options: Any) -> tuple[int, Any, str]:
    response: HTTPResponse = await fetch("workbench", *path, raise_error=False, **options)
    text = response.body.decode()
    return response.code, json.loads(text) if text else None, text


async def _post(fetch: Fetch, *path: str, body: Any, key: str | None = None) -> tuple[int, Any, str]:
    headers = {IDEMPOTENCY_HEADER: key} if key else {}
    return await _json(fetch, *path, method="POST", body=json.dumps(body), headers=headers)


async def test_the_state_lists_endpoints_and_never_the_token(
    jp_fetch: Fetch, served: None, workbench_env: str
) -> None:
    status, state, text = await _json(jp_fetch, "state")
    assert status == 200
    assert [e["name"] for e in state["endpoints"]] == ["churn"], state
    churn = state["endpoints"][0]
    assert churn["routes"] == [{"model": "churn", "version": 1, "weight": 100.0}]
    assert churn["rollout"] is None
    assert state["user"].startswith(USER_PREFIX)
    assert [c["version"] for c in state["models"]["churn"]] == [2, 1]
    assert workbench_env
    assert workbench_env not in text


async def test_an_action_is_previewed_then_confirmed_once_as_the_jupyter_user(
    jp_fetch: Fetch, served: None, plane: ControlPlane, workbench_env: str
) -> None:
    status, proposal, text = await _post(
        jp_fetch, "preview", body={"kind": "deploy", "endpoint": "churn", "model": "churn", "version": 2}
    )
    assert status == 200, text
    assert proposal["preview"]["routes_before"] == "churn v1 100%"
    assert proposal["preview"]["routes_after"] == "churn v2 100%"
    assert plane.get_endpoint("churn").revision == 1  # nothing changed by a preview
    key = uuid.uuid4().hex
    done, outcome, text = await _post(jp_fetch, "perform", body={"proposal": proposal["proposal"]}, key=key)
    assert done == 200, text
    assert "churn v2 100%" in outcome["message"]
    # a double click or a retry: the same confirmation and key answer the same, and act once
    again, replayed, _ = await _post(jp_fetch, "perform", body={"proposal": proposal["proposal"]}, key=key)
    assert (again, replayed) == (done, outcome)
    deploys = [e for e in plane.audit.query(limit=100) if e.action == "endpoint.deploy"]
    assert len(deploys) == 1
    assert deploys[0].actor.startswith(USER_PREFIX)
    assert workbench_env not in json.dumps(proposal) + json.dumps(outcome)


async def test_bad_input_gets_a_clear_refusal_and_changes_nothing(
    jp_fetch: Fetch, served: None, plane: ControlPlane
) -> None:
    cases = [
        ({"kind": "explode", "endpoint": "churn"}, 422, "invalid action"),
        (
            {"kind": "rollout", "endpoint": "churn", "model": "churn", "version": 2, "steps": "50, 5"},
            422,
            "canary steps",
        ),
        ({"kind": "rollout_action", "endpoint": "churn", "action": "pause"}, 409, "no active rollout"),
        ({"kind": "rollback", "endpoint": "gone"}, 404, "does not exist"),
        ({"kind": "deploy", "endpoint": "churn", "model": "churn", "version": 9}, None, None),
    ]
    for body, status, words in cases[:-1]:
        code, answer, text = await _post(jp_fetch, "preview", body=body)
        assert code == status, text
        assert words in answer["error"]["message"]
    code, _, text = await _json(jp_fetch, "preview", method="POST", body="not json")
    assert code == 400, text
    # no key, or an unknown confirmation
    code, answer, _ = await _post(jp_fetch, "perform", body={"proposal": "nope"})
    assert code == 422
    assert "Idempotency-Key" in answer["error"]["message"]
    code, answer, _ = await _post(jp_fetch, "perform", body={"proposal": "nope"}, key=uuid.uuid4().hex)
    assert code == 404
    assert "preview the action again" in answer["error"]["message"]
    # a version that does not exist is refused by the control plane at confirmation; nothing changes
    _, proposal, _ = await _post(jp_fetch, "preview", body=cases[-1][0])
    code, answer, _ = await _post(
        jp_fetch, "perform", body={"proposal": proposal["proposal"]}, key=uuid.uuid4().hex
    )
    assert code == 404, answer
    assert plane.get_endpoint("churn").revision == 1


async def test_an_endpoint_deleted_after_the_preview_is_refused_at_confirmation(
    jp_fetch: Fetch, served: None, client: Client
) -> None:
    _, proposal, _ = await _post(jp_fetch, "preview", body={"kind": "rollback", "endpoint": "churn"})
    assert "error" in proposal  # one revision: nowhere to go back to
    _, proposal, _ = await _post(
        jp_fetch, "preview", body={"kind": "deploy", "endpoint": "churn", "model": "churn", "version": 2}
    )
    client.delete_endpoint("churn", reason="gone meanwhile")
    code, answer, _ = await _post(
        jp_fetch, "perform", body={"proposal": proposal["proposal"]}, key=uuid.uuid4().hex
    )
    assert code in (404, 409), answer
    assert answer["error"]["message"]
    assert not [e for e in client.list_endpoints() if e.spec.name == "churn"]


async def test_routes_need_jupyter_authentication(jp_fetch: Fetch, served: None) -> None:
    for path, method, body in (("state", "GET", None), ("preview", "POST", "{}"), ("events", "GET", None)):
        response = await jp_fetch(
            "workbench", path, method=method, body=body, headers={"Authorization": ""}, raise_error=False
        )
        assert response.code == 403, (path, response.code)
        assert b"churn" not in response.body


async def test_the_live_stream_pushes_changes_and_stops_polling_when_no_tab_listens(
    jp_serverapp: Any,
    http_server: Any,
    http_server_port: tuple[Any, int],
    jp_auth_header: dict[str, str],
    jp_base_url: str,
    served: None,
    client: Client,
) -> None:
    """A tab's stream, read off a plain socket (so closing it is a tab going away)."""
    events: list[tuple[str, dict[str, Any]]] = []
    reader, writer = await asyncio.open_connection("127.0.0.1", http_server_port[1])
    auth = "".join(f"{k}: {v}\r\n" for k, v in jp_auth_header.items())
    writer.write(f"GET {jp_base_url}workbench/events HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode())
    await writer.drain()

    async def read_events() -> None:
        buffer = ""
        while chunk := await reader.read(65536):
            buffer += chunk.decode()
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                fields = dict(
                    line.split(": ", 1)
                    for line in block.splitlines()
                    if line.startswith(("event: ", "data: "))
                )
                if "event" in fields:  # chunk sizes of the HTTP framing sit between blocks
                    events.append((fields["event"], json.loads(fields["data"])))

    stream = asyncio.ensure_future(read_events())
    services = jp_serverapp.web_app.settings["workbench_services"]
    await until(lambda: events and events[0][0] == "state")
    assert events[0][1]["endpoints"][0]["revision"] == 1
    client.deploy("churn", "models:/churn/2", reason="from a notebook")
    await until(lambda: any(kind == "state" and e["endpoints"][0]["revision"] == 2 for kind, e in events))
    assert services.hub.listeners == 1
    stream.cancel()
    writer.close()
    await until(lambda: services.hub.listeners == 0)
    await asyncio.sleep(1.5)  # idle_stop_s = 0.5: the watcher has stopped
    before = services.hub.requests
    await asyncio.sleep(2.5)
    assert services.hub.requests == before  # no tab, no calls to the control plane


async def test_the_registry_browser_lists_models_and_their_versions(jp_fetch: Fetch, served: None) -> None:
    status, models, _ = await _json(jp_fetch, "models")
    assert status == 200
    assert [m["name"] for m in models] == ["churn"]
    status, churn, _ = await _json(jp_fetch, "models", "churn")
    assert status == 200
    assert [v["version"] for v in churn["versions"]] == [2, 1]
    status, missing, _ = await _json(jp_fetch, "models", "nope")
    assert status == 404
    assert "nope" in missing["error"]["message"]


async def test_a_runbook_is_launched_from_its_parameters_and_its_notebook_opened(
    jp_fetch: Fetch, jp_root_dir: Path, plane: ControlPlane
) -> None:
    status, runbooks, _ = await _json(jp_fetch, "runbooks")
    assert status == 200
    greet = next(r for r in runbooks if r["name"] == "greet")
    assert {p["name"] for p in greet["parameters"]} >= {"who", "times", "loud"}
    key = uuid.uuid4().hex
    body = {"parameters": {"who": "lab", "times": 2}}
    status, run, text = await _post(jp_fetch, "runbooks", "greet", "runs", body=body, key=key)
    assert status == 201, text
    again, replayed, _ = await _post(jp_fetch, "runbooks", "greet", "runs", body=body, key=key)
    assert again == 201
    assert replayed["id"] == run["id"]  # a retried launch is the same run
    status, bad, _ = await _post(
        jp_fetch, "runbooks", "greet", "runs", body={"parameters": {"times": "many"}}, key=uuid.uuid4().hex
    )
    assert status == 422, bad
    code, opened, _ = await _post(jp_fetch, "runs", run["id"], "open", body={})
    assert code in (200, 422)  # it may still be running
    for _ in range(60):
        status, ended, _ = await _json(jp_fetch, "runs", run["id"], params={"wait_s": "5"})
        if ended["status"] in ("succeeded", "failed", "cancelled", "timed_out"):
            break
    assert ended["status"] == "succeeded", ended
    assert ended["summary"]["greeting"] == "hello lab hello lab"
    assert ended["actor"].startswith(USER_PREFIX)
    code, opened, _ = await _post(jp_fetch, "runs", run["id"], "open", body={})
    assert code == 200
    notebook = json.loads((jp_root_dir / opened["path"]).read_text())
    assert any("hello lab" in json.dumps(cell.get("outputs", [])) for cell in notebook["cells"])
    status, runs, _ = await _json(jp_fetch, "runs")
    assert [r["id"] for r in runs] == [run["id"]]


async def test_dashboards_are_served_through_jupyter_and_signed_in_as_the_jupyter_user(
    jp_serverapp: Any, jp_fetch: Fetch, served: None, workbench_env: str
) -> None:
    try:
        page = await jp_fetch("workbench", "dashboards", "overview", raise_error=False, request_timeout=120)
        assert page.code == 200, page.body[:500]
        html = page.body.decode()
        assert "static/js/bokeh.min.js" in html
        cookies = " ".join(page.headers.get_list("Set-Cookie"))
        assert "id_token" not in cookies  # the dashboard's session stays in Jupyter
        assert "user=" not in cookies
        assert workbench_env not in html
        script = await jp_fetch("workbench", "dashboards", "static", "js", "bokeh.min.js", raise_error=False)
        assert script.code == 200
        assert len(script.body) > 100_000
        refused = await jp_fetch(
            "workbench",
            "dashboards",
            "overview",
            headers={"Authorization": ""},
            raise_error=False,
            follow_redirects=False,
        )
        assert refused.code in (302, 403)  # Jupyter's sign-in first, never the dashboard's
        assert b"bokeh" not in refused.body
    finally:
        jp_serverapp.web_app.settings["workbench_dashboards"].stop()
