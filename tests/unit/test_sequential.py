"""Confidence sequences: shapes of the boundaries, and time-uniform coverage checked by simulation.

Coverage tests follow STREAMS independent streams and look at each one every few observations up to
HORIZON; a stream counts as a miss if its interval excludes the true value at *any* look. The fraction of
missing streams must stay below alpha plus three binomial standard errors. Seeds are fixed.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from numpy.typing import NDArray

from workbench.rollouts.sequential import (
    bounded_mean_cs,
    bounded_mean_cs_many,
    bounded_mean_log_evalue,
    dkw_epsilon,
    ks_distance,
    ks_distance_cs,
    ks_distance_sorted,
    mean_difference_cs,
    quantile_cs,
    quantile_cs_ranks,
    sorted_sample,
)

STREAMS = 400
HORIZON = 2000
ALPHA = 0.05


def _tolerance(alpha: float, streams: int = STREAMS) -> float:
    return 3 * math.sqrt(alpha * (1 - alpha) / streams)


# --- bounded means -----------------------------------------------------------------------------------------


def test_no_observation_gives_the_whole_interval() -> None:
    assert bounded_mean_cs(0, 0, ALPHA) == (0.0, 1.0)
    low, high = bounded_mean_cs_many([0.0], [0], ALPHA)
    assert (low[0], high[0]) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("total", "n"), [(0, 1), (1, 1), (0, 50), (50, 50), (3, 1000), (500, 1000), (2.5, 7)]
)
def test_interval_is_valid_and_contains_the_empirical_mean(total: float, n: int) -> None:
    low, high = bounded_mean_cs(total, n, ALPHA)
    assert 0.0 <= low <= total / n <= high <= 1.0
    assert low < high


def test_interval_shrinks_as_n_grows() -> None:
    widths = []
    for n in [10, 30, 100, 300, 1000, 3000, 10_000, 100_000, 1_000_000]:
        low, high = bounded_mean_cs(0.2 * n, n, ALPHA)
        widths.append(high - low)
    assert all(later < earlier for earlier, later in itertools.pairwise(widths))
    assert widths[-1] < 0.004


def test_width_follows_the_variance() -> None:
    """Rare events get narrow intervals (unlike Hoeffding, which charges the worst-case variance)."""
    n = 10_000
    low, high = bounded_mean_cs(0.01 * n, n, ALPHA)
    rare = high - low
    low, high = bounded_mean_cs(0.5 * n, n, ALPHA)
    even = high - low
    assert rare < even / 3
    # about 2 sqrt(2 p (1 - p) (log(1 / alpha) + log(pi n / 2) / 2) / n): the mixture's price for uniformity
    bound = 2 * math.sqrt(2 * 0.01 * 0.99 * (math.log(1 / ALPHA) + 0.5 * math.log(math.pi * n / 2)) / n)
    assert rare == pytest.approx(bound, rel=0.15)


def test_bounds_are_nondecreasing_in_the_count_and_mirror_symmetric() -> None:
    """The latency and quantile constructions rely on the bounds rising with the count."""
    n = 400
    bounds = [bounded_mean_cs(count, n, 0.01) for count in range(n + 1)]
    lows = [low for low, _ in bounds]
    highs = [high for _, high in bounds]
    assert all(b >= a for a, b in itertools.pairwise(lows))
    assert all(b >= a for a, b in itertools.pairwise(highs))
    for count in range(n + 1):
        low, high = bounds[count]
        mirror_low, mirror_high = bounds[n - count]
        assert low == pytest.approx(1 - mirror_high, abs=1e-9)
        assert high == pytest.approx(1 - mirror_low, abs=1e-9)


def test_smaller_alpha_gives_a_wider_interval() -> None:
    narrow = bounded_mean_cs(30, 1000, 0.1)
    wide = bounded_mean_cs(30, 1000, 0.001)
    assert wide[0] < narrow[0]
    assert wide[1] > narrow[1]


def test_interval_is_the_set_where_the_e_value_stays_below_one_over_alpha() -> None:
    total, n = 37, 2000
    low, high = bounded_mean_cs(total, n, ALPHA)
    threshold = math.log(1 / ALPHA)
    for mean in np.linspace(low + 1e-6, high - 1e-6, 25):
        assert bounded_mean_log_evalue(total, n, float(mean)) < threshold
    assert bounded_mean_log_evalue(total, n, low * (1 - 1e-6)) >= threshold
    assert bounded_mean_log_evalue(total, n, high + 1e-6) >= threshold
    assert bounded_mean_log_evalue(total, n, 0.0) == math.inf
    assert bounded_mean_log_evalue(0, n, 0.0) < 0


def test_vectorised_matches_scalar() -> None:
    rng = np.random.default_rng(7)
    ns = rng.integers(0, 20_000, 300)
    totals = rng.binomial(ns, rng.random(300)) * rng.random(300)
    low, high = bounded_mean_cs_many(totals, ns, 0.02)
    for i in range(300):
        expected = bounded_mean_cs(float(totals[i]), int(ns[i]), 0.02)
        assert (low[i], high[i]) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("total", "n", "alpha"),
    [(-1, 10, ALPHA), (11, 10, ALPHA), (1, -1, ALPHA), (math.nan, 10, ALPHA), (1, 10, 0.0), (1, 10, 1.0)],
)
def test_invalid_arguments_refused(total: float, n: int, alpha: float) -> None:
    with pytest.raises(ValueError, match=r"alpha|sum|sample size"):
        bounded_mean_cs(total, n, alpha)


def test_difference_is_the_difference_of_two_half_alpha_intervals() -> None:
    low, high = mean_difference_cs(40, 1000, 30, 4000, ALPHA)
    a, b = bounded_mean_cs(40, 1000, ALPHA / 2), bounded_mean_cs(30, 4000, ALPHA / 2)
    assert (low, high) == (a[0] - b[1], a[1] - b[0])
    assert low < 40 / 1000 - 30 / 4000 < high


def _first_miss(low: NDArray[np.float64], high: NDArray[np.float64], truth: float) -> NDArray[np.bool_]:
    """Per stream (rows), whether the interval excluded the truth at any look (columns)."""
    missed: NDArray[np.bool_] = ((low > truth) | (high < truth)).any(axis=1)
    return missed


LOOKS = np.arange(10, HORIZON + 1, 10)


@pytest.mark.parametrize("source", ["bernoulli-0.01", "bernoulli-0.5", "beta-2-5"])
def test_mean_cs_covers_at_all_times(source: str) -> None:
    rng = np.random.default_rng(11)
    if source.startswith("bernoulli"):
        truth = float(source.split("-")[1])
        data = (rng.random((STREAMS, HORIZON)) < truth).astype(np.float64)
    else:
        truth = 2 / 7
        data = rng.beta(2.0, 5.0, (STREAMS, HORIZON))
    sums = np.cumsum(data, axis=1)[:, LOOKS - 1]
    low, high = bounded_mean_cs_many(sums, LOOKS[None, :], ALPHA)
    missed = _first_miss(low, high, truth)
    assert missed.mean() <= ALPHA + _tolerance(ALPHA)


def test_difference_cs_covers_at_all_times() -> None:
    """Candidate and baseline streams at 1:4 speed, error rates 2% and 1%: the difference is covered."""
    rng = np.random.default_rng(12)
    candidate = np.cumsum(rng.random((STREAMS, HORIZON)) < 0.02, axis=1)[:, LOOKS - 1]
    baseline = np.cumsum(rng.random((STREAMS, 4 * HORIZON)) < 0.01, axis=1)[:, 4 * LOOKS - 1]
    low_c, high_c = bounded_mean_cs_many(candidate, LOOKS[None, :], ALPHA / 2)
    low_b, high_b = bounded_mean_cs_many(baseline, 4 * LOOKS[None, :], ALPHA / 2)
    missed = _first_miss(low_c - high_b, high_c - low_b, 0.01)
    assert missed.mean() <= ALPHA + _tolerance(ALPHA)
    # mean_difference_cs is exactly this construction.
    stream, look = 3, 57
    assert mean_difference_cs(
        float(candidate[stream, look]),
        int(LOOKS[look]),
        float(baseline[stream, look]),
        int(4 * LOOKS[look]),
        ALPHA,
    ) == pytest.approx(
        (low_c[stream, look] - high_b[stream, look], high_c[stream, look] - low_b[stream, look])
    )


def test_a_fixed_sample_interval_checked_at_every_look_does_not_cover() -> None:
    """Why all this: a 95% Wald interval recomputed every 10 observations misses far more than 5%."""
    rng = np.random.default_rng(13)
    sums = np.cumsum(rng.random((STREAMS, HORIZON)) < 0.5, axis=1)[:, LOOKS - 1]
    mean = sums / LOOKS
    half = 1.96 * np.sqrt(mean * (1 - mean) / LOOKS)
    assert _first_miss(mean - half, mean + half, 0.5).mean() > 4 * ALPHA


# --- quantiles ---------------------------------------------------------------------------------------------


def _brute_force_ranks(n: int, q: float, alpha: float) -> tuple[int | None, int | None]:
    """The ranks by definition: counts whose alpha/2 CS lies wholly above (below) q."""
    his = [count for count in range(n + 1) if count > q * n and bounded_mean_cs(count, n, alpha / 2)[0] > q]
    los = [count for count in range(n + 1) if count < q * n and bounded_mean_cs(count, n, alpha / 2)[1] < q]
    return (max(los) + 1 if los else None, min(his) if his else None)


@pytest.mark.parametrize(
    ("n", "q", "alpha"),
    [(1, 0.5, 0.05), (5, 0.5, 0.05), (40, 0.5, 0.05), (60, 0.95, 0.05), (200, 0.95, 0.01), (300, 0.1, 0.2)],
)
def test_quantile_ranks_match_their_definition(n: int, q: float, alpha: float) -> None:
    assert quantile_cs_ranks(n, q, alpha) == _brute_force_ranks(n, q, alpha)


def test_quantile_ranks_bracket_q_n_and_are_unbounded_for_tiny_samples() -> None:
    assert quantile_cs_ranks(0, 0.95, ALPHA) == (None, None)
    assert quantile_cs_ranks(20, 0.95, ALPHA)[1] is None
    assert quantile_cs_ranks(100, 0.95, ALPHA)[1] is None  # 100 of 100 below is no proof of a p95 above
    for n in (1000, 10_000, 100_000):
        lo, hi = quantile_cs_ranks(n, 0.95, ALPHA)
        assert lo is not None
        assert hi is not None
        assert 1 <= lo <= 0.95 * n <= hi <= n
    # relative width (hi - lo) / n shrinks
    spans = []
    for n in (1000, 10_000, 100_000):
        lo, hi = quantile_cs_ranks(n, 0.5, ALPHA)
        assert lo is not None
        assert hi is not None
        spans.append((hi - lo) / n)
    assert spans[0] > spans[1] > spans[2]


def test_quantile_cs_reads_the_order_statistics() -> None:
    rng = np.random.default_rng(5)
    sample = rng.permutation(np.arange(1.0, 1001.0))
    lo, hi = quantile_cs_ranks(1000, 0.9, ALPHA)
    assert lo is not None
    assert hi is not None
    assert quantile_cs(sample, 0.9, ALPHA) == (float(lo), float(hi))
    assert quantile_cs([1.0, 2.0], 0.9, ALPHA) == (-math.inf, math.inf)


QUANTILE_LOOKS = np.arange(20, HORIZON + 1, 20)


@pytest.mark.parametrize(("source", "q"), [("uniform", 0.95), ("uniform", 0.5), ("binomial", 0.5)])
def test_quantile_cs_covers_at_all_times(source: str, q: float) -> None:
    """Continuous data, and data with atoms where the quantile sits on an atom (ties)."""
    rng = np.random.default_rng(21)
    if source == "uniform":
        data, truth = rng.random((STREAMS, HORIZON)), q
    else:
        data, truth = rng.binomial(3, 0.5, (STREAMS, HORIZON)).astype(np.float64), 1.0  # F(1) = 0.5
    missed = np.zeros(STREAMS, dtype=bool)
    for n in QUANTILE_LOOKS:
        lo, hi = quantile_cs_ranks(int(n), q, ALPHA)
        kth = [k - 1 for k in (lo, hi) if k is not None]
        if not kth:
            continue
        ordered = np.partition(data[:, :n], kth, axis=1)
        if lo is not None:
            missed |= ordered[:, lo - 1] > truth
        if hi is not None:
            missed |= ordered[:, hi - 1] < truth
    assert missed.mean() <= ALPHA + _tolerance(ALPHA)


# --- distributions: DKW and Kolmogorov-Smirnov -------------------------------------------------------------


def test_dkw_epsilon_decreases_and_is_about_twice_the_fixed_n_band() -> None:
    ns = np.array([1, 2, 10, 100, 1000, 10_000, 1_000_000])
    eps = dkw_epsilon(ns, ALPHA)
    assert isinstance(eps, np.ndarray)
    assert np.all(np.diff(eps) < 0) or eps[0] == 1.0
    assert np.all(np.diff(eps[1:]) < 0)
    assert dkw_epsilon(1000, ALPHA) == pytest.approx(float(eps[4]))
    massart = math.sqrt(math.log(2 / ALPHA) / (2 * 1000))
    assert 1.3 < dkw_epsilon(1000, ALPHA) / massart < 2.5
    assert dkw_epsilon(1, ALPHA) == 1.0
    with pytest.raises(ValueError, match="n >= 1"):
        dkw_epsilon(0, ALPHA)


def test_dkw_band_holds_at_all_times() -> None:
    rng = np.random.default_rng(31)
    data = rng.random((STREAMS, HORIZON))  # any continuous F reduces to the uniform
    missed = np.zeros(STREAMS, dtype=bool)
    for n in QUANTILE_LOOKS:
        ordered = np.sort(data[:, :n], axis=1)
        ranks = np.arange(1, n + 1)
        sup = np.maximum(ranks / n - ordered, ordered - (ranks - 1) / n).max(axis=1)
        missed |= sup > dkw_epsilon(int(n), ALPHA)
    assert missed.mean() <= ALPHA + _tolerance(ALPHA)


def _brute_ks(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    points = np.concatenate([a, b])
    cdf_a = np.searchsorted(np.sort(a), points, side="right") / a.size
    cdf_b = np.searchsorted(np.sort(b), points, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def test_ks_distance_matches_the_definition_with_and_without_ties() -> None:
    rng = np.random.default_rng(41)
    for _ in range(300):
        size_a, size_b = rng.integers(1, 60, 2)
        if rng.random() < 0.5:
            a, b = rng.random(size_a), rng.random(size_b) + rng.random() * 0.5
        else:
            a = rng.integers(0, 6, size_a).astype(np.float64)
            b = rng.integers(0, 6, size_b).astype(np.float64)
        assert ks_distance(a, b) == pytest.approx(_brute_ks(a, b), abs=1e-12)
        assert ks_distance(b, a) == pytest.approx(ks_distance(a, b), abs=1e-12)
    assert ks_distance([1.0, 2.0], [3.0, 4.0]) == 1.0
    assert ks_distance([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert ks_distance_sorted(np.array([0.0, 1.0]), np.array([0.5])) == 0.5
    with pytest.raises(ValueError, match="non-empty"):
        ks_distance([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        ks_distance([1.0, math.nan], [1.0])


def test_sorted_sample_copies_only_when_it_must() -> None:
    ordered = np.array([1.0, 2.0, 2.0, 3.0])
    assert sorted_sample(ordered) is ordered
    assert sorted_sample([3.0, 1.0, 2.0]).tolist() == [1.0, 2.0, 3.0]


def test_ks_cs_contains_the_observed_distance_and_shrinks() -> None:
    rng = np.random.default_rng(42)
    widths = []
    for n in (100, 1000, 10_000):
        observed, low, high = ks_distance_cs(rng.random(n), rng.random(4 * n), ALPHA)
        assert 0.0 <= low <= observed <= high <= 1.0
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    a, b = np.sort(rng.random(500)), np.sort(rng.random(700))
    assert ks_distance_cs(a, b, ALPHA, assume_sorted=True) == ks_distance_cs(a[::-1], b, ALPHA)


@pytest.mark.parametrize("shift", [0.0, 0.1])
def test_ks_cs_covers_at_all_times(shift: float) -> None:
    """Uniform(0, 1) against Uniform(shift, 1 + shift): the true KS distance is ``shift``."""
    rng = np.random.default_rng(51)
    streams = 300
    a = rng.random((streams, HORIZON))
    b = rng.random((streams, 2 * HORIZON)) + shift
    missed = np.zeros(streams, dtype=bool)
    for n in range(100, HORIZON + 1, 100):
        for stream in np.flatnonzero(~missed):
            _, low, high = ks_distance_cs(a[stream, :n], b[stream, : 2 * n], ALPHA)
            missed[stream] = low > shift or high < shift
    assert missed.mean() <= ALPHA + _tolerance(ALPHA, streams)
