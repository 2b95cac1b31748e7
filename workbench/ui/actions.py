"""Every button that changes something: propose (show what will change), confirm, run, report.

One desk per page. A proposal is a :class:`~workbench.ui.plans.Preview` (routes before → after,
computed from what the page shows) and the call that carries it out. Confirming re-checks the sign-in,
then runs the call off the event loop (a deploy waits for replicas; the page and every other page stay
live meanwhile) with a client acting as the signed-in user, and shows the control plane's answer: its
message on success, its refusal (deleted meanwhile, stale revision, rejected version) as a readable
line on failure. Nothing here decides anything: the control plane does, through ``workbench.Client``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import param

from workbench.client import Client
from workbench.errors import WorkbenchError
from workbench.ui.plans import Preview

log = logging.getLogger("workbench.ui")

#: Runs the action and returns what it did, in words.
Perform = Callable[[Client, Preview], str]


@dataclass(frozen=True)
class Proposal:
    preview: Preview
    perform: Perform


class ActionDesk(param.Parameterized):
    """The pending proposal and the last outcome; the page's confirmation box is a view of it."""

    pending = param.ClassSelector(class_=Proposal, default=None, allow_None=True)
    busy = param.Boolean(default=False)
    outcome = param.String(default="", doc="what the last action did, or why it was refused")
    failed = param.Boolean(default=False)

    def __init__(
        self,
        client_for: Callable[[str], Client],
        *,
        user: Callable[[], str | None],
        sign_in_valid: Callable[[], bool] = lambda: True,
        after: Callable[[], None] = lambda: None,
        **params: object,
    ) -> None:
        super().__init__(**params)
        self._client_for = client_for
        self._user = user
        self._sign_in_valid = sign_in_valid
        self._after = after

    def client(self) -> Client:
        """A client acting as the signed-in user, for the reads a form needs before proposing."""
        return self._client_for(self._user() or "unknown")

    def propose(self, preview: Preview, perform: Perform) -> None:
        if self.busy:
            return
        self.outcome, self.failed = "", False
        self.pending = Proposal(preview, perform)

    def refuse(self, message: str) -> None:
        """A proposal that cannot even be previewed (nowhere to roll back to, a bad form value)."""
        self.pending = None
        self.outcome, self.failed = message, True

    def cancel(self) -> None:
        if not self.busy:
            self.pending = None

    def confirm_now(self) -> None:
        """Synchronous confirm, for notebooks and tests: the same checks and the same call."""
        proposal = self._take()
        if proposal is None:
            return
        self._finish(*self._run(proposal))

    async def confirm(self) -> None:
        """Run the pending proposal without blocking the page's event loop."""
        proposal = self._take()
        if proposal is None:
            return
        ok, message = await asyncio.to_thread(self._run, proposal)
        self._finish(ok, message)

    def _take(self) -> Proposal | None:
        proposal = self.pending
        if proposal is None or self.busy:
            return None
        user = self._user()
        if not user or not self._sign_in_valid():
            self.pending = None
            self.outcome = "Your sign-in has expired: nothing was changed. Sign in again to act."
            self.failed = True
            return None
        self.busy = True
        return proposal

    def _run(self, proposal: Proposal) -> tuple[bool, str]:
        user = self._user() or "unknown"
        try:
            with self._client_for(user) as client:
                return True, proposal.perform(client, proposal.preview)
        except WorkbenchError as exc:
            return False, f"Refused, nothing changed: {exc}"
        except Exception as exc:  # the page must say something rather than hang in "busy"
            log.exception("dashboard action failed")
            return False, f"Failed: {type(exc).__name__}: {exc}"

    def _finish(self, ok: bool, message: str) -> None:
        self.busy = False
        self.pending = None
        self.outcome, self.failed = message, not ok
        self._after()
