"""A served page shows its first screen first, and adds the rest once the browser has drawn it.

Every Bokeh model of a page is built by the server, serialized, and rebuilt by the browser before
anything is drawn, so what is below the first screen delays the charts a person opened the page for.
A served page therefore opens with its first part and appends the rest from ``pn.state.onload``
(which Panel runs when the browser reports the document drawn), as one change. In a notebook there is
no session to report back: everything is shown at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import panel as pn


def served() -> bool:
    doc = pn.state.curdoc
    return doc is not None and getattr(doc, "session_context", None) is not None


def after_first_paint(callback: Callable[[], None]) -> None:
    """Run ``callback`` once the browser has drawn the page (served), or now (a notebook)."""
    if served():
        pn.state.onload(callback)
    else:
        callback()


def first_then_rest(first: Sequence[Any], rest: Callable[[], Sequence[Any]], **layout: Any) -> pn.Column:
    """A column of ``first``; ``rest()`` appended after the first paint when served, at once otherwise."""
    column = pn.Column(*first, **layout)
    after_first_paint(lambda: column.extend(list(rest())))
    return column
