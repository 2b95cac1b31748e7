"""Canary analysis: candidate against baseline, per metric PASS / FAIL / INCONCLUSIVE / NO_DATA.

:func:`analyse` is a pure function of the measurements so far and the :class:`AnalysisSpec`: no clock, no
I/O, no randomness, so the same inputs always give the same verdicts. Every metric is turned into a
*degradation* (positive means the candidate is worse) with an anytime-valid confidence sequence (CS)
from :mod:`workbench.rollouts.sequential`, and compared with the check's tolerated ``threshold``:

* FAIL when the whole CS lies above the threshold (``low > threshold``): the candidate is worse than
  tolerated;
* PASS when the whole CS lies below it (``high < threshold``): the candidate is no worse than tolerated;
* INCONCLUSIVE otherwise; NO_DATA while either variant has fewer than the check's ``min_samples``.

Every check is computed and reported; the overall verdict is made of the *gating* checks only (by default
all but ``prediction_shift``, see :attr:`MetricCheck.effective_gating`).

Because each CS holds at every tick at once, a controller may call :func:`analyse` at every tick and act
on the first decisive verdict: the probability of any false FAIL (or false PASS) over the whole rollout
stays below the spec's ``alpha``, which is split across the checks. This holds when the measurements
are *cumulative* (everything seen since the analysis started) and each variant's observations are
independent draws from a fixed distribution; ``docs/analysis.md`` discusses what that excludes.

Degradation and CS per kind (``a`` is the check's share of alpha):

* ``error_rate``: ``p_candidate - p_baseline``; each error probability gets a Bernoulli CS at ``a / 2``.
* ``latency``: ``S_c(x* + d) - (1 - q)`` where ``x*`` is the baseline's true ``q``-quantile, ``d`` the
  check's absolute tolerance (``tolerance_ms``, 1 ms by default) and ``S_c(x)`` the share of candidate
  requests slower than ``x``. So a FAIL says the candidate's ``(q - threshold)``-quantile exceeds the
  baseline's ``q``-quantile by more than ``d``: slower by the relative share *and* by more than ``d`` ms.
  The baseline quantile is *estimated*, and that is accounted for: a CS ``[x_lo, x_hi]`` for ``x*`` at
  ``a / 2`` (order statistics, Howard and Ramdas 2022) shifts to ``[x_lo + d, x_hi + d]`` for ``x* + d``;
  as the exceedance share falls as the cutoff rises, ``S_c(x_hi + d) <= S_c(x* + d) <= S_c(x_lo + d)``,
  and the counts of candidate requests slower than those two cutoffs bound ``S_c(x* + d)`` through a
  Bernoulli CS at ``a / 2``.
  With ``objective_ms`` (an SLO): ``S_c(objective) - (1 - q)``, the share of candidate requests slower
  than the objective beyond the ``1 - q`` it allows, with a Bernoulli CS at ``a`` (one stream); positive
  exactly when the candidate's ``q``-quantile exceeds the objective.
* ``prediction_shift``: the KS distance between the two prediction distributions; each empirical CDF
  gets a time-uniform DKW band at ``a / 2``.
* ``custom``: ``mean_baseline - mean_candidate`` (reversed when lower is better), values rescaled from
  ``[lower, upper]`` to [0, 1], each mean with a CS at ``a / 2``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

import numpy as np
from numpy.typing import ArrayLike, NDArray

from workbench.errors import ValidationError
from workbench.rollouts.sequential import (
    bounded_mean_cs,
    ks_distance_cs,
    mean_difference_cs,
    quantile_cs_ranks,
    sorted_sample,
)
from workbench.specs.analysis import AnalysisSpec, MetricCheck, MetricKind

__all__ = [
    "AnalysisResult",
    "Measurements",
    "MetricResult",
    "VariantSample",
    "Verdict",
    "analyse",
    "combine",
]


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    #: Too few observations for a verdict: never a silent pass.
    NO_DATA = "no_data"


def _samples(value: ArrayLike, what: str) -> NDArray[np.float64]:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 1:
        raise ValidationError(f"{what} must be a one-dimensional array, got shape {array.shape}")
    if array.size and not np.isfinite(array).all():
        raise ValidationError(f"{what} must be finite (no NaN or infinity)")
    return array


def _empty() -> NDArray[np.float64]:
    return np.empty(0, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class VariantSample:
    """Everything observed of one variant since the analysis started (cumulative, not per tick).

    Arrays hold one value per observation, in any order; passing them sorted saves :func:`analyse` a
    sort. ``predictions`` holds one scalar per prediction (e.g. the positive-class score) and may be a
    sample of the requests (prediction-log sampling); ``custom`` maps a custom check's name to its
    per-observation values (e.g. 1.0 for a correct prediction, 0.0 for a wrong one).
    """

    requests: int = 0
    errors: int = 0
    latencies_ms: NDArray[np.float64] = field(default_factory=_empty)
    predictions: NDArray[np.float64] = field(default_factory=_empty)
    custom: Mapping[str, NDArray[np.float64]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.requests, bool) or not isinstance(self.requests, int | np.integer):
            raise ValidationError(f"requests must be an integer, got {self.requests!r}")
        if isinstance(self.errors, bool) or not isinstance(self.errors, int | np.integer):
            raise ValidationError(f"errors must be an integer, got {self.errors!r}")
        if self.requests < 0 or not 0 <= self.errors <= self.requests:
            raise ValidationError(
                f"need 0 <= errors <= requests, got {self.errors} errors of {self.requests} requests"
            )
        object.__setattr__(self, "requests", int(self.requests))
        object.__setattr__(self, "errors", int(self.errors))
        object.__setattr__(self, "latencies_ms", _samples(self.latencies_ms, "latencies_ms"))
        object.__setattr__(self, "predictions", _samples(self.predictions, "predictions"))
        custom = {str(name): _samples(values, f"custom[{name!r}]") for name, values in self.custom.items()}
        object.__setattr__(self, "custom", MappingProxyType(custom))


@dataclass(frozen=True, eq=False)
class Measurements:
    """The cumulative observations of both variants at one tick."""

    baseline: VariantSample
    candidate: VariantSample


@dataclass(frozen=True)
class MetricResult:
    """One check's verdict, with the estimated degradation and its confidence sequence at this tick.

    ``estimate``, ``low`` and ``high`` are in the unit of ``threshold`` (positive = candidate worse); they
    are ``None`` when a variant has no observation at all. ``reason`` is one line for audit events.
    ``gating`` is false for a check that is reported but does not decide the rollout.
    """

    name: str
    kind: MetricKind
    verdict: Verdict
    estimate: float | None
    low: float | None
    high: float | None
    threshold: float
    samples: tuple[int, int]
    reason: str
    alpha: float
    gating: bool = True


@dataclass(frozen=True)
class AnalysisResult:
    results: tuple[MetricResult, ...]
    verdict: Verdict

    def result(self, name: str) -> MetricResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(name)

    @property
    def summary(self) -> str:
        """One line: the overall verdict and each check's, e.g. ``fail: error_rate fail, latency_p95 pass``.

        A check that does not gate is marked, e.g. ``prediction_shift fail (not gating)``.
        """
        parts = ", ".join(
            f"{result.name} {result.verdict.value}" + ("" if result.gating else " (not gating)")
            for result in self.results
        )
        return f"{self.verdict.value}: {parts}"

    @property
    def reported(self) -> tuple[MetricResult, ...]:
        """The checks that failed but do not gate: evidence shown to people, not acted upon."""
        return tuple(r for r in self.results if not r.gating and r.verdict is Verdict.FAIL)


def analyse(measurements: Measurements, spec: AnalysisSpec) -> AnalysisResult:
    """Verdict of every check of ``spec`` on ``measurements``, and the overall verdict.

    Overall, over the gating checks: FAIL if any fails; PASS only if all pass; else NO_DATA if any lacks
    samples; else INCONCLUSIVE. Checks that do not gate are computed and reported all the same.
    """
    baseline, candidate = measurements.baseline, measurements.candidate
    sorted_cache: dict[tuple[str, int], NDArray[np.float64]] = {}

    def ordered(which: str, values: NDArray[np.float64]) -> NDArray[np.float64]:
        key = (which, id(values))
        if key not in sorted_cache:
            # Sorted input (callers may keep it so) is checked in linear time and not copied.
            sorted_cache[key] = sorted_sample(values)
        return sorted_cache[key]

    results: list[MetricResult] = []
    for check in spec.checks:
        alpha = spec.check_alpha(check)
        min_samples = spec.check_min_samples(check)
        if check.kind is MetricKind.ERROR_RATE:
            result = _error_rate(check, alpha, min_samples, baseline, candidate)
        elif check.kind is MetricKind.LATENCY:
            result = _latency(
                check,
                alpha,
                min_samples,
                ordered("baseline", baseline.latencies_ms),
                ordered("candidate", candidate.latencies_ms),
            )
        elif check.kind is MetricKind.PREDICTION_SHIFT:
            result = _prediction_shift(
                check,
                alpha,
                min_samples,
                ordered("baseline", baseline.predictions),
                ordered("candidate", candidate.predictions),
            )
        else:
            result = _custom(check, alpha, min_samples, baseline, candidate)
        results.append(result)
    return combine(results)


def combine(results: Sequence[MetricResult]) -> AnalysisResult:
    """Several checks' verdicts as one analysis, with the overall verdict :func:`analyse` gives."""
    return AnalysisResult(results=tuple(results), verdict=_overall(results))


