"""What every widget here is to Jupyter: an object that displays its ``view`` and closes it.

The widgets hold ipywidgets rather than subclass them: their logic stays in plain typed methods (the
ipywidgets classes are untyped), and a test drives them without a frontend.
"""

from __future__ import annotations

from typing import Any


class Viewer:
    view: Any  # the ipywidgets box ``_layout`` built

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.view._repr_mimebundle_(**kwargs)

    def close(self) -> None:
        """Close the view and every widget in it (their comms, in a kernel)."""
        _close_tree(self.view)


def _close_tree(widget: Any) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()
