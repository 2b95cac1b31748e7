"""Who is signed in to a page, and whether that sign-in still holds when they confirm an action.

Panel's basic-auth login sets a signed ``user`` cookie (tornado's signature carries its issue time).
The page's websocket outlives the cookie's expiry, so an action re-checks the cookie the session was
opened with against the sign-in lifetime: a confirmation clicked after the sign-in expired changes
nothing and says so.
"""

from __future__ import annotations

from typing import Any

import panel as pn
from tornado.web import decode_signed_value


def signed_in_user() -> str | None:
    user = pn.state.user
    return str(user) if user else None


def sign_in_valid(cookie_secret: str, session_s: float) -> bool:
    """True when the session's ``user`` cookie is signed by this server and younger than ``session_s``.

    Outside a served page (a notebook) there is no sign-in to check: the notebook's own client acts.
    """
    doc = pn.state.curdoc
    context: Any = getattr(doc, "session_context", None) if doc is not None else None
    if context is None or not cookie_secret:
        return True
    request = getattr(context, "request", None)
    cookies = getattr(request, "cookies", None) or {}
    raw = cookies.get("user")
    if not raw:
        return False
    value = raw if isinstance(raw, str) else getattr(raw, "value", str(raw))
    decoded = decode_signed_value(cookie_secret, "user", value, max_age_days=session_s / 86_400)
    return decoded is not None