def _overall(results: Sequence[MetricResult]) -> Verdict:
    verdicts = [result.verdict for result in results if result.gating]
    if not verdicts:  # nothing may decide (a spec refuses this; combine may be handed anything)
        return Verdict.NO_DATA
    if Verdict.FAIL in verdicts:
        return Verdict.FAIL
    if all(verdict is Verdict.PASS for verdict in verdicts):
        return Verdict.PASS
    if Verdict.NO_DATA in verdicts:
        return Verdict.NO_DATA
    return Verdict.INCONCLUSIVE


# --- formatting --------------------------------------------------------------------------------------------


def _level(alpha: float) -> str:
    return f"{100 * (1 - alpha):.3g}% CS"


def _pct(value: float) -> str:
    return f"{100 * value:.3g}%"


def _pp(value: float) -> str:
    return f"{100 * value:+.2f}"


def _comparison(verdict: Verdict, tolerated: str) -> str:
    if verdict is Verdict.FAIL:
        return f"exceeds the tolerated {tolerated}"
    if verdict is Verdict.PASS:
        return f"is within the tolerated {tolerated}"
    return f"cannot yet be told apart from the tolerated {tolerated}"


def _decide(low: float, high: float, threshold: float) -> Verdict:
    if low > threshold:
        return Verdict.FAIL
    if high < threshold:
        return Verdict.PASS
    return Verdict.INCONCLUSIVE


