"""The statistics of A/B experiments, as pure functions of per-variant summaries (issue 13).

Why summaries: an experiment's outcomes arrive for days, joined to assignments long after the requests;
every look must be cheap and reproducible from the counts kept in the store (n, sum, sum of squares, and
with a covariate its sums and cross-products), not from raw rows held in memory.

What each test is for, and where it comes from (docs/experiments.md has the full references):

* **Anytime-valid confidence sequences** for the difference between two variants: the asymptotic
  normal-mixture boundary of Howard, Ramdas, McAuliffe & Sekhon (2021, "Time-uniform, nonparametric,
  nonasymptotic confidence sequences") in the form of Waudby-Smith et al. (2023, "Time-uniform central
  limit theory"), with its tuning constant chosen for a target sample size as GrowthBook's gbstats does
  (5,000 by default). Valid at every look, so an experiment may be watched continuously and stopped as
  soon as the sequence excludes zero.
* **mSPRT always-valid p-values** (Johari, Koomen, Pekelis & Walsh 2017/2022, "Always valid inference"),
  for normal(ised) differences with a normal mixing distribution; the running minimum of 1/Λ.
* **Regression adjustment (CUPED)**, Deng, Xu, Kohavi & Walker (2013): the outcome minus θ·(covariate -
  its mean), θ pooled over variants, which shrinks the variance by rho^2 and leaves the estimate unbiased.
* **Fixed-horizon tests** for planned experiments and for comparison: the two-proportion z-test
  (statsmodels' ``proportions_ztest``) and Welch's t-test (scipy's ``ttest_ind_from_stats``).
* **Sample-ratio mismatch**: Pearson's χ² against the planned allocation (alarm at p < 0.001, as
  GrowthBook and Fabijan et al. 2019 recommend), and its sequential counterpart, the Dirichlet-multinomial
  Bayes factor of Lindon & Malek (2022, "Anytime-valid inference for multinomial count data").
* **Multiple comparisons**: Holm (family-wise) or Benjamini-Hochberg (false discovery rate) through
  statsmodels' ``multipletests``; guardrails are corrected apart from the primary metrics.
* **Planning**: the sample size per variant for a minimum detectable effect at a power, from the normal
  approximation (statsmodels' power classes agree with it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import special, stats

MetricKind = Literal["binary", "continuous"]
Correction = Literal["holm", "bh", "none"]

#: GrowthBook's default: the sequence is tightest around this many observations.
DEFAULT_TUNING_N = 5000
#: The sample-ratio-mismatch alarm level: at 0.05 about half the alarms would be false when SRM is rare.
SRM_ALPHA = 0.001


@dataclass(frozen=True)
class Moments:
    """One variant's sufficient statistics for a metric (and, optionally, its pre-period covariate)."""

    n: int
    total: float
    total_sq: float
    covariate_total: float = 0.0
    covariate_total_sq: float = 0.0
    cross_total: float = 0.0  # Σ x·y

    @classmethod
    def of(
        cls, values: Sequence[float] | np.ndarray, covariate: Sequence[float] | np.ndarray | None = None
    ) -> Moments:
        y = np.asarray(values, dtype=float)
        if covariate is None:
            return cls(int(y.size), float(y.sum()), float((y * y).sum()))
        x = np.asarray(covariate, dtype=float)
        if x.shape != y.shape:
            raise ValueError(f"covariate has {x.size} values for {y.size} outcomes")
        return cls(
            int(y.size),
            float(y.sum()),
            float((y * y).sum()),
            float(x.sum()),
            float((x * x).sum()),
            float((x * y).sum()),
        )

    def __add__(self, other: Moments) -> Moments:
        return Moments(
            self.n + other.n,
            self.total + other.total,
            self.total_sq + other.total_sq,
            self.covariate_total + other.covariate_total,
            self.covariate_total_sq + other.covariate_total_sq,
            self.cross_total + other.cross_total,
        )

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    def _co_moment(self, total_a: float, total_b: float, total_ab: float) -> float:
        """The sample (n - 1) covariance of two quantities from their sums: variances are its diagonal."""
        if self.n < 2:
            return math.nan
        return (total_ab - total_a * total_b / self.n) / (self.n - 1)

    @property
    def variance(self) -> float:
        # Clamped: the sums' rounding must not make a constant metric's variance negative.
        return max(self._co_moment(self.total, self.total, self.total_sq), 0.0)

    @property
    def covariate_mean(self) -> float:
        return self.covariate_total / self.n if self.n else math.nan

    @property
    def covariate_variance(self) -> float:
        return max(self._co_moment(self.covariate_total, self.covariate_total, self.covariate_total_sq), 0.0)

    @property
    def covariance(self) -> float:
        return self._co_moment(self.total, self.covariate_total, self.cross_total)


