"""Helpers a runbook uses from inside its kernel: validate parameters, talk to the control plane, and
end with a summary the engine records.

The summary is displayed as a MIME bundle: readers of the notebook see a table, and the engine reads the
same data from the executed notebook (``application/vnd.workbench.summary+json``), so what is recorded is
exactly what the notebook showed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from workbench.client import Client

SUMMARY_MIME = "application/vnd.workbench.summary+json"


class ParameterError(ValueError):
    """A runbook parameter is wrong; raised by the runbook's first cell, before anything changes."""


def require(condition: object, message: str) -> None:
    if not condition:
        raise ParameterError(message)


def require_one_of(name: str, value: object, allowed: tuple[object, ...]) -> None:
    if value not in allowed:
        raise ParameterError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


def require_number(name: str, value: object, *, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParameterError(f"{name} must be a number, got {value!r}")
    if low is not None and value < low:
        raise ParameterError(f"{name} must be at least {low:g}, got {value!r}")
    if high is not None and value > high:
        raise ParameterError(f"{name} must be at most {high:g}, got {value!r}")
    return float(value)


def connect() -> Client:
    """The control plane that started this run (``WORKBENCH_URL`` and its token), as the run's actor."""
    return Client()


def wait_for(
    condition: Callable[[], Any], *, timeout_s: float, every_s: float = 1.0, what: str = "condition"
) -> Any:
    """Poll until ``condition()`` is truthy; its value is returned. A timeout is a clear error."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not reached within {timeout_s:g}s")
        time.sleep(every_s)


def _markdown(outcome: str, fields: dict[str, Any]) -> str:
    rows = "\n".join(f"| {key} | {value} |" for key, value in fields.items())
    return f"**Summary: {outcome}**\n\n| | |\n|---|---|\n{rows}\n"


def summarise(outcome: str, **fields: Any) -> dict[str, Any]:
    """Display the run's summary; the last one displayed is the one recorded."""
    from IPython.display import display

    data = {"outcome": outcome, **fields}
    display({SUMMARY_MIME: data, "text/markdown": _markdown(outcome, fields)}, raw=True)  # type: ignore[no-untyped-call]
    return data
