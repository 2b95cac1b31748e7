"""Live drift: a reference profile binned once, window histograms updated as predictions stream in.

An Evidently report re-reads every row of the window and the reference on each run; a live score must
cost almost nothing per update. So the reference is summarised once into a :class:`ReferenceProfile`
(per column: fine quantile edges for continuous columns, value counts for discrete ones), each window
keeps only counts on those bins (:class:`WindowHistogram`, mergeable, so sliding windows are sums of
time slices), and the scores are computed from counts alone:

* **Wasserstein distance normalised by the reference std** (continuous columns): ``∫|F_ref - F_cur|``,
  integrated exactly outside the reference range (the window keeps the sums of its values there) and
  with both distributions uniform within each inner bin; divided by ``max(std_ref, 0.001)``.
* **Jensen-Shannon distance** (discrete and categorical columns): SciPy's natural-log distance between
  the two frequency vectors over the union of values seen (empty bins stay 0, as in Evidently).
* **PSI** over the reference deciles (continuous) or values (discrete), empty bins replaced as Evidently
  replaces them so that the logarithms stay finite.

The method per column and its threshold follow Evidently's defaults for a reference above 1,000 rows:
Wasserstein (≥ 0.1) for a numeric column with more than 5 distinct values, Jensen-Shannon (≥ 0.1)
otherwise; the dataset drifts when at least half of the columns do. The Evidently adapter passes the
same methods explicitly, so the two agree whatever the reference size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from workbench.errors import ValidationError

FINE_BINS = 1024
PSI_BINS = 10
DISCRETE_MAX_VALUES = 5  # Evidently: a numeric column with at most 5 distinct values is compared by JS
DEFAULT_THRESHOLDS = {"wasserstein": 0.1, "jensenshannon": 0.1, "psi": 0.1}


class ColumnKind(StrEnum):
    #: Many distinct values: fine quantile bins, Wasserstein from binned CDFs.
    CONTINUOUS = "continuous"
    #: Numeric with up to ``FINE_BINS`` distinct values (counts, ages): exact Wasserstein on point masses.
    POINTS = "points"
    #: Categorical, or numeric with at most 5 distinct values: Jensen-Shannon over values.
    DISCRETE = "discrete"


@dataclass(frozen=True)
class ColumnProfile:
    """One reference column, summarised for binning. ``values``/``counts`` for discrete columns;
    ``edges``/``counts`` (one count per inner bin) for continuous ones."""

    name: str
    kind: ColumnKind
    rows: int
    counts: tuple[float, ...]
    values: tuple[float, ...] = ()
    edges: tuple[float, ...] = ()
    std: float = 0.0
    decile_edges: tuple[float, ...] = ()
    decile_counts: tuple[float, ...] = ()

    @property
    def default_method(self) -> str:
        return "jensenshannon" if self.kind is ColumnKind.DISCRETE else "wasserstein"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "rows": self.rows,
            "counts": list(self.counts),
            "values": list(self.values),
            "edges": list(self.edges),
            "std": self.std,
            "decile_edges": list(self.decile_edges),
            "decile_counts": list(self.decile_counts),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnProfile:
        return cls(
            name=str(data["name"]),
            kind=ColumnKind(data["kind"]),
            rows=int(data["rows"]),
            counts=tuple(float(c) for c in data["counts"]),
            values=tuple(float(v) for v in data.get("values", ())),
            edges=tuple(float(e) for e in data.get("edges", ())),
            std=float(data.get("std", 0.0)),
            decile_edges=tuple(float(e) for e in data.get("decile_edges", ())),
            decile_counts=tuple(float(c) for c in data.get("decile_counts", ())),
        )


def _finite(name: str, values: Any) -> NDArray[np.float64]:
    try:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValidationError(f"column {name!r} is not numeric", column=name) from None
    return array[np.isfinite(array)]


def profile_column(name: str, values: Any, *, categorical: bool = False) -> ColumnProfile:
    """Summarise one reference column (NaN and infinities are ignored, as Evidently ignores missing)."""
    data = _finite(name, values)
    if data.size == 0:
        raise ValidationError(f"reference column {name!r} has no finite value", column=name)
    distinct = np.unique(data)
    if categorical or distinct.size <= DISCRETE_MAX_VALUES:
        uniques, counts = np.unique(data, return_counts=True)
        return ColumnProfile(
            name=name,
            kind=ColumnKind.DISCRETE,
            rows=int(data.size),
            counts=tuple(float(c) for c in counts),
            values=tuple(float(v) for v in uniques),
        )
    deciles = np.unique(np.quantile(data, np.linspace(0.0, 1.0, PSI_BINS + 1)))
    std = float(np.std(data))
    if distinct.size <= FINE_BINS:
        decile_edges = tuple(float(e) for e in deciles)
        decile_counts = tuple(float(c) for c in _outer_counts(data, deciles))
        uniques, counts = np.unique(data, return_counts=True)
        return ColumnProfile(
            name=name,
            kind=ColumnKind.POINTS,
            rows=int(data.size),
            counts=tuple(float(c) for c in counts),
            values=tuple(float(v) for v in uniques),
            std=std,
            decile_edges=decile_edges,
            decile_counts=decile_counts,
        )
    edges = np.unique(np.quantile(data, np.linspace(0.0, 1.0, FINE_BINS + 1)))
    inner = _inner_counts(data, edges)
    # PSI bins are groups of fine bins (about deciles), so a window's PSI counts need no second pass.
    groups = _decile_groups(edges.size - 1)
    return ColumnProfile(
        name=name,
        kind=ColumnKind.CONTINUOUS,
        rows=int(data.size),
        counts=tuple(float(c) for c in inner),
        edges=tuple(float(e) for e in edges),
        std=std,
        decile_edges=tuple(float(edges[i]) for i in groups),
        decile_counts=tuple(float(c) for c in np.add.reduceat(inner, groups[:-1])),
    )


def _decile_groups(bins: int) -> NDArray[np.intp]:
    """Fine-bin indices where each PSI bin starts, and the end: about ``PSI_BINS`` groups."""
    return np.unique(np.round(np.linspace(0, bins, PSI_BINS + 1)).astype(np.intp))


def _inner_counts(data: NDArray[np.float64], edges: NDArray[np.float64]) -> NDArray[np.float64]:
    """Counts per inner bin [e_i, e_{i+1}) (the last bin closed); values outside are not counted."""
    inside = data[(data >= edges[0]) & (data <= edges[-1])]
    index = np.clip(np.searchsorted(edges, inside, side="right") - 1, 0, edges.size - 2)
    return np.bincount(index, minlength=edges.size - 1).astype(np.float64)


def _outer_counts(data: NDArray[np.float64], edges: NDArray[np.float64]) -> NDArray[np.float64]:
    """Counts per bin with open-ended first and last bins (for PSI: every value lands somewhere)."""
    index = np.clip(np.searchsorted(edges[1:-1], data, side="right"), 0, edges.size - 2)
    return np.bincount(index, minlength=edges.size - 1).astype(np.float64)


@dataclass(frozen=True)
class ReferenceProfile:
    columns: tuple[ColumnProfile, ...]

    @classmethod
    def from_frame(
        cls, frame: Any, columns: Sequence[str], categorical: Iterable[str] = ()
    ) -> ReferenceProfile:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValidationError(
                f"the reference dataset lacks column(s) {missing}",
                missing=missing,
                present=list(frame.columns),
            )
        kinds = set(categorical)
        return cls(tuple(profile_column(c, frame[c].to_numpy(), categorical=c in kinds) for c in columns))

    def column(self, name: str) -> ColumnProfile:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [c.to_dict() for c in self.columns]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        return cls(tuple(ColumnProfile.from_dict(c) for c in data["columns"]))


@dataclass
class _ColumnCounts:
    inner: NDArray[np.float64]
    below_n: float = 0.0
    below_sum: float = 0.0
    above_n: float = 0.0
    above_sum: float = 0.0
    discrete: dict[float, float] = field(default_factory=dict)
    n: float = 0.0


class WindowHistogram:
    """Counts of one window's values on a profile's bins. ``add`` is O(rows); ``merge`` sums windows."""

    def __init__(self, profile: ReferenceProfile) -> None:
        self.profile = profile
        self._counts = {
            c.name: _ColumnCounts(inner=np.zeros(max(len(c.edges) - 1, 0))) for c in profile.columns
        }
        self.rows = 0

    def add(self, columns: Mapping[str, Any], *, rows: int | None = None) -> None:
        """Add a batch of rows, given as column name → values (columns the profile lacks are ignored).

        ``rows``: how many rows the batch holds, when it joins requests that did not all carry every column
        (the default, the longest column, is right for one request)."""
        batch_rows = 0
        for column in self.profile.columns:
            if column.name not in columns:
                continue
            data = _finite(column.name, columns[column.name])
            batch_rows = max(batch_rows, int(data.size))
            counts = self._counts[column.name]
            counts.n += data.size
            if column.kind is not ColumnKind.CONTINUOUS:
                uniques, found = np.unique(data, return_counts=True)
                for value, count in zip(uniques.tolist(), found.tolist(), strict=True):
                    counts.discrete[value] = counts.discrete.get(value, 0.0) + count
                continue
            edges = np.asarray(column.edges)
            below, above = data[data < edges[0]], data[data > edges[-1]]
            counts.below_n += below.size
            counts.below_sum += float(below.sum())
            counts.above_n += above.size
            counts.above_sum += float(above.sum())
            counts.inner += _inner_counts(data, edges)
        self.rows += batch_rows if rows is None else rows

    def merge(self, other: WindowHistogram) -> None:
        for name, counts in self._counts.items():
            theirs = other._counts[name]
            counts.inner += theirs.inner
            counts.below_n += theirs.below_n
            counts.below_sum += theirs.below_sum
            counts.above_n += theirs.above_n
            counts.above_sum += theirs.above_sum
            counts.n += theirs.n
            for value, count in theirs.discrete.items():
                counts.discrete[value] = counts.discrete.get(value, 0.0) + count
        self.rows += other.rows

    @classmethod
    def combined(cls, profile: ReferenceProfile, parts: Iterable[WindowHistogram]) -> WindowHistogram:
        total = cls(profile)
        for part in parts:
            total.merge(part)
        return total

    def counts(self, name: str) -> _ColumnCounts:
        return self._counts[name]


# --- scores -----------------------------------------------------------------------------------------------


def _fill_zeros(percents: NDArray[np.float64]) -> NDArray[np.float64]:
    """Evidently's replacement of empty bins, so that logarithms stay finite."""
    nonzero = percents[percents != 0]
    if nonzero.size == 0:
        return percents
    smallest = float(nonzero.min())
    filled = percents.copy()
    filled[filled == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return filled


def _discrete_percents(column: ColumnProfile, counts: _ColumnCounts) -> tuple[NDArray[np.float64], ...]:
    reference = dict(zip(column.values, column.counts, strict=True))
    keys = sorted(set(reference) | set(counts.discrete))
    ref = np.asarray([reference.get(k, 0.0) for k in keys]) / column.rows
    cur = np.asarray([counts.discrete.get(k, 0.0) for k in keys]) / max(counts.n, 1.0)
    return ref, cur


def _window_deciles(column: ColumnProfile, counts: _ColumnCounts) -> NDArray[np.float64]:
    """The window's counts on the profile's PSI bins (open-ended first and last)."""
    if column.kind is ColumnKind.CONTINUOUS:
        grouped = np.add.reduceat(counts.inner, _decile_groups(len(column.edges) - 1)[:-1])
        grouped[0] += counts.below_n
        grouped[-1] += counts.above_n
        return grouped
    edges = np.asarray(column.decile_edges)
    values = np.asarray(list(counts.discrete), dtype=np.float64)
    weights = np.asarray(list(counts.discrete.values()), dtype=np.float64)
    index = np.clip(np.searchsorted(edges[1:-1], values, side="right"), 0, edges.size - 2)
    return np.bincount(index, weights=weights, minlength=edges.size - 1).astype(np.float64)


def jensen_shannon(p: NDArray[np.float64], q: NDArray[np.float64]) -> float:
    """Jensen-Shannon distance (natural log) between two histograms; SciPy normalises both first."""
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(p, q))