def _no_data(
    check: MetricCheck,
    alpha: float,
    min_samples: int,
    samples: tuple[int, int],
    unit: str,
    bounds: tuple[float, float, float] | None,
) -> MetricResult:
    n_baseline, n_candidate = samples
    reason = (
        f"{check.name}: needs at least {min_samples} {unit} per variant, "
        f"has {n_baseline} (baseline) and {n_candidate} (candidate)"
    )
    estimate, low, high = bounds if bounds is not None else (None, None, None)
    return MetricResult(
        name=check.name,
        kind=check.kind,
        verdict=Verdict.NO_DATA,
        estimate=estimate,
        low=low,
        high=high,
        threshold=check.threshold,
        samples=samples,
        reason=reason,
        alpha=alpha,
        gating=check.effective_gating,
    )


def _result(
    check: MetricCheck,
    alpha: float,
    samples: tuple[int, int],
    bounds: tuple[float, float, float],
    describe: str,
    comparison: Callable[[Verdict], str] | None = None,
) -> MetricResult:
    estimate, low, high = bounds
    verdict = _decide(low, high, check.threshold)
    compared = comparison(verdict) if comparison else _comparison(verdict, _tolerated(check))
    gating = check.effective_gating
    return MetricResult(
        name=check.name,
        kind=check.kind,
        verdict=verdict,
        estimate=estimate,
        low=low,
        high=high,
        threshold=check.threshold,
        samples=samples,
        reason=f"{describe} {compared}" + ("" if gating else " (reported, not gating)"),
        alpha=alpha,
        gating=gating,
    )


def _tolerated(check: MetricCheck) -> str:
    if check.kind in (MetricKind.ERROR_RATE, MetricKind.LATENCY):
        return f"+{100 * check.threshold:g}pp"
    return f"{check.threshold:g}"


# --- the checks --------------------------------------------------------------------------------------------


