"""One watcher of the control plane per Jupyter server, shared by every open JupyterLab tab.

The feed (the dashboards' poller, without the monitors' history a sidebar does not draw) polls once a
second while at least one tab listens, and stops ``idle_stop_s`` after the last one leaves: a server
with no open sidebar, or only hidden tabs (they disconnect), costs the control plane nothing. Each poll
becomes the same messages for all tabs: the whole sidebar state when something changed; otherwise the
experiments whose entry a new look changed (only those endpoints), and the live numbers. A tab that
reads too slowly skips to the newest messages rather than queueing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from workbench.client import Client
from workbench.jupyter.sidebar import experiment_delta, experiments_by_endpoint, sidebar_state, traffic_delta
from workbench.ui.feed import DashboardFeed, Update

log = logging.getLogger("workbench.jupyter")

#: Seconds of traffic the live numbers are taken over (the overview's "now").
RECENT_S = 10
#: Messages a tab may fall behind by before older ones are dropped (it gets the newest state anyway).
QUEUE = 8

Message = tuple[str, dict[str, Any]]


class LiveHub:
    def __init__(
        self,
        client_factory: Callable[[], Client],
        *,
        every_s: float = 1.0,
        idle_stop_s: float = 15.0,
    ) -> None:
        self._client_factory = client_factory
        self.every_s = every_s
        self.idle_stop_s = idle_stop_s
        self._feed: DashboardFeed | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._queues: set[asyncio.Queue[Message]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_timer: asyncio.TimerHandle | None = None
        self._lock = threading.Lock()
        #: Each endpoint's experiment entry as last sent to the tabs (on the feed's thread only).
        self._experiments: dict[str, dict[str, Any] | None] = {}

    # ----------------------------------------------------------- listeners
    @property
    def listeners(self) -> int:
        return len(self._queues)

    @property
    def requests(self) -> int:
        """Calls the feed made to the control plane (for the load measurement)."""
        feed = self._feed
        return feed.requests if feed is not None else 0

    def subscribe(self) -> asyncio.Queue[Message]:
        """A queue of messages for one tab; the first listener starts the watcher."""
        self._loop = asyncio.get_running_loop()
        if self._stop_timer is not None:
            self._stop_timer.cancel()
            self._stop_timer = None
        queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=QUEUE)
        self._queues.add(queue)
        self._ensure_feed()
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Message]) -> None:
        self._queues.discard(queue)
        if not self._queues and self._loop is not None and self._stop_timer is None:
            self._stop_timer = self._loop.call_later(self.idle_stop_s, self._stop_if_idle)

    def poke(self) -> None:
        """Poll now (after an action), so every tab sees its effect without waiting for the next second."""
        if self._feed is not None:
            self._feed.poke()

    # ---------------------------------------------------------------- state
    def state(self, wait_s: float = 5.0) -> dict[str, Any]:
        """The sidebar's whole state; the first read after a start waits for the first poll."""
        feed = self._ensure_feed()
        feed.ready.wait(wait_s)
        return self._state(feed, feed.snapshot, feed.totals)

    def _state(self, feed: DashboardFeed, snapshot: Any, totals: dict[str, Any]) -> dict[str, Any]:
        recent = {e.spec.name: feed.traffic(e.spec.name, RECENT_S) for e in snapshot.endpoints}
        return sidebar_state(snapshot, totals, recent)

    # ---------------------------------------------------------------- feed
    def _ensure_feed(self) -> DashboardFeed:
        with self._lock:
            if self._feed is None:
                feed = DashboardFeed(
                    self._client_factory, every_s=self.every_s, keep_s=60, monitor_history=False
                )
                self._unsubscribe = feed.subscribe(self._on_update)
                feed.start()
                self._feed = feed
            return self._feed

    def _stop_if_idle(self) -> None:
        self._stop_timer = None
        if self._queues:
            return
        with self._lock:
            feed, self._feed = self._feed, None
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
        if feed is not None:
            threading.Thread(target=feed.stop, name="workbench-feed-stop", daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            feed, self._feed = self._feed, None
        if feed is not None:
            feed.stop()

    def _on_update(self, update: Update) -> None:
        """On the feed's thread: build the messages once, hand them to the server's loop for every tab."""
        feed = self._feed
        loop = self._loop
        if feed is None or loop is None or not self._queues:
            return
        messages: list[Message] = []
        if update.changed & {"state", "error"}:
            state = self._state(feed, update.snapshot, update.totals)
            self._experiments = {e["name"]: e["experiment"] for e in state["endpoints"]}
            messages.append(("state", state))
        else:
            if "experiments" in update.changed:
                current = experiments_by_endpoint(update.snapshot)
                changed = experiment_delta(self._experiments, current)
                self._experiments = current
                if changed:
                    messages.append(("experiments", {"at": time.time(), "endpoints": changed}))
            if "traffic" in update.changed:
                recent = {e.spec.name: feed.traffic(e.spec.name, RECENT_S) for e in update.snapshot.endpoints}
                messages.append(("traffic", traffic_delta(update.snapshot, update.totals, recent)))
        for message in messages:
            with contextlib.suppress(RuntimeError):  # the server's loop has closed: the server is stopping
                loop.call_soon_threadsafe(self._broadcast, message)

    def _broadcast(self, message: Message) -> None:
        for queue in list(self._queues):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()  # a slow tab skips to the newest
            queue.put_nowait(message)