@dataclass(frozen=True)
class Difference:
    """Treatment minus control: the estimate, its interval at 1 - alpha, and a p-value for 'no difference'."""

    estimate: float
    lower: float
    upper: float
    p_value: float
    standard_error: float
    relative: float  # estimate / control mean (nan when the control mean is 0)

    @property
    def significant(self) -> bool:
        return self.lower > 0 or self.upper < 0


def _variance_of_difference(control: Moments, treatment: Moments) -> float:
    return control.variance / control.n + treatment.variance / treatment.n


def _need(control: Moments, treatment: Moments) -> None:
    if control.n < 2 or treatment.n < 2:
        raise ValueError("each variant needs at least 2 outcomes")


# --- fixed horizon ---------------------------------------------------------------------------------------


def two_proportion_z(control: Moments, treatment: Moments, alpha: float = 0.05) -> Difference:
    """The classic test of a planned experiment on a conversion rate: pooled z statistic (statsmodels'
    ``proportions_ztest``) and the unpooled Wald interval for the difference."""
    from statsmodels.stats.proportion import proportions_ztest

    _need(control, treatment)
    successes = np.array([treatment.total, control.total])
    counts = np.array([treatment.n, control.n])
    _, p_value = proportions_ztest(successes, counts, value=0.0, alternative="two-sided")
    p_c, p_t = control.mean, treatment.mean
    se = math.sqrt(p_c * (1 - p_c) / control.n + p_t * (1 - p_t) / treatment.n)
    z = stats.norm.ppf(1 - alpha / 2)
    estimate = p_t - p_c
    return Difference(
        estimate, estimate - z * se, estimate + z * se, float(p_value), se, _relative(estimate, p_c)
    )


def welch_t(control: Moments, treatment: Moments, alpha: float = 0.05) -> Difference:
    """The classic test of a planned experiment on a continuous metric (scipy's Welch t-test)."""
    _need(control, treatment)
    result = stats.ttest_ind_from_stats(
        treatment.mean,
        math.sqrt(treatment.variance),
        treatment.n,
        control.mean,
        math.sqrt(control.variance),
        control.n,
        equal_var=False,
    )
    v_t, v_c = treatment.variance / treatment.n, control.variance / control.n
    se = math.sqrt(v_t + v_c)
    dof = (v_t + v_c) ** 2 / (v_t**2 / (treatment.n - 1) + v_c**2 / (control.n - 1)) if se > 0 else math.inf
    t = stats.t.ppf(1 - alpha / 2, dof)
    estimate = treatment.mean - control.mean
    return Difference(
        estimate,
        estimate - t * se,
        estimate + t * se,
        float(result.pvalue),
        se,
        _relative(estimate, control.mean),
    )


def fixed_horizon(kind: MetricKind, control: Moments, treatment: Moments, alpha: float = 0.05) -> Difference:
    return (
        two_proportion_z(control, treatment, alpha)
        if kind == "binary"
        else welch_t(control, treatment, alpha)
    )


# --- anytime-valid ---------------------------------------------------------------------------------------


def mixture_rho(alpha: float, tuning_n: int = DEFAULT_TUNING_N) -> float:
    """The normal mixture's spread that makes the boundary tightest at ``tuning_n`` observations
    (Howard et al. 2021, eq. for the optimal rho; gbstats' ``sequential_rho``)."""
    log_term = -2 * math.log(alpha)
    return math.sqrt((log_term + math.log(log_term + 1)) / tuning_n)


def _sequence_half_width(n: int, variance: float, alpha: float, rho: float) -> float:
    """Half-width after ``n`` observations for an estimate of variance ``variance`` (= σ²/n)."""
    nr = n * rho * rho
    return math.sqrt(variance * 2 * (nr + 1) / nr * math.log(math.sqrt(nr + 1) / alpha))