def _error_rate(
    check: MetricCheck, alpha: float, min_samples: int, baseline: VariantSample, candidate: VariantSample
) -> MetricResult:
    samples = (baseline.requests, candidate.requests)
    if min(samples) == 0:
        return _no_data(check, alpha, min_samples, samples, "requests", None)
    rate_b = baseline.errors / baseline.requests
    rate_c = candidate.errors / candidate.requests
    low, high = mean_difference_cs(
        candidate.errors, candidate.requests, baseline.errors, baseline.requests, alpha
    )
    bounds = (rate_c - rate_b, low, high)
    if min(samples) < min_samples:
        return _no_data(check, alpha, min_samples, samples, "requests", bounds)
    describe = (
        f"{check.name}: candidate error rate {_pct(rate_c)} vs baseline {_pct(rate_b)} "
        f"({_pp(rate_c - rate_b)}pp, {_level(alpha)} [{_pp(low)}, {_pp(high)}]pp)"
    )
    return _result(check, alpha, samples, bounds, describe)


def _latency(
    check: MetricCheck,
    alpha: float,
    min_samples: int,
    baseline: NDArray[np.float64],
    candidate: NDArray[np.float64],
) -> MetricResult:
    if check.objective_ms is not None:
        return _latency_objective(check, check.objective_ms, alpha, min_samples, baseline, candidate)
    samples = (baseline.size, candidate.size)
    if min(samples) == 0:
        return _no_data(check, alpha, min_samples, samples, "latency samples", None)
    q = check.effective_quantile
    tolerance = check.effective_tolerance_ms
    n_b, n_c = samples
    # The baseline's q-quantile x*: an estimate and a CS [x_lo, x_hi] (alpha / 2).
    x_hat = _quantile(baseline, q)
    lo_rank, hi_rank = quantile_cs_ranks(n_b, q, alpha / 2)
    x_lo = float(baseline[lo_rank - 1]) if lo_rank is not None else -math.inf
    x_hi = float(baseline[hi_rank - 1]) if hi_rank is not None else math.inf

    def slower(cutoff: float) -> int:
        return n_c - int(np.searchsorted(candidate, cutoff, side="right"))

    # The cutoff is x* + tolerance, with the CS [x_lo + tolerance, x_hi + tolerance]. Fewer candidate
    # requests are slower than its upper end than than the cutoff, and more than its lower end: bound
    # S_c(x* + tolerance) from the counts at those two ends with a Bernoulli CS (alpha / 2) read on the
    # conservative side.
    share_low = bounded_mean_cs(slower(x_hi + tolerance), n_c, alpha / 2)[0]
    share_high = bounded_mean_cs(slower(x_lo + tolerance), n_c, alpha / 2)[1]
    share_hat = slower(x_hat + tolerance) / n_c
    expected = 1 - q
    bounds = (share_hat - expected, share_low - expected, share_high - expected)
    if min(samples) < min_samples:
        return _no_data(check, alpha, min_samples, samples, "latency samples", bounds)
    label = f"p{100 * q:g}"
    cutoff = (
        f"the baseline {label} + {tolerance:g} ms ({x_hat + tolerance:.4g} ms)"
        if tolerance
        else f"the baseline {label} ({x_hat:.4g} ms)"
    )
    describe = (
        f"{check.name}: candidate {label} {_quantile(candidate, q):.4g} ms vs baseline {x_hat:.4g} ms; "
        f"{_pct(share_hat)} of candidate requests slower than {cutoff}, {_pct(expected)} expected "
        f"({_pp(share_hat - expected)}pp, {_level(alpha)} [{_pp(bounds[1])}, {_pp(bounds[2])}]pp)"
    )
    return _result(check, alpha, samples, bounds, describe)


def _latency_objective(
    check: MetricCheck,
    objective: float,
    alpha: float,
    min_samples: int,
    baseline: NDArray[np.float64],
    candidate: NDArray[np.float64],
) -> MetricResult:
    """The candidate against a latency objective: FAIL when its ``q``-quantile would exceed it.

    ``Q_c(q) > objective`` exactly when the share of candidate requests slower than the objective exceeds
    ``1 - q``; that share gets a Bernoulli CS at the check's whole alpha (one stream, nothing to split).
    The baseline is not compared, only described.
    """
    samples = (baseline.size, candidate.size)
    n_c = candidate.size
    q = check.effective_quantile
    label = f"p{100 * q:g}"
    expected = 1 - q
    if n_c == 0:
        return _no_data_candidate(check, alpha, min_samples, samples, None)
    slow = n_c - int(np.searchsorted(candidate, objective, side="right"))
    low, high = bounded_mean_cs(slow, n_c, alpha)
    bounds = (slow / n_c - expected, low - expected, high - expected)
    if n_c < min_samples:
        return _no_data_candidate(check, alpha, min_samples, samples, bounds)
    context = f" (baseline {_quantile(baseline, q):.4g} ms)" if baseline.size else ""
    describe = (
        f"{check.name}: candidate {label} {_quantile(candidate, q):.4g} ms{context} against the objective "
        f"{objective:g} ms; {_pct(slow / n_c)} of candidate requests slower than {objective:g} ms, "
        f"{_pct(expected)} allowed ({_pp(bounds[0])}pp, {_level(alpha)} [{_pp(bounds[1])}, {_pp(bounds[2])}]pp)"
    )
    tolerated = f" + {100 * check.threshold:g}pp" if check.threshold else ""

    def comparison(verdict: Verdict) -> str:
        if verdict is Verdict.FAIL:
            return f"breaches the objective{tolerated}"
        if verdict is Verdict.PASS:
            return f"meets the objective{tolerated}"
        return f"cannot yet be told apart from the objective{tolerated}"

    return _result(check, alpha, samples, bounds, describe, comparison)


