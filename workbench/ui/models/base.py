"""What every page model shares: the feed it follows and the desk its actions go through."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import param

from workbench.ui.actions import ActionDesk
from workbench.ui.feed import DashboardFeed, Snapshot, Update
from workbench.ui.session import follow


class PageModel(param.Parameterized):
    """Follows the feed from construction; ``apply`` turns each update into parameter values."""

    snapshot = param.ClassSelector(class_=Snapshot, default=Snapshot(), doc="the control plane's state")
    error = param.String(default="", doc="why the control plane could not be read, if it could not")

    def __init__(self, feed: DashboardFeed, desk: ActionDesk, *, live: bool = True, **params: Any) -> None:
        super().__init__(**params)
        self.feed = feed
        self.desk = desk
        self._unfollow: Callable[[], None] | None = None
        if live:
            feed.fresh()  # the first page after an idle spell draws the state as it is now
            if self.asks_for_unseen(feed.snapshot):
                # Named in the page's address but not in the feed's state: it may have been made since
                # the feed's last poll began. Without this wait the page drew another one instead.
                feed.fresh(newer=True)
        self.load()
        if live:
            self._unfollow = follow(feed, self._on_update)

    def asks_for_unseen(self, snapshot: Snapshot) -> bool:
        """Whether this page was asked for something (by name or id) that ``snapshot`` does not hold."""
        return False

    def load(self) -> None:
        """Draw from what the feed already holds: a page has data at once, without asking the control plane."""
        self.snapshot = self.feed.snapshot
        self.error = self.feed.snapshot.error or ""

    def _on_update(self, update: Update) -> None:
        self.error = update.snapshot.error or ""
        if "error" in update.changed:
            return
        self.apply(update)
        if "state" in update.changed:
            self.snapshot = update.snapshot

    def set_if_changed(self, **values: Any) -> None:
        """Assign only what differs: param cannot compare records, so it would signal every assignment,
        and each signal re-draws part of every page following this model."""
        changed = {name: value for name, value in values.items() if getattr(self, name) != value}
        if changed:
            self.param.update(**changed)

    def apply(self, update: Update) -> None:
        """Subclasses take what they show from the update (new points, new events)."""

    def close(self) -> None:
        if self._unfollow is not None:
            self._unfollow()
            self._unfollow = None
