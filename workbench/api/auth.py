"""Bearer-token authentication for the control plane.

The token is generated on first start into the home with mode 0600, so only the user who runs the
control plane (and the clients they start) can read it. Comparison is constant-time.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from fastapi import Request

from workbench.errors import AuthenticationError
from workbench.protocol import ACTOR_HEADER
from workbench.settings import Settings

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def ensure_token(token_file: Path) -> str:
    """Return the API token, creating it (0600, never overwriting a concurrent writer's) if missing."""
    token_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if stat.S_IMODE(token_file.stat().st_mode) & 0o077:
            token_file.chmod(0o600)
        token = token_file.read_text().strip()
        if token:
            return token
        token_file.unlink()
        return ensure_token(token_file)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


class TokenAuth:
    """A FastAPI dependency: every call needs the token, except reads when configured open."""

    def __init__(self, token: str, *, open_reads: bool) -> None:
        self._token = token
        self._open_reads = open_reads

    def __call__(self, request: Request) -> None:
        if self._open_reads and request.method in _SAFE_METHODS:
            return
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if not header:
            raise AuthenticationError("missing bearer token: send 'Authorization: Bearer <token>'")
        if scheme.lower() != "bearer" or not presented:
            raise AuthenticationError("malformed Authorization header: expected 'Bearer <token>'")
        if not secrets.compare_digest(presented.strip().encode(), self._token.encode()):
            raise AuthenticationError("invalid bearer token")


def actor_of(request: Request) -> str:
    """Who made the call, as the client declares it (the token proves access, not identity)."""
    actor = request.headers.get(ACTOR_HEADER, "").strip()
    return actor[:200] if actor else "api"


def token_for(settings: Settings) -> str:
    return ensure_token(settings.token_file)
