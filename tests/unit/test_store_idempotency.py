"""The idempotency store's rules: claim once, keep definitive answers, release after a server error."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.store import Database, migrate
from workbench.store import idempotency as module
from workbench.store.idempotency import IdempotencyStore

REQUEST = {
    "actor": "alice",
    "method": "POST",
    "path": "/api/v1/endpoints/e/rollback",
    "fingerprint": "f" * 64,
}


@pytest.fixture
def store(tmp_path: Path) -> IdempotencyStore:
    db = Database(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(db)
    return IdempotencyStore(db)


def test_the_first_copy_claims_a_second_waits_then_gets_the_answer(store: IdempotencyStore) -> None:
    assert store.claim("k" * 16, **REQUEST).claimed
    assert store.claim("k" * 16, **REQUEST).running
    store.answer("k" * 16, 201, b'{"ok": true}', "application/json")
    again = store.claim("k" * 16, **REQUEST)
    assert not again.claimed
    assert again.answer is not None
    assert (again.answer.status, again.answer.body) == (201, b'{"ok": true}')


def test_a_server_error_or_a_crash_releases_the_key(store: IdempotencyStore) -> None:
    store.claim("a" * 16, **REQUEST)
    store.answer("a" * 16, 503, b"{}", "application/json")
    assert store.claim("a" * 16, **REQUEST).claimed
    store.release("a" * 16)
    assert store.claim("a" * 16, **REQUEST).claimed


def test_a_claim_never_answered_is_taken_over_once_stale(
    store: IdempotencyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.claim("b" * 16, **REQUEST)
    monkeypatch.setattr(module, "STALE_CLAIM_S", -1.0)
    assert store.claim("b" * 16, **REQUEST).claimed


def test_another_request_under_the_key_is_a_mismatch(store: IdempotencyStore) -> None:
    store.claim("c" * 16, **REQUEST)
    store.answer("c" * 16, 200, b"{}", "application/json")
    for change in ({"actor": "bob"}, {"path": "/api/v1/endpoints/other/rollback"}, {"fingerprint": "0" * 64}):
        assert store.claim("c" * 16, **{**REQUEST, **change}).mismatch


def test_old_keys_are_forgotten(store: IdempotencyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.claim("d" * 16, **REQUEST)
    store.answer("d" * 16, 200, b"{}", "application/json")
    monkeypatch.setattr(module, "KEEP_S", -1.0)
    store._last_prune = 0.0
    assert store.claim("e" * 16, **REQUEST).claimed  # claiming prunes
    assert store.claim("d" * 16, **REQUEST).claimed
