"""The experiments' statistics, checked by seeded simulation and against statsmodels (issue 13).

Each Monte-Carlo check allows three standard errors of its own simulation (``_tolerance``), so a rate
that the method guarantees is asserted with that margin and no more. The larger runs are in
``benchmarks/``; these stay fast enough for ``make test``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.weightstats import ttest_ind

from workbench.experiments.statistics import (
    AlwaysValidP,
    Moments,
    adjust,
    confidence_sequence,
    cuped,
    msprt_p_value,
    multinomial_sequential_p,
    sample_ratio,
    sample_size,
    sequential_sample_size,
    two_proportion_z,
    welch_t,
)

ALPHA = 0.05
EXPERIMENTS = 1000
LOOK_EVERY = 100  # units
LOOKS = 20


def _tolerance(rate: float, runs: int) -> float:
    return 3 * math.sqrt(rate * (1 - rate) / runs)


def _aa_looks(seed: int) -> list[tuple[Moments, Moments]]:
    """One A/A experiment on a continuous metric, 50/50, summarised after every 100 units."""
    rng = np.random.default_rng(seed)
    units = LOOK_EVERY * LOOKS
    arm = rng.random(units) < 0.5
    y = rng.normal(10.0, 3.0, units)
    looks = []
    for end in range(LOOK_EVERY, units + 1, LOOK_EVERY):
        a, b = y[:end][~arm[:end]], y[:end][arm[:end]]
        looks.append((Moments.of(a), Moments.of(b)))
    return looks


@pytest.fixture(scope="module")
def aa_experiments() -> list[list[tuple[Moments, Moments]]]:
    return [_aa_looks(seed) for seed in range(EXPERIMENTS)]


def test_the_confidence_sequence_keeps_its_false_positive_rate_when_looked_at_every_100_units(
    aa_experiments: list[list[tuple[Moments, Moments]]],
) -> None:
    sequential = sum(
        any(confidence_sequence(a, b, ALPHA).significant for a, b in looks) for looks in aa_experiments
    )
    naive = sum(any(welch_t(a, b, ALPHA).p_value < ALPHA for a, b in looks) for looks in aa_experiments)
    sequential_rate, naive_rate = sequential / EXPERIMENTS, naive / EXPERIMENTS
    assert sequential_rate <= ALPHA + _tolerance(ALPHA, EXPERIMENTS), sequential_rate
    # The same looks with the fixed-horizon test: peeking inflates its error well beyond alpha.
    assert naive_rate > ALPHA + _tolerance(ALPHA, EXPERIMENTS), naive_rate


def test_the_msprt_p_value_keeps_its_false_positive_rate_under_continuous_looks(
    aa_experiments: list[list[tuple[Moments, Moments]]],
) -> None:
    rejected = 0
    for looks in aa_experiments:
        p = AlwaysValidP()
        for a, b in looks:
            p.look(msprt_p_value(a, b, tau_sq=0.5**2))
        rejected += p.value < ALPHA
    assert rejected / EXPERIMENTS <= ALPHA + _tolerance(ALPHA, EXPERIMENTS)


def test_the_sequence_and_its_p_value_say_the_same_thing() -> None:
    rng = np.random.default_rng(3)
    for shift in (0.0, 0.05, 0.1, 0.2):
        a = Moments.of(rng.normal(0, 1, 3000))
        b = Moments.of(rng.normal(shift, 1, 3000))
        result = confidence_sequence(a, b, ALPHA)
        assert result.significant == (result.p_value < ALPHA)
        # wider than the fixed-horizon interval: the price of being valid at every look
        fixed = welch_t(a, b, ALPHA)
        assert result.upper - result.lower > fixed.upper - fixed.lower


def test_power_reaches_80_percent_at_the_planned_sample_size() -> None:
    runs, baseline, effect = 1000, 0.10, 0.02
    fixed_n = sample_size("binary", baseline=baseline, effect=effect, power=0.8)
    sequential_n = sequential_sample_size("binary", baseline=baseline, effect=effect, power=0.8)
    assert sequential_n > fixed_n  # the sequence needs more units for the same power
    rng = np.random.default_rng(11)
    fixed_hits = sequential_hits = 0
    for _ in range(runs):
        control = rng.random(sequential_n) < baseline
        treated = rng.random(sequential_n) < baseline + effect
        fixed_hits += (
            two_proportion_z(Moments.of(control[:fixed_n]), Moments.of(treated[:fixed_n])).p_value < ALPHA
        )
        sequential_hits += confidence_sequence(Moments.of(control), Moments.of(treated)).significant
    assert fixed_hits / runs >= 0.8 - _tolerance(0.8, runs), fixed_hits / runs
    assert sequential_hits / runs >= 0.8 - _tolerance(0.8, runs), sequential_hits / runs


def _with_covariate(rng: np.random.Generator, n: int, rho: float, effect: float) -> tuple[Moments, Moments]:
    def arm(shift: float) -> Moments:
        x = rng.normal(0, 1, n)
        y = 5 + shift + rho * x + math.sqrt(1 - rho * rho) * rng.normal(0, 1, n)
        return Moments.of(y, covariate=x)

    return arm(0.0), arm(effect)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.8])
def test_cuped_shrinks_the_variance_by_rho_squared(rho: float) -> None:
    rng = np.random.default_rng(int(rho * 100))
    ratios, estimates = [], []
    for _ in range(50):
        control, treated = _with_covariate(rng, 4000, rho, effect=0.1)
        (adjusted_c, adjusted_t), _ = cuped([control, treated])
        plain = welch_t(control, treated)
        reduced = welch_t(adjusted_c, adjusted_t)
        ratios.append(reduced.standard_error**2 / plain.standard_error**2)
        estimates.append(reduced.estimate)
    assert np.mean(ratios) == pytest.approx(1 - rho * rho, abs=0.02)
    assert np.mean(estimates) == pytest.approx(0.1, abs=0.01)  # unbiased: the covariate is pre-period


def test_cuped_with_an_uncorrelated_covariate_costs_no_validity() -> None:
    rng = np.random.default_rng(17)
    runs, rejected = 1000, 0
    for _ in range(runs):
        control, treated = _with_covariate(rng, 500, rho=0.0, effect=0.0)
        (adjusted_c, adjusted_t), _ = cuped([control, treated])
        rejected += welch_t(adjusted_c, adjusted_t).p_value < ALPHA
    assert rejected / runs <= ALPHA + _tolerance(ALPHA, runs)


def test_sample_ratio_mismatch_is_flagged_on_52_48_of_20k_units_and_not_on_50_50() -> None:
    skewed = sample_ratio([10_400, 9_600], [0.5, 0.5])
    assert skewed.alarm
    assert skewed.p_value < 0.001
    assert skewed.sequential_p_value < 0.001
    assert not sample_ratio([10_000, 10_000], [0.5, 0.5]).alarm
    rng = np.random.default_rng(5)
    drawn = int((rng.random(20_000) < 0.5).sum())
    assert not sample_ratio([drawn, 20_000 - drawn], [0.5, 0.5]).alarm
    assert not sample_ratio([6_000, 2_000, 2_000], [0.6, 0.2, 0.2]).alarm


def test_the_sequential_sample_ratio_check_keeps_its_false_alarm_rate_when_watched() -> None:
    rng = np.random.default_rng(23)
    runs, alarms = 1000, 0
    for _ in range(runs):
        counts = np.cumsum(rng.random(2000) < 0.5)
        watched = AlwaysValidP()
        for end in range(LOOK_EVERY, 2001, LOOK_EVERY):
            b = int(counts[end - 1])
            watched.look(multinomial_sequential_p([end - b, b], [0.5, 0.5]))
        alarms += watched.value < ALPHA
    assert alarms / runs <= ALPHA + _tolerance(ALPHA, runs)


def test_the_fixed_horizon_tests_equal_statsmodels() -> None:
    rng = np.random.default_rng(29)
    control, treated = rng.random(5000) < 0.10, rng.random(4000) < 0.12
    ours = two_proportion_z(Moments.of(control), Moments.of(treated))
    _, p_value = proportions_ztest([treated.sum(), control.sum()], [treated.size, control.size])
    assert ours.p_value == pytest.approx(p_value, rel=1e-12)
    low, high = confint_proportions_2indep(
        treated.sum(), treated.size, control.sum(), control.size, method="wald", compare="diff"
    )
    assert (ours.lower, ours.upper) == pytest.approx((low, high), rel=1e-9)

    a, b = rng.normal(10, 2, 3000), rng.normal(10.2, 3, 2500)
    welch = welch_t(Moments.of(a), Moments.of(b))
    statistic, p_value, _ = ttest_ind(b, a, usevar="unequal")
    assert welch.p_value == pytest.approx(p_value, rel=1e-9)
    assert welch.estimate / welch.standard_error == pytest.approx(statistic, rel=1e-9)


def test_corrections_across_comparisons_equal_statsmodels() -> None:
    p_values = [0.01, 0.04, 0.03, 0.20]
    assert adjust(p_values, "holm") == pytest.approx([0.04, 0.09, 0.09, 0.20])
    assert adjust(p_values, "bh") == pytest.approx([0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.20])
    assert adjust(p_values, "none") == p_values


def test_moments_add_up_and_bad_input_is_refused() -> None:
    rng = np.random.default_rng(1)
    y, x = rng.normal(0, 1, 100), rng.normal(0, 1, 100)
    whole = Moments.of(y, covariate=x)
    parts = Moments.of(y[:40], covariate=x[:40]) + Moments.of(y[40:], covariate=x[40:])
    assert parts.n == whole.n
    assert parts.variance == pytest.approx(whole.variance)
    assert parts.covariance == pytest.approx(np.cov(x, y)[0, 1])
    with pytest.raises(ValueError, match="covariate"):
        Moments.of([1.0, 2.0], covariate=[1.0])
    with pytest.raises(ValueError, match="at least 2"):
        welch_t(Moments.of([1.0]), Moments.of([1.0, 2.0]))
    with pytest.raises(ValueError, match="add up to 1"):
        sample_ratio([10, 10], [0.5, 0.6])
    with pytest.raises(ValueError, match="between 0 and 1"):
        sample_size("binary", baseline=0.95, effect=0.1)
    with pytest.raises(ValueError, match="standard deviation"):
        sample_size("continuous", baseline=0, effect=0.1)