def confidence_sequence(
    control: Moments,
    treatment: Moments,
    alpha: float = 0.05,
    tuning_n: int = DEFAULT_TUNING_N,
) -> Difference:
    """An interval for treatment - control valid at every look: stop whenever it excludes zero.

    The difference of means is treated as a mean of ``n = n_c + n_t`` observations whose per-observation
    variance is ``n · Var(difference)`` (the same reduction gbstats makes). The p-value is the smallest
    alpha at which the sequence excludes zero (an always-valid p-value).
    """
    _need(control, treatment)
    n = control.n + treatment.n
    variance = _variance_of_difference(control, treatment)
    estimate = treatment.mean - control.mean
    if variance <= 0:
        p = 1.0 if estimate == 0 else 0.0
        return Difference(estimate, estimate, estimate, p, 0.0, _relative(estimate, control.mean))
    rho = mixture_rho(alpha, tuning_n)
    half = _sequence_half_width(n, variance, alpha, rho)
    # Solve width(alpha') = |estimate| for alpha': the boundary is monotone in alpha.
    nr = n * rho * rho
    exponent = -(estimate * estimate) * n * rho * rho / (2 * (nr + 1) * variance)
    p_value = min(1.0, math.sqrt(nr + 1) * math.exp(exponent))
    return Difference(
        estimate,
        estimate - half,
        estimate + half,
        p_value,
        math.sqrt(variance),
        _relative(estimate, control.mean),
    )


def msprt_p_value(control: Moments, treatment: Moments, tau_sq: float) -> float:
    """This look's mixture likelihood ratio Λ as a p-value bound, min(1, 1/Λ) (Johari et al.).

    ``tau_sq`` is the mixing variance of the effect (on the metric's scale); the always-valid p-value of a
    running experiment is the minimum of this over its looks (see :class:`AlwaysValidP`).
    """
    _need(control, treatment)
    v = _variance_of_difference(control, treatment)
    if v <= 0:
        return 1.0
    estimate = treatment.mean - control.mean
    log_lambda = 0.5 * math.log(v / (v + tau_sq)) + tau_sq * estimate * estimate / (2 * v * (v + tau_sq))
    return float(min(1.0, math.exp(-log_lambda)))


@dataclass
class AlwaysValidP:
    """The running minimum of a look's p-value bound: what an always-valid p-value is."""

    value: float = 1.0

    def look(self, p: float) -> float:
        self.value = min(self.value, p)
        return self.value


# --- variance reduction ----------------------------------------------------------------------------------


def cuped(variants: Sequence[Moments]) -> tuple[list[Moments], float]:
    """Each variant's metric adjusted by its pre-period covariate, y - θ(x - x̄), with θ pooled over the
    variants (so the adjustment cannot favour one) and x̄ the pooled covariate mean.

    Returns the adjusted moments (usable by every test above) and θ. The adjusted outcome's variance is
    Var(y)(1 - rho^2) for a covariate of correlation rho; with rho = 0, θ ≈ 0 and nothing changes.
    """
    pooled = variants[0]
    for moments in variants[1:]:
        pooled = pooled + moments
    if pooled.n < 3 or not pooled.covariate_variance > 0:
        return list(variants), 0.0
    # θ from within-variant (co)variances, so a treatment effect does not leak into it.
    within_cov = sum(m.covariance * (m.n - 1) for m in variants if m.n >= 2)
    within_var = sum(m.covariate_variance * (m.n - 1) for m in variants if m.n >= 2)
    theta = within_cov / within_var if within_var > 0 else 0.0
    x_bar = pooled.covariate_mean
    adjusted = []
    for m in variants:
        # Σ(y - θ(x - x̄)) and Σ(y - θ(x - x̄))², from the sums kept.
        shift_total = m.covariate_total - m.n * x_bar  # Σ(x - x̄)
        shift_sq = m.covariate_total_sq - 2 * x_bar * m.covariate_total + m.n * x_bar * x_bar  # Σ(x - x̄)²
        cross = m.cross_total - x_bar * m.total  # Σ y(x - x̄)
        total = m.total - theta * shift_total
        total_sq = m.total_sq - 2 * theta * cross + theta * theta * shift_sq
        adjusted.append(Moments(m.n, total, total_sq))
    return adjusted, theta


# --- sample-ratio mismatch -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleRatio:
    counts: tuple[int, ...]
    expected_shares: tuple[float, ...]
    p_value: float  # Pearson χ² at this look
    sequential_p_value: float  # Dirichlet-multinomial, valid at every look
    alarm: bool  # either below SRM_ALPHA