def _no_data_candidate(
    check: MetricCheck,
    alpha: float,
    min_samples: int,
    samples: tuple[int, int],
    bounds: tuple[float, float, float] | None,
) -> MetricResult:
    result = _no_data(check, alpha, min_samples, samples, "latency samples", bounds)
    reason = f"{check.name}: needs at least {min_samples} latency samples of the candidate, has {samples[1]}"
    return dataclasses.replace(result, reason=reason)


def _quantile(ordered: NDArray[np.float64], q: float) -> float:
    """The empirical ``q``-quantile of a sorted, non-empty sample (the smallest x with F_n(x) >= q)."""
    return float(ordered[max(math.ceil(q * ordered.size), 1) - 1])


def _prediction_shift(
    check: MetricCheck,
    alpha: float,
    min_samples: int,
    baseline: NDArray[np.float64],
    candidate: NDArray[np.float64],
) -> MetricResult:
    samples = (baseline.size, candidate.size)
    if min(samples) == 0:
        return _no_data(check, alpha, min_samples, samples, "predictions", None)
    bounds = ks_distance_cs(candidate, baseline, alpha, assume_sorted=True)
    if min(samples) < min_samples:
        return _no_data(check, alpha, min_samples, samples, "predictions", bounds)
    observed, low, high = bounds
    describe = (
        f"{check.name}: prediction distributions differ by KS distance {observed:.3f} "
        f"({_level(alpha)} [{low:.3f}, {high:.3f}])"
    )
    return _result(check, alpha, samples, bounds, describe)


def _custom(
    check: MetricCheck, alpha: float, min_samples: int, baseline: VariantSample, candidate: VariantSample
) -> MetricResult:
    lower, upper = check.bounds
    span = upper - lower
    values_b = baseline.custom.get(check.name, _empty())
    values_c = candidate.custom.get(check.name, _empty())
    samples = (values_b.size, values_c.size)
    for which, values in (("baseline", values_b), ("candidate", values_c)):
        if values.size and (values.min() < lower or values.max() > upper):
            raise ValidationError(
                f"{check.name}: {which} values must lie in [{lower:g}, {upper:g}], "
                f"found [{values.min():g}, {values.max():g}]",
                check=check.name,
            )
    if min(samples) == 0:
        return _no_data(check, alpha, min_samples, samples, "observations", None)
    # Rescale to [0, 1] for the CS, back to the metric's unit for the verdict.
    sum_b = float(np.sum(values_b - lower)) / span
    sum_c = float(np.sum(values_c - lower)) / span
    mean_b, mean_c = lower + span * sum_b / samples[0], lower + span * sum_c / samples[1]
    low_diff, high_diff = mean_difference_cs(sum_c, samples[1], sum_b, samples[0], alpha)
    if check.effective_higher_is_better:
        bounds = (mean_b - mean_c, -span * high_diff, -span * low_diff)
        direction = "decrease"
    else:
        bounds = (mean_c - mean_b, span * low_diff, span * high_diff)
        direction = "increase"
    if min(samples) < min_samples:
        return _no_data(check, alpha, min_samples, samples, "observations", bounds)
    describe = (
        f"{check.name}: candidate mean {mean_c:.4g} vs baseline {mean_b:.4g} ({direction} {bounds[0]:+.4g}, "
        f"{_level(alpha)} [{bounds[1]:+.4g}, {bounds[2]:+.4g}])"
    )
    return _result(check, alpha, samples, bounds, describe)
