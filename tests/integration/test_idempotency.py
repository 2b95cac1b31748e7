"""Idempotency keys over a real socket: a repeated changing call is answered, not run again."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from workbench.client import Client
from workbench.control_plane import ControlPlane
from workbench.protocol import ACTOR_HEADER, IDEMPOTENCY_HEADER, REPLAYED_HEADER


@pytest.fixture
def registered(client: Client, model_dir: Path, reference_file: Path) -> None:
    client.register_from_path(
        "churn", model_dir, reference={"path": str(reference_file), "target": "label"}, reason="seed"
    )


def _headers(client: Client, key: str, actor: str = "alice") -> dict[str, str]:
    return {**client._auth(), IDEMPOTENCY_HEADER: key, ACTOR_HEADER: actor}


def _alias(
    api_url: str, headers: dict[str, str], version: int = 1, alias: str = "champion"
) -> httpx.Response:
    return httpx.put(
        f"{api_url}/api/v1/models/churn/aliases/{alias}",
        json={"version": version, "reason": "promote"},
        headers=headers,
        timeout=30,
    )


def _alias_events(plane: ControlPlane) -> int:
    return sum(1 for event in plane.audit.query(limit=1000) if event.action.startswith("model.alias"))


def test_a_repeated_call_gets_the_first_answer_and_acts_once(
    api_url: str, client: Client, plane: ControlPlane, registered: None
) -> None:
    key = uuid.uuid4().hex
    first = _alias(api_url, _headers(client, key))
    again = _alias(api_url, _headers(client, key))
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert REPLAYED_HEADER not in first.headers
    assert again.headers[REPLAYED_HEADER] == "true"
    assert _alias_events(plane) == 1
    # a new key is a new action
    assert _alias(api_url, _headers(client, uuid.uuid4().hex)).status_code == 200
    assert _alias_events(plane) == 2


def test_copies_racing_one_key_run_once_and_all_get_the_answer(
    api_url: str, client: Client, plane: ControlPlane, registered: None
) -> None:
    key = uuid.uuid4().hex
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: _alias(api_url, _headers(client, key)), range(6)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    assert sum(a.headers.get(REPLAYED_HEADER) == "true" for a in answers) == 5
    assert _alias_events(plane) == 1


def test_one_key_for_another_request_or_caller_is_refused_and_changes_nothing(
    api_url: str, client: Client, plane: ControlPlane, registered: None
) -> None:
    key = uuid.uuid4().hex
    assert _alias(api_url, _headers(client, key)).status_code == 200
    other_body = _alias(api_url, _headers(client, key), alias="challenger")
    other_actor = _alias(api_url, _headers(client, key, actor="mallory"))
    for refused in (other_body, other_actor):
        assert refused.status_code == 422
        assert "already used for a different request" in refused.json()["error"]["message"]
    assert _alias_events(plane) == 1
    assert "challenger" not in client.get_model("churn").aliases


def test_a_refusal_is_replayed_too_and_a_malformed_key_is_refused(
    api_url: str, client: Client, registered: None
) -> None:
    key = uuid.uuid4().hex
    first = _alias(api_url, _headers(client, key), version=99)
    again = _alias(api_url, _headers(client, key), version=99)
    assert first.status_code == again.status_code == 404
    assert again.json() == first.json()
    assert again.headers[REPLAYED_HEADER] == "true"
    bad = _alias(api_url, _headers(client, "short"))
    assert bad.status_code == 422
    assert "Idempotency-Key" in bad.json()["error"]["message"]


def test_without_the_token_a_key_is_neither_replayed_nor_taken(
    api_url: str, client: Client, plane: ControlPlane, registered: None
) -> None:
    key = uuid.uuid4().hex
    answer = _alias(api_url, _headers(client, key))
    assert answer.status_code == 200
    stranger = {IDEMPOTENCY_HEADER: key, ACTOR_HEADER: "alice"}
    refused = _alias(api_url, stranger)
    assert refused.status_code == 401
    assert "champion" not in refused.text
    fresh = uuid.uuid4().hex
    assert _alias(api_url, {IDEMPOTENCY_HEADER: fresh}).status_code == 401
    # the unauthenticated attempt did not claim the fresh key: the owner can still use it
    assert _alias(api_url, _headers(client, fresh)).status_code == 200
    assert _alias_events(plane) == 2


def test_the_client_sends_a_key_with_every_changing_call(client: Client, registered: None) -> None:
    sent: list[httpx.Request] = []
    client._http.event_hooks["request"].append(sent.append)
    client.set_alias("churn", "champion", 1)
    client.list_models()
    keys = [r.headers.get(IDEMPOTENCY_HEADER) for r in sent]
    assert keys[0]
    assert len(keys[0]) == 32
    assert keys[1] is None