def psi(p: NDArray[np.float64], q: NDArray[np.float64]) -> float:
    return float(np.sum((p - q) * np.log(p / q)))


def _wasserstein_points(column: ColumnProfile, counts: _ColumnCounts) -> float:
    """Exact W1 between two distributions of point masses (SciPy, weighted by the counts)."""
    from scipy.stats import wasserstein_distance

    current = list(counts.discrete.items())
    return float(
        wasserstein_distance(
            np.asarray(column.values, dtype=np.float64),
            np.asarray([value for value, _ in current], dtype=np.float64),
            np.asarray(column.counts, dtype=np.float64),
            np.asarray([weight for _, weight in current], dtype=np.float64),
        )
    )


def wasserstein_normed(column: ColumnProfile, counts: _ColumnCounts) -> float:
    """W1 between the reference and the window from binned counts, over ``max(std_ref, 0.001)``."""
    n = counts.n
    if n == 0:
        return 0.0
    if column.kind is ColumnKind.POINTS:
        return _wasserstein_points(column, counts) / max(column.std, 0.001)
    edges = np.asarray(column.edges)
    lo, hi = float(edges[0]), float(edges[-1])
    # Outside the reference range the reference CDF is 0 (below) or 1 (above): exact from the sums.
    outside = (counts.below_n * lo - counts.below_sum + counts.above_sum - counts.above_n * hi) / n
    # Inside: both CDFs piecewise linear over the bins; integrate |F_ref - F_cur| bin by bin.
    ref_mass = np.asarray(column.counts) / column.rows
    cur_mass = counts.inner / n
    ref_cdf = np.concatenate(([0.0], np.cumsum(ref_mass)))
    cur_cdf = np.concatenate(([0.0], np.cumsum(cur_mass))) + counts.below_n / n
    diff = ref_cdf - cur_cdf
    width = np.diff(edges)
    a, b = diff[:-1], diff[1:]
    same_sign = a * b >= 0
    inside_same = width * (np.abs(a) + np.abs(b)) / 2
    denom = np.where(same_sign, 1.0, np.abs(a) + np.abs(b))
    inside_cross = width * (a**2 + b**2) / (2 * denom)
    inside = float(np.sum(np.where(same_sign, inside_same, inside_cross)))
    return (outside + inside) / max(column.std, 0.001)


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str
    score: float
    threshold: float
    drifted: bool
    rows: int


