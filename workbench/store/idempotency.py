"""Idempotency keys: a changing call sent twice with one key runs once, and the second gets the first's answer.

A double click, or a retry after a dropped connection, repeats a call whose first copy may already have
deployed, rolled back or started a runbook. The client sends an ``Idempotency-Key`` with every changing
call; the first copy claims the key here (a primary-key insert, so two copies racing cannot both claim
it), and its answer is stored with it. A later copy with the same key, the same caller and the same
request gets that stored answer; the same key with a different request is refused, as it is a client bug.

What is kept: definitive answers (2xx and 4xx). A 5xx releases the key, so the retry runs again: a server
error says nothing was decided. A claim whose request never finished (the control plane was killed
mid-call) is taken over after ``STALE_CLAIM_S``. Keys are kept ``KEEP_S`` and then forgotten.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from workbench.store.engine import Database
from workbench.store.schema import idempotent_requests

#: How long an answer is kept for replay: longer than any client's retries, short enough to stay small.
KEEP_S = 24 * 3600.0
#: A claim older than this whose request never answered belongs to a control plane that died mid-call.
STALE_CLAIM_S = 600.0


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: bytes
    content_type: str


@dataclass(frozen=True)
class Claim:
    """What claiming a key found: ``claimed`` (run the call), or the earlier copy's state."""

    claimed: bool
    answer: StoredAnswer | None = None  # the earlier copy has answered
    mismatch: bool = False  # the key was used for another request or by another caller
    running: bool = False  # the earlier copy has not answered yet


class IdempotencyStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._last_prune = 0.0

    def claim(self, key: str, *, actor: str, method: str, path: str, fingerprint: str) -> Claim:
        now = time.time()
        self._prune(now)
        row_values = {
            "key": key,
            "actor": actor,
            "method": method,
            "path": path,
            "fingerprint": fingerprint,
            "claimed_at": now,
            "answered_at": None,
            "status": None,
            "body": None,
            "content_type": None,
        }
        try:
            with self._db.write() as connection:
                connection.execute(insert(idempotent_requests).values(**row_values))
            return Claim(claimed=True)
        except IntegrityError:
            pass
        with self._db.write() as connection:
            row = (
                connection.execute(select(idempotent_requests).where(idempotent_requests.c.key == key))
                .mappings()
                .first()
            )
            if row is None:  # released between the insert and this read: claim it now
                connection.execute(insert(idempotent_requests).values(**row_values))
                return Claim(claimed=True)
            same = (row["actor"], row["method"], row["path"], row["fingerprint"]) == (
                actor,
                method,
                path,
                fingerprint,
            )
            if not same:
                return Claim(claimed=False, mismatch=True)
            if row["answered_at"] is not None:
                answer = StoredAnswer(int(row["status"]), bytes(row["body"]), str(row["content_type"]))
                return Claim(claimed=False, answer=answer)
            if now - float(row["claimed_at"]) > STALE_CLAIM_S:
                connection.execute(
                    update(idempotent_requests).where(idempotent_requests.c.key == key).values(claimed_at=now)
                )
                return Claim(claimed=True)
            return Claim(claimed=False, running=True)

    def answer(self, key: str, status: int, body: bytes, content_type: str) -> None:
        """Keep a definitive answer for replays; release the key after a server error."""
        if status >= 500:
            self.release(key)
            return
        with self._db.write() as connection:
            connection.execute(
                update(idempotent_requests)
                .where(idempotent_requests.c.key == key)
                .values(answered_at=time.time(), status=status, body=body, content_type=content_type)
            )

    def release(self, key: str) -> None:
        """The call failed before it answered (it raised): a retry may run it."""
        with self._db.write() as connection:
            connection.execute(delete(idempotent_requests).where(idempotent_requests.c.key == key))

    def _prune(self, now: float) -> None:
        if now - self._last_prune < 60.0:
            return
        self._last_prune = now
        with self._db.write() as connection:
            connection.execute(
                delete(idempotent_requests).where(idempotent_requests.c.claimed_at < now - KEEP_S)
            )
