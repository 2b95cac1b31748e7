"""What every page of one dashboard process shares: where the control plane is, the feed, sign-in rules.

The control-plane token lives here, on the server, and is used only by clients created here; no page
receives it. Actions are made with a client whose actor is the signed-in user, so the audit log names
the person who clicked, not the dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.client import Client
from workbench.settings import Settings
from workbench.ui.feed import DashboardFeed

#: How long a sign-in lasts; an action confirmed after it is refused (sign in again).
DEFAULT_SESSION_S = 8 * 3600.0


@dataclass
class DashboardContext:
    settings: Settings = field(repr=False)  # may hold the token: never in a repr, a log or a page
    api_url: str
    feed: DashboardFeed = field(repr=False)
    session_s: float = DEFAULT_SESSION_S
    cookie_secret: str = field(default="", repr=False)

    def client_for(self, actor: str) -> Client:
        return Client(self.api_url, settings=self.settings, actor=actor, timeout=600.0)

    @classmethod
    def for_settings(
        cls, settings: Settings, *, api_url: str | None = None, **options: object
    ) -> DashboardContext:
        url = (api_url or settings.api_url).rstrip("/")
        feed = DashboardFeed(lambda: Client(url, settings=settings, actor="dashboard"))
        return cls(settings=settings, api_url=url, feed=feed, **options)  # type: ignore[arg-type]
