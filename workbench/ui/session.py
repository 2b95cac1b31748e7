"""Hand the feed's updates to one page: on its own document's event loop, or directly in a notebook.

The feed calls listeners on its thread. A served page's Bokeh document may only be changed on the
server's event loop, so each update is scheduled there with ``add_next_tick_callback`` (safe from other
threads) and applied with that document current. The subscription ends with the session, so a closed
tab costs nothing. In a notebook there is no server session: the update is applied where it arrives,
under ``NOTEBOOK_LOCK``, which the notebook's cell outputs hold while Panel builds their Bokeh models
(an update that swapped a pane mid-render detached the model being rendered: "A Bokeh Model must be
part of a Document").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import panel as pn
from panel.io.state import set_curdoc

from workbench.ui.feed import DashboardFeed, Update

log = logging.getLogger("workbench.ui")

#: Serialises a notebook's view updates (feed thread, background reads) with the rendering of its outputs.
NOTEBOOK_LOCK = threading.RLock()


def _apply(doc: Any, apply: Callable[[Update], None], update: Update) -> None:
    with set_curdoc(doc):
        try:
            apply(update)
        except Exception:
            log.exception("dashboard page: applying an update failed")


def follow(feed: DashboardFeed, apply: Callable[[Update], None]) -> Callable[[], None]:
    """Call ``apply`` with every update from now on, in the right place; returns the unsubscribe."""
    doc = pn.state.curdoc
    served = doc is not None and getattr(doc, "session_context", None) is not None
    if not served:

        def direct(update: Update) -> None:
            with NOTEBOOK_LOCK:
                try:
                    apply(update)
                except Exception:
                    log.exception("notebook view: applying an update failed")

        return feed.subscribe(direct)

    assert doc is not None

    def scheduled(update: Update) -> None:
        doc.add_next_tick_callback(partial(_apply, doc, apply, update))

    unsubscribe = feed.subscribe(scheduled)
    pn.state.on_session_destroyed(lambda _context: unsubscribe())
    return unsubscribe
