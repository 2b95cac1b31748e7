"""Archived files opened in place: Evidently reports and executed runbook notebooks, behind the sign-in.

The control plane serves them only with its token, which the browser must never hold, so the
dashboard fetches them server-side for a signed-in user and passes them on. They are served with a
``sandbox`` Content-Security-Policy: a report's scripts run (Evidently draws with them) but in an
opaque origin, so nothing in an archived file can read the dashboard's cookies or drive its actions.
"""

from __future__ import annotations

import re
from typing import Any

from tornado.web import HTTPError, RequestHandler

from workbench.errors import NotFoundError, WorkbenchError
from workbench.ui.context import DashboardContext

_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MONITOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SANDBOX = "sandbox allow-scripts allow-popups"


class ArchivedFileHandler(RequestHandler):
    """``/files/report/MONITOR/ID`` and ``/files/run/RUN_ID``: HTML from the archive, signed-in only."""

    def initialize(self, context: DashboardContext) -> None:
        self.context = context

    def get_current_user(self) -> Any:
        user = self.get_secure_cookie("user", max_age_days=self.context.session_s / 86_400)
        return user.decode("utf-8") if user else None

    def get(self, kind: str, *parts: str) -> None:
        user = self.current_user
        if not user:
            self.redirect(f"/login?next={self.request.uri}")
            return
        try:
            with self.context.client_for(user) as client:
                body = self._fetch(client, kind, parts)
        except NotFoundError as exc:
            raise HTTPError(404, reason=str(exc)[:200]) from None
        except WorkbenchError as exc:
            raise HTTPError(502, reason=str(exc)[:200]) from None
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", SANDBOX)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.write(body)

    def _fetch(self, client: Any, kind: str, parts: tuple[str, ...]) -> bytes:
        if kind == "report" and len(parts) == 2 and _MONITOR.match(parts[0]) and parts[1].isdigit():
            return bytes(client.drift_report_file(parts[0], int(parts[1]), kind="html"))
        if kind == "run" and len(parts) == 1 and _RUN_ID.match(parts[0]):
            return bytes(client.run_notebook(parts[0], format="html"))
        raise HTTPError(404, reason="no such archived file")


def file_patterns(context: DashboardContext) -> list[tuple[str, type[RequestHandler], dict[str, Any]]]:
    return [
        (r"/files/(report)/([^/]+)/([0-9]+)", ArchivedFileHandler, {"context": context}),
        (r"/files/(run)/([^/]+)", ArchivedFileHandler, {"context": context}),
    ]


def report_url(monitor: str, report_id: int) -> str:
    return f"./files/report/{monitor}/{report_id}"


def run_url(run_id: str) -> str:
    return f"./files/run/{run_id}"