def sample_ratio(
    counts: Sequence[int], expected_shares: Sequence[float], alpha: float = SRM_ALPHA
) -> SampleRatio:
    """Were units assigned in the planned proportions? A mismatch means the comparison is biased (a
    variant that crashes, a redirect that drops users) whatever the metrics say."""
    observed = np.asarray(counts, dtype=float)
    shares = np.asarray(expected_shares, dtype=float)
    if observed.shape != shares.shape or observed.size < 2:
        raise ValueError("one count and one expected share per variant, at least two variants")
    if np.any(shares <= 0) or not math.isclose(float(shares.sum()), 1.0, rel_tol=1e-6):
        raise ValueError("expected shares must be positive and add up to 1")
    total = observed.sum()
    if total == 0:
        return SampleRatio(tuple(int(c) for c in counts), tuple(float(s) for s in shares), 1.0, 1.0, False)
    p = float(stats.chisquare(observed, total * shares).pvalue)
    sequential = multinomial_sequential_p(observed, shares)
    return SampleRatio(
        tuple(int(c) for c in counts),
        tuple(float(s) for s in shares),
        p,
        sequential,
        min(p, sequential) < alpha,
    )


def multinomial_sequential_p(
    counts: Sequence[float] | np.ndarray, shares: Sequence[float] | np.ndarray, concentration: float = 1.0
) -> float:
    """min(1, 1/BF) for the counts against the planned shares, the Bayes factor of a Dirichlet mixture
    centred on the plan (Lindon & Malek 2022). Its running minimum over looks is an always-valid p-value;
    at a single look, as here, it is already valid whenever it is read."""
    n = np.asarray(counts, dtype=float)
    p0 = np.asarray(shares, dtype=float)
    a = concentration * p0 * p0.size  # prior mean at the plan, total concentration = size · concentration
    log_bf = (
        special.gammaln(a.sum())
        - special.gammaln(a.sum() + n.sum())
        + float(np.sum(special.gammaln(a + n) - special.gammaln(a)))
        - float(np.sum(n * np.log(p0)))
    )
    return float(min(1.0, math.exp(-log_bf))) if log_bf > -700 else 1.0


# --- many comparisons ------------------------------------------------------------------------------------


def adjust(p_values: Sequence[float], method: Correction = "holm") -> list[float]:
    """Adjusted p-values across variants x metrics of one family (primary metrics; guardrails apart)."""
    if method == "none" or len(p_values) <= 1:
        return [float(p) for p in p_values]
    from statsmodels.stats.multitest import multipletests

    _, adjusted, _, _ = multipletests(list(p_values), method="holm" if method == "holm" else "fdr_bh")
    return [float(p) for p in adjusted]


# --- planning --------------------------------------------------------------------------------------------


def sample_size(
    kind: MetricKind,
    *,
    baseline: float,
    effect: float,
    alpha: float = 0.05,
    power: float = 0.8,
    std: float | None = None,
) -> int:
    """Units per variant for a two-sided fixed-horizon test to detect ``effect`` (absolute: treatment -
    control) at ``power``. For a binary metric the variance comes from the rates; for a continuous one,
    ``std`` is the metric's standard deviation."""
    if effect == 0:
        raise ValueError("effect must be non-zero")
    z = float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))
    if kind == "binary":
        treated = baseline + effect
        if not (0 < baseline < 1 and 0 < treated < 1):
            raise ValueError("rates must stay between 0 and 1")
        variance = baseline * (1 - baseline) + treated * (1 - treated)
    else:
        if std is None or std <= 0:
            raise ValueError("a continuous metric needs its standard deviation (std > 0)")
        variance = 2 * std * std
    return math.ceil(z * z * variance / (effect * effect))


def sequential_sample_size(
    kind: MetricKind,
    *,
    baseline: float,
    effect: float,
    alpha: float = 0.05,
    power: float = 0.8,
    std: float | None = None,
    tuning_n: int = DEFAULT_TUNING_N,
) -> int:
    """Units per variant for the confidence sequence to exclude zero at ``power`` when the effect is
    ``effect``: more than the fixed-horizon test needs (the price of looking at every step)."""
    fixed = sample_size(kind, baseline=baseline, effect=effect, alpha=alpha, power=power, std=std)
    treated = baseline + effect
    unit_variance = (
        baseline * (1 - baseline) + treated * (1 - treated) if kind == "binary" else 2 * (std or 0.0) ** 2
    )
    rho = mixture_rho(alpha, tuning_n)
    z_power = float(stats.norm.ppf(power))

    def enough(n: int) -> bool:
        variance = unit_variance / n
        return abs(effect) - _sequence_half_width(2 * n, variance, alpha, rho) >= z_power * math.sqrt(
            variance
        )

    low, high = fixed, fixed
    while not enough(high):
        low, high = high, high * 2
    while low < high:  # the smallest n that is enough
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle + 1
    return high


def _relative(estimate: float, control_mean: float) -> float:
    return estimate / control_mean if control_mean else math.nan
