"""Reading monitor history: a time range, a step, and which series; checked before any query runs.

Points are kept as each look computed them (``workbench.store.history``); a read groups them per step
of ``step_s`` seconds from ``start`` and returns, per step that holds points, their mean, min, max and
count, column-wise (``{"ts": [...], "mean": [...], ...}``): what a chart's data source takes as is.
Steps without points are left out rather than filled, so a gap in the data stays visible. A step of
whole minutes (60, 300, 3600 s...) is answered from per-minute rollups, which are kept longer than the
points (``WORKBENCH_HISTORY_ROLLUP_RETENTION_S`` against ``WORKBENCH_HISTORY_RETENTION_S``); its range
starts on a minute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from workbench.errors import ValidationError
from workbench.store.history import rollup_start

AGGREGATIONS = ("mean", "min", "max", "count")
MIN_STEP_S = 0.001
MAX_SPAN_S = 366 * 86_400.0
#: Steps in one range (a 10,000-pixel-wide chart is already more than any screen shows).
MAX_STEPS = 10_000
#: Series x steps in one answer.
MAX_POINTS = 500_000
#: Without ``step_s``, the range is cut into about this many steps (at least one second each).
DEFAULT_STEPS = 1_000
DEFAULT_RANGE_S = 3_600.0
MAX_NAMES = 200


@dataclass(frozen=True)
class HistoryQuery:
    start: float
    end: float
    step_s: float
    steps: int


def _finite(name: str, value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValidationError(f"{name} must be a finite, non-negative number (epoch seconds)", field=name)
    return float(value)


def plan(*, start: float | None, end: float | None, step_s: float | None, now: float) -> HistoryQuery:
    """Check a range and step; the defaults are the last hour and about 1,000 steps."""
    stop = now if end is None else _finite("end", end)
    first = stop - DEFAULT_RANGE_S if start is None else _finite("start", start)
    first = max(first, 0.0)
    if first > stop:
        raise ValidationError("start must be at or before end", start=first, end=stop)
    span = stop - first
    if span > MAX_SPAN_S:
        raise ValidationError(f"the range spans {span:.0f} s; at most {MAX_SPAN_S:.0f} s", span_s=span)
    if step_s is None:
        step = max(1.0, span / DEFAULT_STEPS)
    else:
        if not (math.isfinite(step_s) and MIN_STEP_S <= step_s <= MAX_SPAN_S):
            raise ValidationError(
                f"step_s must be between {MIN_STEP_S} and {MAX_SPAN_S:.0f} seconds", field="step_s"
            )
        step = float(step_s)
    # A step of whole minutes is read from the per-minute rollups: its steps start on a minute.
    first = rollup_start(first, step)
    span = stop - first
    steps = math.floor(span / step) + 1
    if steps > MAX_STEPS:
        raise ValidationError(
            f"{span:g} s at step_s {step:g} gives {steps} steps; at most {MAX_STEPS} "
            f"(use step_s >= {span / (MAX_STEPS - 1):.3g})",
            steps=steps,
        )
    return HistoryQuery(start=first, end=stop, step_s=step, steps=steps)


def check_size(query: HistoryQuery, series: int) -> None:
    if series * query.steps > MAX_POINTS:
        raise ValidationError(
            f"{series} series x {query.steps} steps is more than {MAX_POINTS} points: "
            "ask for fewer series, a shorter range or a larger step_s",
            series=series,
            steps=query.steps,
        )


def check_names(field: str, names: list[str] | None) -> list[str] | None:
    if names is None:
        return None
    if len(names) > MAX_NAMES:
        raise ValidationError(f"at most {MAX_NAMES} values of {field}", field=field)
    return list(dict.fromkeys(names))
