"""Anytime-valid confidence sequences: intervals that hold at every sample size at once.

A *confidence sequence* (CS) at level ``1 - alpha`` for a parameter ``theta`` is a sequence of intervals
``C_1, C_2, ...`` with ``P(theta in C_n for every n) >= 1 - alpha``. The guarantee is uniform over time, so
a controller may look after every tick, stop at the first decisive interval, or keep going, and its
error probability stays below ``alpha``. A fixed-sample confidence interval recomputed at every look does
not have that property: each look is another chance to exclude the truth by luck, and with continuous
monitoring the chance of doing so at least once tends to one.

Everything here is pure ``math``/``numpy``, deterministic, and takes sufficient statistics (a sum and a
count) or samples; nothing reads a clock. Every ``alpha`` is the total miss probability of the interval
returned, over all sample sizes.

Methods, and where they come from:

* **Means of [0, 1]-bounded observations** (error indicators, exceedance indicators, rescaled custom
  metrics): a two-sided beta-binomial mixture martingale. An observation ``x`` in [0, 1] with mean ``m``
  is *sub-Bernoulli*: ``E exp(lambda x) <= 1 - m + m e^lambda`` for every real ``lambda`` (the exponential
  is convex, so it lies below its chord on [0, 1]). Hence for every ``q`` in (0, 1) the product over the
  observations of ``(q/m)^x ((1-q)/(1-m))^(1-x)`` is a nonnegative supermartingale with initial value 1,
  and so is its mixture over ``q ~ Beta(1/2, 1/2)``, which has the closed form

      M_n(m) = B(1/2 + S_n, 1/2 + n - S_n) / B(1/2, 1/2) / (m^S_n (1 - m)^(n - S_n)),   S_n = x_1 + ... + x_n.

  Ville's inequality gives ``P(exists n: M_n(m) >= 1/alpha) <= alpha``, so ``{m : M_n(m) < 1/alpha}`` is a
  CS. This is the sub-Bernoulli / beta-binomial mixture boundary of Howard, Ramdas, McAuliffe and Sekhon
  (2021), made two-sided by mixing over alternatives on both sides; for 0/1 observations it is exactly
  the mixture sequential probability ratio test (mSPRT) of Johari, Pekelis and Walsh (2022) with a beta
  instead of a normal mixing distribution, and a mixture of constant-bet capital processes in the sense of
  Waudby-Smith and Ramdas (2023). ``log M_n(m)`` is the log e-value against ``mean = m``. The set is an
  interval containing ``S_n / n`` because ``log M_n`` is convex in ``m``; its ends are found by Newton's method
  from the outside, so every iterate is conservative.
  The width scales like ``sqrt(m (1 - m) log(n) / n)``, so rare events (1% errors) get the narrow intervals
  they deserve, unlike a Hoeffding bound that charges the worst-case variance 1/4. For continuous
  observations it is valid but charges the largest variance compatible with the mean, ``m (1 - m)``; the
  betting CS of Waudby-Smith and Ramdas (2023) would adapt further but needs the whole ordered stream.
* **Quantiles**: for a fixed level ``q``, the indicators ``1{X_i <= Q(q)}`` are Bernoulli with mean ``q``
  (for a continuous distribution), so inverting the Bernoulli CS above in the *count* turns order
  statistics into a CS for ``Q(q)`` (Howard and Ramdas, 2022, fixed-quantile confidence sequences).
  Ties are handled exactly, at the price of spending ``alpha / 2`` on each side.
* **Whole distributions**: the time-uniform Dvoretzky-Kiefer-Wolfowitz inequality of Howard and Ramdas
  (2022), ``P(exists n: sup_x |F_n(x) - F(x)| > 0.85 sqrt((log log(e n) + 0.8 log(1612 / alpha)) / n))
  <= alpha``, for any distribution (atoms included). Applied to two independent samples with
  ``alpha / 2`` each it bounds the two-sample Kolmogorov-Smirnov distance by the triangle inequality.

References:

* S. R. Howard, A. Ramdas, J. McAuliffe, J. Sekhon (2021). Time-uniform, nonparametric, nonasymptotic
  confidence sequences. *The Annals of Statistics* 49(2), 1055-1080.
* R. Johari, P. Koomen, L. Pekelis, D. Walsh (2022). Always valid inference: continuous monitoring of A/B
  tests. *Operations Research* 70(3), 1806-1821 (arXiv 2015; KDD 2017 as "Peeking at A/B tests").
* I. Waudby-Smith, A. Ramdas (2023). Estimating means of bounded random variables by betting. *Journal of
  the Royal Statistical Society, Series B* 86(1), 1-27.
* S. R. Howard, A. Ramdas (2022). Sequential estimation of quantiles with applications to A/B testing
  and best-arm identification. *Bernoulli* 28(3), 1704-1728.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "bounded_mean_cs",
    "bounded_mean_cs_many",
    "bounded_mean_log_evalue",
    "dkw_epsilon",
    "ks_distance",
    "ks_distance_cs",
    "ks_distance_sorted",
    "mean_difference_cs",
    "quantile_cs",
    "quantile_cs_ranks",
    "sorted_sample",
]

#: Parameters of the Beta mixing distribution (Jeffreys / Krichevsky-Trofimov): its regret against the
#: best constant alternative is about ``0.5 log(pi n / 2)`` whatever the true mean.
PRIOR_A: Final = 0.5
PRIOR_B: Final = 0.5
_LOG_BETA_PRIOR: Final = math.lgamma(PRIOR_A) + math.lgamma(PRIOR_B) - math.lgamma(PRIOR_A + PRIOR_B)
#: Cap on Newton steps for a CS end; it converges in well under ten.
_NEWTON_STEPS: Final = 60
_OUTWARD: Final = 1.0 - 1e-12
#: Howard and Ramdas (2022), time-uniform DKW: epsilon_n = C1 sqrt((log log(e n) + C2 log(C3 / alpha)) / n).
_DKW_C1: Final = 0.85
_DKW_C2: Final = 0.8
_DKW_C3: Final = 1612.0

_lgamma_ufunc = np.frompyfunc(math.lgamma, 1, 1)


def _check_alpha(alpha: float) -> None:
    if not (isinstance(alpha, int | float) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def _check_sum(total: float, n: int) -> float:
    if n < 0:
        raise ValueError(f"sample size must be >= 0, got {n}")
    if not math.isfinite(total) or total < -1e-9 * max(n, 1) or total > n * (1 + 1e-9) + 1e-9:
        raise ValueError(f"the sum of {n} observations in [0, 1] must lie in [0, {n}], got {total!r}")
    return min(max(total, 0.0), float(n))


def _xlogy(x: float, y: float) -> float:
    return 0.0 if x == 0.0 else x * math.log(y)


def _log_marginal(total: float, n: float) -> float:
    """log of the mixture numerator: B(a + S, b + n - S) / B(a, b)."""
    return (
        math.lgamma(PRIOR_A + total)
        + math.lgamma(PRIOR_B + n - total)
        - math.lgamma(PRIOR_A + PRIOR_B + n)
        - _LOG_BETA_PRIOR
    )


def bounded_mean_log_evalue(total: float, n: int, mean: float) -> float:
    """``log M_n(mean)``: the log e-value of ``n`` observations in [0, 1] summing to ``total`` against the
    hypothesis that their mean is ``mean``.

    ``M_n`` is a nonnegative supermartingale under that hypothesis (see the module docstring), so the
    chance that it *ever* reaches ``1/alpha`` is at most ``alpha``; ``min(1, 1 / max_k M_k)`` is an
    always-valid p-value. Returns ``inf`` when the data are impossible under ``mean`` (``mean`` 0 with a
    positive sum, or 1 with a sum below ``n``).
    """
    total = _check_sum(float(total), n)
    if not 0.0 <= mean <= 1.0:
        raise ValueError(f"mean must be in [0, 1], got {mean!r}")
    if (mean == 0.0 and total > 0) or (mean == 1.0 and total < n):
        return math.inf
    return _log_marginal(total, n) - _xlogy(total, mean) - _xlogy(n - total, 1.0 - mean)


def _lower_root(total: float, rest: float, excess: float) -> float:
    """Smallest mean ``m`` with ``log M_n(m) < log(1/alpha)``, for ``total > 0``: the CS's lower end.

    With ``u = log m`` the condition reads ``h(u) = excess - S u - R log(1 - e^u) < 0``, where ``excess`` is
    ``log B(a + S, b + R) / B(a, b) + log(alpha)``, ``S`` the sum and ``R = n - S``. ``h`` is convex in ``u`` and
    decreasing left of ``log(S / n)``. ``h(u) >= excess - S u``, so ``u0 = excess / S`` is outside the CS; from
    there Newton's iterates stay outside (a convex function lies above its tangents) and increase
    monotonically to the root, so every iterate is a conservative end.
    """
    u = excess / total
    for _ in range(_NEWTON_STEPS):
        e = math.exp(u)
        log_rest = math.log(-math.expm1(u)) if rest > 0 else 0.0
        value = excess - total * u - rest * log_rest
        slope = -total + rest * e / -math.expm1(u)
        if value <= 1e-12 or slope >= 0:
            break
        step = value / slope
        u -= step
        if -step <= 1e-15 * max(1.0, abs(u)):
            break
    return math.exp(u)


def bounded_mean_cs(total: float, n: int, alpha: float) -> tuple[float, float]:
    """Time-uniform ``1 - alpha`` confidence sequence for the mean of observations in [0, 1].

    ``total`` is the sum of the first ``n`` observations (the number of successes for 0/1 data). The
    observations may be dependent as long as each has conditional mean ``m`` given the past (i.i.d. is the
    usual case). With probability at least ``1 - alpha`` the interval contains ``m`` at every ``n`` at
    once. The ends are rounded outwards (conservative). ``n == 0`` gives ``(0, 1)``.
    """
    _check_alpha(alpha)
    total = _check_sum(float(total), n)
    if n == 0:
        return 0.0, 1.0
    rest = n - total
    excess = _log_marginal(total, n) + math.log(alpha)
    # Nudged outwards by a relative 1e-12 so that rounding never makes an end optimistic.
    low = _lower_root(total, rest, excess) * _OUTWARD if total > 0 else 0.0
    # The upper end is the lower end of the mirrored problem (1 - x has mean 1 - m).
    high = 1.0 - _lower_root(rest, total, excess) * _OUTWARD if rest > 0 else 1.0
    return min(low, total / n), max(high, total / n)


def _lower_roots(
    total: NDArray[np.float64], rest: NDArray[np.float64], excess: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Vectorised :func:`_lower_root`; 0 where ``total == 0``."""
    active = total > 0
    safe_total = np.where(active, total, 1.0)
    u = np.where(active, excess / safe_total, -np.inf)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for _ in range(_NEWTON_STEPS):
            em1 = -np.expm1(u)
            log_rest = np.where(rest > 0, np.log(em1), 0.0)
            value = excess - total * u - rest * log_rest
            slope = -total + rest * np.exp(u) / em1
            moving = active & (value > 1e-12) & (slope < 0)
            if not moving.any():
                break
            u = np.where(moving, u - value / np.where(moving, slope, -1.0), u)
    return np.where(active, np.exp(u), 0.0)