@dataclass(frozen=True)
class DriftResult:
    columns: tuple[ColumnDrift, ...]
    rows: int
    drift_share: float

    @property
    def share_drifted(self) -> float:
        return sum(c.drifted for c in self.columns) / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drifted(self) -> bool:
        return bool(self.columns) and self.share_drifted >= self.drift_share

    def column(self, name: str) -> ColumnDrift:
        for column in self.columns:
            if column.column == name:
                return column
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "share_drifted": self.share_drifted,
            "dataset_drifted": self.dataset_drifted,
            "drift_share": self.drift_share,
            "columns": [
                {
                    "column": c.column,
                    "method": c.method,
                    "score": c.score,
                    "threshold": c.threshold,
                    "drifted": c.drifted,
                }
                for c in self.columns
            ],
        }


def column_score(column: ColumnProfile, counts: _ColumnCounts, method: str) -> float:
    if method == "wasserstein":
        if column.kind is ColumnKind.DISCRETE:
            raise ValidationError(f"wasserstein needs a numeric column; {column.name!r} is discrete")
        return wasserstein_normed(column, counts)
    if column.kind is ColumnKind.DISCRETE:
        ref, cur = _discrete_percents(column, counts)
    else:
        ref = np.asarray(column.decile_counts) / column.rows
        cur = _window_deciles(column, counts) / max(counts.n, 1.0)
    if method == "jensenshannon":
        return jensen_shannon(ref, cur)
    if method == "psi":
        return psi(_fill_zeros(ref), _fill_zeros(cur))
    raise ValidationError(f"unknown drift method {method!r}: use wasserstein, jensenshannon or psi")


def drift(
    window: WindowHistogram,
    *,
    methods: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    drift_share: float = 0.5,
) -> DriftResult:
    """Per-column scores and verdicts (``score >= threshold`` drifts, as in Evidently), and the share."""
    results = []
    for column in window.profile.columns:
        counts = window.counts(column.name)
        if counts.n == 0:
            continue
        method = (methods or {}).get(column.name, column.default_method)
        threshold = (thresholds or {}).get(column.name, DEFAULT_THRESHOLDS[method])
        score = column_score(column, counts, method)
        results.append(ColumnDrift(column.name, method, score, threshold, score >= threshold, int(counts.n)))
    return DriftResult(columns=tuple(results), rows=window.rows, drift_share=drift_share)
