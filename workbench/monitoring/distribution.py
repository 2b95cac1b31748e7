"""One column's reference and current-window distributions on shared bins, from the live histograms.

What a person checks after a drift score moves: where the window's values sit against the reference.
Nothing is re-read: the reference profile (fine quantile bins or value counts) and the window's counts
on those bins are what the live drift score is computed from, so the picture and the score agree.

* A continuous column is regrouped onto equal-width bins over the reference range, each fine bin's
  mass spread uniformly over its width (the same assumption the Wasserstein score makes); the share of
  the window below or above the reference range is given apart (``below``, ``above``).
* A discrete or categorical column, or a numeric one with few distinct values, is one bar per value
  seen in either; a numeric column with many distinct values is binned like a continuous one.

Shares, not counts: the reference has thousands of rows, the window may have a few hundred.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from workbench.errors import NotFoundError, ValidationError
from workbench.monitoring.drift import (
    DEFAULT_THRESHOLDS,
    ColumnKind,
    ColumnProfile,
    WindowHistogram,
    column_score,
)
from workbench.monitoring.window import PREDICTION

if TYPE_CHECKING:
    from workbench.monitoring.engine import MonitorEngine

DISPLAY_BINS = 30
#: A numeric column with at most this many distinct values (reference and window together) is drawn as bars.
MAX_VALUES = 40


def _shares(counts: NDArray[np.float64], total: float) -> list[float]:
    return [float(c) / total if total > 0 else 0.0 for c in counts]


def _binned_points(
    column: ColumnProfile, current: dict[float, float], current_n: float, bins: int
) -> dict[str, Any]:
    lo, hi = float(column.values[0]), float(column.values[-1])
    edges = np.linspace(lo, hi, bins + 1)
    reference, _ = np.histogram(column.values, bins=edges, weights=column.counts)
    values = np.asarray(list(current), dtype=np.float64)
    weights = np.asarray(list(current.values()), dtype=np.float64)
    inside = (values >= lo) & (values <= hi)
    window, _ = np.histogram(values[inside], bins=edges, weights=weights[inside])
    return {
        "kind": "bins",
        "edges": [float(e) for e in edges],
        "reference": _shares(reference, column.rows),
        "current": _shares(window, current_n),
        "below": float(weights[values < lo].sum()) / current_n if current_n else 0.0,
        "above": float(weights[values > hi].sum()) / current_n if current_n else 0.0,
    }


def column_distribution(
    column: ColumnProfile, window: WindowHistogram, *, bins: int = DISPLAY_BINS
) -> dict[str, Any]:
    """``{"kind": "bins", "edges", "reference", "current", "below", "above"}`` or
    ``{"kind": "values", "values", "reference", "current"}``: shares of each side's rows."""
    if bins < 1:
        raise ValidationError("bins must be at least 1", bins=bins)
    counts = window.counts(column.name)
    n = float(counts.n)
    if column.kind is ColumnKind.CONTINUOUS:
        fine = np.asarray(column.edges, dtype=np.float64)
        edges = np.linspace(fine[0], fine[-1], bins + 1)
        # Each side's CDF is piecewise linear over the fine bins: the mass of a display bin is the CDF's rise.
        ref_cdf = np.concatenate(([0.0], np.cumsum(column.counts)))
        cur_cdf = np.concatenate(([0.0], np.cumsum(counts.inner)))
        return {
            "kind": "bins",
            "edges": [float(e) for e in edges],
            "reference": _shares(np.diff(np.interp(edges, fine, ref_cdf)), column.rows),
            "current": _shares(np.diff(np.interp(edges, fine, cur_cdf)), n),
            "below": counts.below_n / n if n else 0.0,
            "above": counts.above_n / n if n else 0.0,
        }
    seen = sorted(set(column.values) | set(counts.discrete))
    if column.kind is ColumnKind.POINTS and len(seen) > MAX_VALUES:
        return _binned_points(column, counts.discrete, n, bins)
    reference = dict(zip(column.values, column.counts, strict=True))
    return {
        "kind": "values",
        "values": seen,
        "reference": [reference.get(v, 0.0) / column.rows for v in seen],
        "current": [counts.discrete.get(v, 0.0) / n if n else 0.0 for v in seen],
    }


def monitor_distribution(
    engine: MonitorEngine, name: str, column: str | None = None, *, bins: int = DISPLAY_BINS
) -> dict[str, Any]:
    """The monitor's current window against its reference for one watched column (the first by default),
    or ``prediction`` (the model's output) when the reference was scored; with the column's live score."""
    with engine.plane.db.read() as connection:
        engine.repo.get_monitor(connection, name)  # 404 for an unknown name, before a lock is made for it
    # The window is read under the monitor's lock, as the engine's own status read does: its loop adds to
    # the window on another thread. (The engine offers no public read-under-lock.)
    with engine._lock(name):
        live = engine._ensure(name)
        reference = live.reference
        options = live.spec.drift
        watched = list(reference.columns)
        chosen = column if column is not None else watched[0]
        histogram: WindowHistogram | None
        if chosen in watched:
            profile = reference.features.column(chosen)
            histogram = live.window.feature_histogram()
            method = options.methods.get(chosen, profile.default_method)
            threshold = options.thresholds.get(chosen, DEFAULT_THRESHOLDS[method])
        elif chosen == PREDICTION and reference.predictions is not None:
            profile = reference.predictions.column(PREDICTION)
            histogram = live.window.prediction_histogram()
            method = profile.default_method  # prediction drift: the engine's defaults
            threshold = DEFAULT_THRESHOLDS[method]
        else:
            histogram = None
        if histogram is None:
            raise NotFoundError(
                f"monitor {name!r} does not watch column {chosen!r}",
                watched=watched,
                predictions=reference.predictions is not None,
            )
        window_start, last_look = live.window.start, live.last_tick
        window_rows = int(histogram.counts(chosen).n)
        score = column_score(profile, histogram.counts(chosen), method) if window_rows else None
        shape = column_distribution(profile, histogram, bins=bins)
    return {
        "monitor": name,
        "column": chosen,
        "columns": watched,
        "predictions": reference.predictions is not None,
        "reference_data": {"model": reference.model, "version": reference.version, "rows": profile.rows},
        "window": {"start": window_start, "last_look": last_look or None, "rows": window_rows},
        "method": method,
        "threshold": threshold,
        "score": score,
        # Judged as the engine judges: only once the window holds min_rows rows.
        "drifted": score is not None and window_rows >= options.min_rows and score >= threshold,
        "min_rows": options.min_rows,
        **shape,
    }
