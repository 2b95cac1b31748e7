"""A notebook's view is never changed by the feed's thread while the kernel renders it.

CI once failed with Bokeh's "A Bokeh Model must be part of a Document": the feed thread swapped a pane
of the drift view while the cell output was being built. Updates and rendering now share one lock.
"""

from __future__ import annotations

import threading
from typing import Any

import panel as pn
from panel.viewable import Viewer

from workbench.ui.notebook import Inline
from workbench.ui.session import NOTEBOOK_LOCK, follow


def held_elsewhere() -> bool:
    """Whether another thread holds the lock (a non-blocking try from a fresh thread fails)."""
    answer: list[bool] = []

    def probe() -> None:
        got = NOTEBOOK_LOCK.acquire(blocking=False)
        if got:
            NOTEBOOK_LOCK.release()
        answer.append(not got)

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return answer[0]


class Probe(Viewer):
    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.seen: list[bool] = []
        self.model = None

    def __panel__(self) -> pn.viewable.Viewable:
        self.seen.append(held_elsewhere())
        return pn.pane.HTML("probe")


def test_an_inline_view_is_built_and_rendered_under_the_lock() -> None:
    probe = Probe()
    Inline(view=probe, desk=None)._repr_mimebundle_()
    assert probe.seen == [True]
    assert not held_elsewhere()


class FakeFeed:
    """Only the subscription of a feed: calls the listener when told."""

    def __init__(self) -> None:
        self.listener: Any = None

    def subscribe(self, listener: Any) -> Any:
        self.listener = listener
        return lambda: None


def test_a_notebook_update_waits_for_a_render_in_progress() -> None:
    feed = FakeFeed()
    applied = threading.Event()
    follow(feed, lambda _update: applied.set())  # type: ignore[arg-type]
    with NOTEBOOK_LOCK:  # a render in progress on the kernel's thread
        thread = threading.Thread(target=feed.listener, args=(object(),))
        thread.start()
        assert not applied.wait(0.3)
    thread.join(5)
    assert applied.is_set()
