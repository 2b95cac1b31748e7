"""Feast without typeguard's instrumentation, in the processes where no user definition is checked.

Feast decorates its definition classes (Entity, FeatureView, Field, the data sources: 23 decorators, 242
functions) with typeguard's ``@typechecked``, and typeguard 4 instruments each function by parsing and
compiling its module's source again at import. That is 6.5 s of the 12 s of CPU an ``import feast``
costs on this machine (``python -X importtime``, cProfile: ``compile`` and ``ast`` visits), paid by every
materialisation, every replica with a feature lookup and the control plane's registry reads.

The checks matter where a user's definitions are loaded: ``feast apply`` (its own process, run with
Feast's defaults, so a ``ttl=5`` instead of a ``timedelta`` is still refused with typeguard's message).
Elsewhere the definitions come back from the registry Feast wrote after those checks, and the
instrumentation only costs time, so it is skipped.
"""

from __future__ import annotations

import sys
from typing import Any

#: ``python -c`` code for Feast's CLI without the instrumentation (no workbench import: it starts faster).
UNCHECKED_CLI = (
    "import sys, typeguard; "
    "typeguard.typechecked = lambda target=None, **_: target if target is not None else (lambda t: t); "
    "from feast.cli.cli import cli; sys.exit(cli())"
)


def skip_typechecks() -> None:
    """Before Feast's first import in this process (after it, too late: nothing changes)."""
    if "feast" in sys.modules:
        return
    try:
        import typeguard
    except ImportError:  # a Feast without typeguard has nothing to skip
        return
    typeguard.typechecked = _unchecked


def _unchecked(target: Any = None, **_options: Any) -> Any:
    """``@typechecked`` and ``@typechecked(...)`` as no-ops."""
    return target if target is not None else _unchecked
