"""Bearer-token authentication for the control plane.

The token is generated on first start into the home with mode 0600, so only the user who runs the
control plane (and the clients they start) can read it. Comparison is constant-time.
"""

from __future__ import annotations

import re
import secrets

from fastapi import Request

from workbench.errors import AuthenticationError
from workbench.protocol import ACTOR_HEADER
from workbench.settings import Settings
from workbench.tokens import ensure_token

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def bearer_matches(authorization: str, token: str) -> bool:
    """``Authorization: Bearer <token>`` with this token (constant-time)."""
    scheme, _, presented = authorization.partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(presented.strip().encode(), token.encode())


#: Reads that stay behind the token when WORKBENCH_OPEN_READS opens the others: a model version's files.
_WEIGHTS = re.compile(r"/models/[^/]+/versions/[^/]+/model$")


class TokenAuth:
    """A FastAPI dependency: every call needs the token, except reads when configured open."""

    def __init__(self, token: str, *, open_reads: bool) -> None:
        self._token = token
        self._open_reads = open_reads

    def __call__(self, request: Request) -> None:
        if (
            self._open_reads
            and request.method in _SAFE_METHODS
            and not _WEIGHTS.search(request.url.path)  # a model's files are not a read to leave open
        ):
            return
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if not header:
            raise AuthenticationError("missing bearer token: send 'Authorization: Bearer <token>'")
        if scheme.lower() != "bearer" or not presented:
            raise AuthenticationError("malformed Authorization header: expected 'Bearer <token>'")
        if not bearer_matches(header, self._token):
            raise AuthenticationError("invalid bearer token")


def actor_of(request: Request) -> str:
    """Who made the call, as the client declares it (the token proves access, not identity)."""
    actor = request.headers.get(ACTOR_HEADER, "").strip()
    return actor[:200] if actor else "api"


def token_for(settings: Settings) -> str:
    return ensure_token(settings.token_file)