def bounded_mean_cs_many(
    totals: ArrayLike, ns: ArrayLike, alpha: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """:func:`bounded_mean_cs` for arrays of sums and sample sizes (broadcast together), vectorised.

    Meant for simulations that evaluate many streams at many times; gives the same bounds as the scalar
    function to within rounding.
    """
    _check_alpha(alpha)
    s_in, n = np.broadcast_arrays(np.asarray(totals, dtype=np.float64), np.asarray(ns, dtype=np.float64))
    if np.any(n < 0) or not np.all(np.isfinite(s_in)):
        raise ValueError("sample sizes must be >= 0 and sums finite")
    if np.any(s_in < -1e-9 * np.maximum(n, 1)) or np.any(s_in > n * (1 + 1e-9) + 1e-9):
        raise ValueError("each sum of n observations in [0, 1] must lie in [0, n]")
    s = np.clip(s_in, 0.0, n)
    rest = n - s
    log_marginal = (
        _lgamma_ufunc(PRIOR_A + s) + _lgamma_ufunc(PRIOR_B + rest) - _lgamma_ufunc(PRIOR_A + PRIOR_B + n)
    ).astype(np.float64) - _LOG_BETA_PRIOR
    excess = log_marginal + math.log(alpha)
    centre = np.divide(s, n, out=np.zeros_like(s), where=n > 0)
    low = np.minimum(_lower_roots(s, rest, excess) * _OUTWARD, centre)
    high = np.maximum(1.0 - _lower_roots(rest, s, excess) * _OUTWARD, centre)
    empty = n == 0
    return np.where(empty, 0.0, low), np.where(empty, 1.0, high)


def mean_difference_cs(
    total_a: float, n_a: int, total_b: float, n_b: int, alpha: float
) -> tuple[float, float]:
    """Time-uniform ``1 - alpha`` CS for ``mean_a - mean_b`` of two independent streams in [0, 1].

    Each stream gets a :func:`bounded_mean_cs` at ``alpha / 2``; the difference of the intervals covers
    the difference of the means whenever both cover, which by a union bound happens at every time at once
    with probability ``>= 1 - alpha``, whatever the two streams' relative speeds.
    """
    _check_alpha(alpha)
    low_a, high_a = bounded_mean_cs(total_a, n_a, alpha / 2)
    low_b, high_b = bounded_mean_cs(total_b, n_b, alpha / 2)
    return low_a - high_b, high_a - low_b


def _count_log_evalue(count: int, n: int, log_p: float, log_1mp: float) -> float:
    return _log_marginal(count, n) - count * log_p - (n - count) * log_1mp


def quantile_cs_ranks(n: int, q: float, alpha: float) -> tuple[int | None, int | None]:
    """1-based ranks ``(lo, hi)`` of the order statistics bracketing the ``q``-quantile of ``n`` samples.

    With probability ``>= 1 - alpha``, for every ``n`` at once, ``X_(lo) <= Q(q) <= X_(hi)``, where ``X_(k)``
    is the k-th smallest of the first ``n`` observations and ``Q(q) = inf{x : F(x) >= q}``. ``None`` stands
    for an unbounded side (too few samples). Valid for any distribution, ties included.

    Derivation (Howard and Ramdas 2022, inverting a Bernoulli CS in the count): let ``x* = Q(q)``. The
    indicators ``1{X_i < x*}`` have mean ``F(x*-) <= q`` and ``1{X_i <= x*}`` mean ``F(x*) >= q``; give each a
    :func:`bounded_mean_cs` at ``alpha / 2``. ``hi`` is the smallest count ``c > q n`` whose CS lies entirely
    above ``q``: if ``x*`` exceeded ``X_(hi)``, at least ``hi`` observations would lie below ``x*`` and, the
    lower bound being nondecreasing in the count, the first CS would exclude ``F(x*-)``. Symmetrically,
    ``lo = c + 1`` for the largest count ``c < q n`` whose CS lies entirely below ``q``.
    """
    _check_alpha(alpha)
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n == 0:
        return None, None
    log_threshold = -math.log(alpha / 2)
    hi = _first_rejected_count(n, q, log_threshold)
    # The Beta(1/2, 1/2) mixture is symmetric: a count c is rejected for q exactly when n - c is for 1 - q.
    mirrored = _first_rejected_count(n, 1.0 - q, log_threshold)
    lo = None if mirrored is None else n - mirrored + 1
    return lo, hi


def _first_rejected_count(n: int, q: float, log_threshold: float) -> int | None:
    """Smallest integer count ``c > q n`` whose CS excludes ``q`` (``log M_n(q) >= log_threshold``), if any.

    ``log M_n(q)`` is convex in the count and below 0 at ``c = q n``, so the rejected counts above ``q n``
    form one interval ending at ``n``: bisection finds its start. A first probe where a normal
    approximation puts the boundary, then galloping, make the bracket short.
    """
    log_p, log_1mp = math.log(q), math.log1p(-q)

    def rejects(count: int) -> bool:
        return _count_log_evalue(count, n, log_p, log_1mp) >= log_threshold

    start = math.floor(q * n) + 1
    if start > n or not rejects(n):
        return None
    accepted, rejected = start - 1, n  # the answer lies in (accepted, rejected]
    spread = math.sqrt(2.0 * n * q * (1.0 - q) * (log_threshold + 0.5 * math.log(n) + 1.0))
    guess = min(start + int(spread), n)
    step = max(1, int(spread / 8))
    if rejects(guess):
        rejected = guess
        probe = guess - step
        while probe > accepted:
            if not rejects(probe):
                accepted = probe
                break
            rejected = probe
            step *= 2
            probe = rejected - step
    else:
        accepted = guess
        probe = guess + step
        while probe < rejected:
            if rejects(probe):
                rejected = probe
                break
            accepted = probe
            step *= 2
            probe = accepted + step
    while rejected - accepted > 1:
        mid = (accepted + rejected) // 2
        if rejects(mid):
            rejected = mid
        else:
            accepted = mid
    return rejected


def quantile_cs(sample: ArrayLike, q: float, alpha: float) -> tuple[float, float]:
    """Time-uniform ``1 - alpha`` CS ``(low, high)`` for the ``q``-quantile, from the sample so far.

    ``sample`` holds every observation seen (in any order). ``-inf``/``inf`` mark an unbounded side.
    See :func:`quantile_cs_ranks`.
    """
    values = np.asarray(sample, dtype=np.float64).ravel()
    lo, hi = quantile_cs_ranks(values.size, q, alpha)
    kth = [k - 1 for k in (lo, hi) if k is not None]
    ordered = np.partition(values, kth) if kth else values
    low = float(ordered[lo - 1]) if lo is not None else -math.inf
    high = float(ordered[hi - 1]) if hi is not None else math.inf
    return low, high


def dkw_epsilon(n: int | NDArray[np.int64], alpha: float) -> float | NDArray[np.float64]:
    """Half-width of the time-uniform DKW band of Howard and Ramdas (2022).

    With probability ``>= 1 - alpha``, ``sup_x |F_n(x) - F(x)| <= dkw_epsilon(n, alpha)`` for all ``n >= 1``
    at once, where ``F_n`` is the empirical CDF of the first ``n`` i.i.d. observations (any distribution).
    About twice the fixed-``n`` DKW-Massart half-width ``sqrt(log(2 / alpha) / (2 n))``. Capped at 1.
    """
    _check_alpha(alpha)
    log_term = _DKW_C2 * math.log(_DKW_C3 / alpha)
    if isinstance(n, int | np.integer):
        if n < 1:
            raise ValueError(f"dkw_epsilon needs n >= 1, got {n}")
        return min(1.0, _DKW_C1 * math.sqrt((math.log(math.log(math.e * n)) + log_term) / n))
    size = np.asarray(n, dtype=np.float64)
    if np.any(size < 1):
        raise ValueError("dkw_epsilon needs n >= 1")
    eps: NDArray[np.float64] = np.minimum(
        _DKW_C1 * np.sqrt((np.log(np.log(math.e * size)) + log_term) / size), 1.0
    )
    return eps


def sorted_sample(values: ArrayLike) -> NDArray[np.float64]:
    """``values`` as a sorted float64 array: not copied if already sorted (checked in linear time)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        array = array.ravel()
    if array.size > 1 and not bool(np.all(array[1:] >= array[:-1])):
        array = np.sort(array)
    if array.size and np.isnan(array[-1]):
        raise ValueError("samples must not contain NaN")
    return array


def ks_distance(sample_a: ArrayLike, sample_b: ArrayLike) -> float:
    """Two-sample Kolmogorov-Smirnov distance ``sup_x |F_a(x) - F_b(x)|`` of the empirical CDFs."""
    a, b = sorted_sample(sample_a), sorted_sample(sample_b)
    if a.size == 0 or b.size == 0:
        raise ValueError("the KS distance needs two non-empty samples")
    return ks_distance_sorted(a, b)


def ks_distance_sorted(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    """:func:`ks_distance` of two non-empty samples already sorted in increasing order (not checked)."""
    if a.size > b.size:
        a, b = b, a
    # Between two consecutive points of the smaller sample ``a``, F_a is constant and F_b nondecreasing,
    # so |F_a - F_b| is largest at an end: at a point of ``a`` or just left of one. Only the smaller
    # sample is searched for, which keeps this O(m log n) for m points in ``a``.
    m = a.size
    if m == 1 or bool(np.all(a[1:] > a[:-1])):  # no ties: the ranks themselves
        fa_at = np.arange(1, m + 1) / m
        fa_before = np.arange(0, m) / m
    else:
        fa_at = np.searchsorted(a, a, side="right") / m
        fa_before = np.searchsorted(a, a, side="left") / m
    right = np.searchsorted(b, a, side="right")
    # Values of ``b`` equal to a point of ``a`` sit just before ``right``; without such ties the left
    # search would give the same positions, so it is skipped.
    tied = (right > 0) & (b[np.maximum(right - 1, 0)] == a)
    left = np.searchsorted(b, a, side="left") if bool(np.any(tied)) else right
    return float(max(np.max(np.abs(fa_at - right / b.size)), np.max(np.abs(fa_before - left / b.size))))


def ks_distance_cs(
    sample_a: ArrayLike, sample_b: ArrayLike, alpha: float, *, assume_sorted: bool = False
) -> tuple[float, float, float]:
    """``(observed, low, high)``: the KS distance of two samples and a time-uniform ``1 - alpha`` CS for the
    KS distance of the two distributions they come from.

    Each sample gets a time-uniform DKW band at ``alpha / 2`` (:func:`dkw_epsilon`); on the event that both
    hold, ``|D_observed - D_true| <= eps_a + eps_b`` by the triangle inequality for the sup norm. The
    samples must be independent, each i.i.d., and cumulative (every observation so far). Already sorted
    samples are not copied; ``assume_sorted`` skips even the check (for callers that sorted them).
    """
    _check_alpha(alpha)
    if assume_sorted:
        a, b = np.asarray(sample_a, dtype=np.float64), np.asarray(sample_b, dtype=np.float64)
    else:
        a, b = sorted_sample(sample_a), sorted_sample(sample_b)
    if a.size == 0 or b.size == 0:
        raise ValueError("the KS distance needs two non-empty samples")
    observed = ks_distance_sorted(a, b)
    slack = float(dkw_epsilon(a.size, alpha / 2)) + float(dkw_epsilon(b.size, alpha / 2))
    return observed, max(0.0, observed - slack), min(1.0, observed + slack)
