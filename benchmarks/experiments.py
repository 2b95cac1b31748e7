"""A/B experiment statistics at scale (issue 13): the seeded simulations too large for the unit tests.

    .venv/bin/python benchmarks/experiments.py               # about 2 minutes, one process; prints tables
    .venv/bin/python benchmarks/experiments.py --write-docs  # also updates docs/benchmarks.md

1. A/A false-positive rate, a look every 100 units up to 10,000 units, 10,000 experiments per metric
   (normal, log-normal, binary): the confidence sequence, mSPRT, the fixed-horizon test at every look
   (peeking) and once at the end.
2. Power and mean stopping sample of the sequential tests up to ``sequential_sample_size`` against the
   fixed-horizon test at ``sample_size``, for a few effects.
3. CUPED: the variance ratio against 1 - rho^2, the estimate's bias, A/A false positives.
4. Sample-ratio mismatch on 20,000 units: detection and false alarms, once and watched.
5. End to end through ``decide()``: verdicts of simulated experiments looked at every 200 units.

Units are assigned 50/50 by coin flip. Parts 1, 2, 4 and 5 draw each block of units' sufficient
statistics from their exact joint distribution (units per arm binomial; conversions binomial; for a
normal metric Σy normal and the within-block sum of squares σ²·χ²(n - 1)); the log-normal metric and
part 3 draw every unit. Parts 1, 2 and 4 evaluate the module's formulas on numpy arrays, every look of
every experiment at once; a cross-check calls the module's own functions (``confidence_sequence``,
``msprt_p_value``, ``fixed_horizon``, ``sample_ratio``) on a sample of the same looks, and the run fails
if one decision differs. Parts 3 and 5 call the module directly.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from _docs import replace_section
from scipy import special, stats
from statsmodels.stats.proportion import proportion_confint

from workbench.experiments.decide import decide
from workbench.experiments.statistics import (
    DEFAULT_TUNING_N,
    SRM_ALPHA,
    MetricKind,
    Moments,
    confidence_sequence,
    cuped,
    fixed_horizon,
    mixture_rho,
    msprt_p_value,
    sample_ratio,
    sample_size,
    sequential_sample_size,
    welch_t,
)
from workbench.specs.experiment import ExperimentSpec

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## A/B experiment statistics (benchmarks/experiments.py)"
ALPHA = 0.05
TAU = 0.1  # mSPRT mixing spread, in standard deviations of the metric
Array = npt.NDArray[Any]


def interval(hits: int, runs: int) -> str:
    low, high = proportion_confint(hits, runs, alpha=0.05, method="wilson")
    return f"{100 * low:.2f}-{100 * high:.2f} %"


def pct(hits: int | float, runs: int) -> str:
    return f"{100 * hits / runs:.2f} %"


# --- simulation --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arm:
    """One arm's cumulative sufficient statistics at every look: arrays (experiments, looks)."""

    n: Array
    total: Array
    total_sq: Array

    def moments(self, e: int, k: int) -> Moments:
        return Moments(int(self.n[e, k]), float(self.total[e, k]), float(self.total_sq[e, k]))


@dataclass(frozen=True)
class Population:
    label: str
    kind: MetricKind
    mean: float
    sd: float


NORMAL = Population("continuous, normal (mean 10, sd 3)", "continuous", 10.0, 3.0)
LOGNORMAL = Population(
    "continuous, log-normal (log-sd 1, skewness 6)",
    "continuous",
    math.exp(0.5),
    math.sqrt((math.e - 1) * math.e),
)
BINARY = Population("binary, 10 % conversion", "binary", 0.10, math.sqrt(0.10 * 0.90))


def assign(
    rng: np.random.Generator, shape: tuple[int, int], block: int, share: float = 0.5
) -> tuple[Array, Array]:
    """Units per block in control and treatment, each unit a coin flip with P(treatment) = share."""
    treated = rng.binomial(block, share, size=shape)
    return block - treated, treated


def block_sums(
    rng: np.random.Generator, n: Array, kind: MetricKind, mean: float, sd: float
) -> tuple[Array, Array]:
    """Σy and Σy² of ``n`` units per cell, drawn from their exact joint distribution."""
    if kind == "binary":
        successes = rng.binomial(n, mean).astype(float)
        return successes, successes
    total = rng.normal(n * mean, np.sqrt(n) * sd)
    within = sd * sd * 2.0 * rng.standard_gamma(np.maximum(n - 1, 0) / 2.0)  # σ²·χ²(n - 1)
    return total, within + np.where(n > 0, total * total / np.maximum(n, 1), 0.0)


def arm(rng: np.random.Generator, n: Array, kind: MetricKind, mean: float, sd: float) -> Arm:
    total, total_sq = block_sums(rng, n, kind, mean, sd)
    return Arm(np.cumsum(n, axis=1), np.cumsum(total, axis=1), np.cumsum(total_sq, axis=1))


def simulate(
    rng: np.random.Generator, shape: tuple[int, int], block: int, population: Population, shift: float = 0.0
) -> tuple[Arm, Arm]:
    n_c, n_t = assign(rng, shape, block)
    control = arm(rng, n_c, population.kind, population.mean, population.sd)
    return control, arm(rng, n_t, population.kind, population.mean + shift, population.sd)


def simulate_units(
    rng: np.random.Generator,
    shape: tuple[int, int],
    block: int,
    draw: Callable[[np.random.Generator, tuple[int, ...]], Array],
    chunk: int = 200,
) -> tuple[Arm, Arm]:
    """The same, drawing every unit (for a metric whose block sums have no closed form)."""
    parts: list[list[Array]] = [[] for _ in range(6)]
    for start in range(0, shape[0], chunk):
        size = (min(chunk, shape[0] - start), shape[1], block)
        y = draw(rng, size)
        treated = rng.random(size) < 0.5
        for offset, mask in ((0, ~treated), (3, treated)):
            parts[offset].append(mask.sum(axis=2))
            parts[offset + 1].append(np.where(mask, y, 0.0).sum(axis=2))
            parts[offset + 2].append(np.where(mask, y * y, 0.0).sum(axis=2))
    c, t = (
        (np.cumsum(np.concatenate(p), axis=1) for p in parts[:3]),
        (np.cumsum(np.concatenate(p), axis=1) for p in parts[3:]),
    )
    return Arm(*c), Arm(*t)


# --- the module's formulas on arrays (cross-checked against the module) -----------------------------


def _mean_var(a: Arm) -> tuple[Array, Array]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return a.total / a.n, np.maximum((a.total_sq - a.total * a.total / a.n) / (a.n - 1), 0.0)


def difference(c: Arm, t: Arm) -> tuple[Array, Array]:
    """Estimate and variance of treatment - control."""
    (mean_c, var_c), (mean_t, var_t) = _mean_var(c), _mean_var(t)
    return mean_t - mean_c, var_c / c.n + var_t / t.n


def cs_direction(c: Arm, t: Arm, alpha: float = ALPHA) -> Array:
    """+1 where the confidence sequence lies above 0, -1 below, 0 where it covers 0."""
    estimate, variance = difference(c, t)
    nr = (c.n + t.n) * mixture_rho(alpha, DEFAULT_TUNING_N) ** 2
    half = np.sqrt(variance * 2 * (nr + 1) / nr * np.log(np.sqrt(nr + 1) / alpha))
    half = np.where(variance > 0, half, 0.0)
    return np.where(estimate - half > 0, 1, np.where(estimate + half < 0, -1, 0))


def msprt_p(c: Arm, t: Arm, tau_sq: float) -> Array:
    estimate, v = difference(c, t)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_lambda = 0.5 * np.log(v / (v + tau_sq)) + tau_sq * estimate * estimate / (2 * v * (v + tau_sq))
        return np.where(v > 0, np.minimum(1.0, np.exp(-log_lambda)), 1.0)


def fixed_p(kind: MetricKind, c: Arm, t: Arm) -> Array:
    """Two-proportion z (pooled) for a binary metric, Welch's t for a continuous one."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "binary":
            pooled = (c.total + t.total) / (c.n + t.n)
            se = np.sqrt(pooled * (1 - pooled) * (1 / c.n + 1 / t.n))
            z = (t.total / t.n - c.total / c.n) / se
            return np.asarray(2 * stats.norm.sf(np.abs(z)))
        (mean_c, var_c), (mean_t, var_t) = _mean_var(c), _mean_var(t)
        result = stats.ttest_ind_from_stats(
            mean_t, np.sqrt(var_t), t.n, mean_c, np.sqrt(var_c), c.n, equal_var=False
        )
        return np.asarray(result.pvalue)


def _same_p(ours: float, theirs: float) -> bool:
    return (math.isnan(ours) and math.isnan(theirs)) or math.isclose(
        ours, theirs, rel_tol=1e-7, abs_tol=1e-12
    )


def cross_check(kind: MetricKind, c: Arm, t: Arm, tau_sq: float, experiments: int = 30) -> tuple[int, int]:
    """Every look of ``experiments`` evenly spread experiments, through the module: (looks, mismatches)."""
    direction, p_msprt, p_fixed = cs_direction(c, t), msprt_p(c, t, tau_sq), fixed_p(kind, c, t)
    looks = mismatches = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 of a constant binary look, as in ours
        for e in np.linspace(0, c.n.shape[0] - 1, experiments).astype(int):
            for k in range(c.n.shape[1]):
                mc, mt = c.moments(e, k), t.moments(e, k)
                sequence = confidence_sequence(mc, mt, ALPHA)
                fixed = fixed_horizon(kind, mc, mt, ALPHA).p_value
                signed = 1 if sequence.lower > 0 else -1 if sequence.upper < 0 else 0
                looks += 1
                mismatches += not (
                    signed == direction[e, k]
                    and _same_p(msprt_p_value(mc, mt, tau_sq), float(p_msprt[e, k]))
                    and _same_p(fixed, float(p_fixed[e, k]))
                    and (fixed < ALPHA) == (p_fixed[e, k] < ALPHA)
                )
    return looks, mismatches


def first(hit: Array) -> Array:
    """Index of the first True per row, or -1."""
    return np.where(hit.any(axis=1), hit.argmax(axis=1), -1)


# --- 1. A/A false positives ---------------------------------------------------------------------------


def part_aa(seed: int, experiments: int) -> dict[str, Any]:
    looks, block = 100, 100
    rows, checks = [], []
    for index, population in enumerate((NORMAL, LOGNORMAL, BINARY)):
        rng = np.random.default_rng([seed, 1, index])
        if population is LOGNORMAL:
            c, t = simulate_units(rng, (experiments, looks), block, lambda g, s: g.lognormal(0.0, 1.0, s))
        else:
            c, t = simulate(rng, (experiments, looks), block, population)
        tau_sq = (TAU * population.sd) ** 2
        sequence = cs_direction(c, t) != 0
        mixture = np.minimum.accumulate(msprt_p(c, t, tau_sq), axis=1) < ALPHA
        peeking = fixed_p(population.kind, c, t) < ALPHA
        test = "Welch t" if population.kind == "continuous" else "two-proportion z"
        for label, rejected in (
            ("confidence sequence, every 100 units", sequence.any(axis=1)),
            (f"mSPRT (τ = {TAU:g} sd), every 100 units", mixture[:, -1]),
            (f"{test} at every look (peeking)", peeking.any(axis=1)),
            (f"{test} once, at 10,000 units", peeking[:, -1]),
            ("confidence sequence once, at 10,000 units", sequence[:, -1]),
        ):
            hits = int(rejected.sum())
            rows.append((population.label, label, hits, experiments))
        # When do the peeking false positives happen? (the first look that rejects)
        early = first(peeking)
        checks.append((population.label, *cross_check(population.kind, c, t, tau_sq)))
        rows.append(
            (
                population.label,
                f"{test}, peeking: false positives first seen by 1,000 units",
                int(((early >= 0) & (early < 10)).sum()),
                experiments,
            )
        )
    return {"rows": rows, "checks": checks, "looks": looks, "block": block}


# --- 2. power and stopping sample ---------------------------------------------------------------------


def part_power(seed: int, experiments: int, chunk: int = 1000) -> list[dict[str, Any]]:
    block = 100
    cases = [
        (NORMAL, 0.05 * NORMAL.sd, "0.05 sd"),
        (NORMAL, 0.1 * NORMAL.sd, "0.1 sd"),
        (NORMAL, 0.2 * NORMAL.sd, "0.2 sd"),
        (BINARY, 0.01, "10 % → 11 %"),
        (BINARY, 0.02, "10 % → 12 %"),
    ]
    results = []
    for index, (population, effect, label) in enumerate(cases):
        rng = np.random.default_rng([seed, 2, index])
        std = population.sd if population.kind == "continuous" else None
        n_fixed = sample_size(population.kind, baseline=population.mean, effect=effect, std=std)
        n_seq = sequential_sample_size(population.kind, baseline=population.mean, effect=effect, std=std)
        # The planned test: exactly n_fixed units per arm.
        size = np.full((experiments, 1), n_fixed)
        c = Arm(size, *block_sums(rng, size, population.kind, population.mean, population.sd))
        t = Arm(size, *block_sums(rng, size, population.kind, population.mean + effect, population.sd))
        fixed_hits = int(((fixed_p(population.kind, c, t) < ALPHA) & (t.total > c.total)).sum())
        # The sequential tests: a look every 100 units up to 2 * n_seq units.
        looks = math.ceil(2 * n_seq / block)
        within_fixed = math.ceil(2 * n_fixed / block)
        tau_sq = (TAU * population.sd) ** 2
        seq_right = seq_wrong = seq_by_fixed = mix_right = 0
        seq_stops: list[Array] = []
        mix_stops: list[Array] = []
        for start in range(0, experiments, chunk):
            c, t = simulate(rng, (min(chunk, experiments - start), looks), block, population, effect)
            direction = cs_direction(c, t)
            at = first(direction != 0)
            sign = np.where(at >= 0, direction[np.arange(at.size), np.maximum(at, 0)], 0)
            seq_right += int((sign > 0).sum())
            seq_wrong += int((sign < 0).sum())
            seq_by_fixed += int(((sign > 0) & (at < within_fixed)).sum())
            seq_stops.append(np.where(at >= 0, at + 1, looks) * block)
            estimate, _ = difference(c, t)
            crossed = msprt_p(c, t, tau_sq) < ALPHA
            mix_at = first(crossed)
            mix_sign = np.where(mix_at >= 0, estimate[np.arange(mix_at.size), np.maximum(mix_at, 0)], 0.0)
            mix_right += int((mix_sign > 0).sum())
            mix_stops.append(np.where(mix_at >= 0, mix_at + 1, looks) * block)
        stops, mix = np.concatenate(seq_stops) / 2, np.concatenate(mix_stops) / 2  # per arm
        results.append(
            {
                "metric": population.label.split(" (")[0] if population.kind == "continuous" else "binary",
                "effect": label,
                "n_fixed": n_fixed,
                "n_seq": n_seq,
                "max_per_arm": looks * block // 2,
                "fixed_power": fixed_hits,
                "seq_power": seq_right,
                "seq_wrong": seq_wrong,
                "seq_by_fixed": seq_by_fixed,
                "seq_mean_stop": float(stops.mean()),
                "seq_median_stop": float(np.median(stops)),
                "mix_power": mix_right,
                "mix_mean_stop": float(mix.mean()),
                "runs": experiments,
            }
        )
    return results


# --- 3. CUPED -----------------------------------------------------------------------------------------


def _covariate_moments(
    rng: np.random.Generator, runs: int, n: int, rho: float, shift: float
) -> list[Moments]:
    x = rng.normal(0.0, 1.0, (runs, n))
    y = 5.0 + shift + rho * x + math.sqrt(1 - rho * rho) * rng.normal(0.0, 1.0, (runs, n))
    sums = [a.sum(axis=1) for a in (y, y * y, x, x * x, x * y)]
    return [Moments(n, *(float(s[i]) for s in sums)) for i in range(runs)]


def part_cuped(seed: int, runs: int, aa_runs: int, n: int = 2000, aa_n: int = 1000) -> dict[str, Any]:
    effect = 0.1
    ratios = []
    for index, rho in enumerate((0.0, 0.3, 0.5, 0.7, 0.9)):
        rng = np.random.default_rng([seed, 3, index])
        control = _covariate_moments(rng, runs, n, rho, 0.0)
        treated = _covariate_moments(rng, runs, n, rho, effect)
        se_ratio, plain_est, adjusted_est, thetas = [], [], [], []
        for mc, mt in zip(control, treated, strict=True):
            (ac, at), theta = cuped([mc, mt])
            plain, adjusted = welch_t(mc, mt), welch_t(ac, at)
            se_ratio.append(adjusted.standard_error**2 / plain.standard_error**2)
            plain_est.append(plain.estimate)
            adjusted_est.append(adjusted.estimate)
            thetas.append(theta)
        ratios.append(
            {
                "rho": rho,
                "expected": 1 - rho * rho,
                "se_ratio": float(np.mean(se_ratio)),
                "empirical_ratio": float(np.var(adjusted_est, ddof=1) / np.var(plain_est, ddof=1)),
                "estimate": float(np.mean(adjusted_est)),
                "estimate_se": float(np.std(adjusted_est, ddof=1) / math.sqrt(runs)),
                "theta": float(np.mean(thetas)),
            }
        )
    aa = []
    for index, rho in enumerate((0.0, 0.7)):
        rng = np.random.default_rng([seed, 3, 10 + index])
        plain_hits = adjusted_hits = 0
        for start in range(0, aa_runs, 1000):
            size = min(1000, aa_runs - start)
            control = _covariate_moments(rng, size, aa_n, rho, 0.0)
            treated = _covariate_moments(rng, size, aa_n, rho, 0.0)
            for mc, mt in zip(control, treated, strict=True):
                (ac, at), _ = cuped([mc, mt])
                plain_hits += welch_t(mc, mt).p_value < ALPHA
                adjusted_hits += welch_t(ac, at).p_value < ALPHA
        aa.append({"rho": rho, "plain": plain_hits, "adjusted": adjusted_hits, "runs": aa_runs})
    return {"ratios": ratios, "aa": aa, "runs": runs, "n": n, "aa_n": aa_n, "effect": effect}


# --- 4. sample-ratio mismatch -------------------------------------------------------------------------


def srm_p(n_c: Array, n_t: Array) -> tuple[Array, Array]:
    """Pearson χ² and the Dirichlet-multinomial sequential p against 50/50 (concentration 1)."""
    total = n_c + n_t
    expected = total / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        chi = np.where(total > 0, ((n_c - expected) ** 2 + (n_t - expected) ** 2) / expected, 0.0)
    chi_p = stats.chi2.sf(chi, 1)
    log_bf = (
        special.gammaln(2.0)
        - special.gammaln(2.0 + total)
        + special.gammaln(1.0 + n_c)
        + special.gammaln(1.0 + n_t)
        - total * math.log(0.5)
    )
    with np.errstate(over="ignore"):
        sequential = np.where(log_bf > -700, np.minimum(1.0, np.exp(-log_bf)), 1.0)
    return np.asarray(chi_p), sequential


def part_srm(seed: int, runs: int) -> dict[str, Any]:
    looks, block = 200, 100
    rows, checked, mismatches = [], 0, 0
    for index, share in enumerate((0.52, 0.51, 0.505, 0.50)):
        rng = np.random.default_rng([seed, 4, index])
        in_control = np.cumsum(rng.binomial(block, share, size=(runs, looks)), axis=1)
        in_treatment = np.arange(1, looks + 1) * block - in_control
        chi_p, sequential = srm_p(in_control, in_treatment)
        rows.append(
            {
                "share": share,
                "chi_once": int((chi_p[:, -1] < SRM_ALPHA).sum()),
                "chi_watched": int((chi_p < SRM_ALPHA).any(axis=1).sum()),
                "seq_once": int((sequential[:, -1] < SRM_ALPHA).sum()),
                "seq_watched": int((sequential < SRM_ALPHA).any(axis=1).sum()),
                "either_watched": int(((chi_p < SRM_ALPHA) | (sequential < SRM_ALPHA)).any(axis=1).sum()),
                "runs": runs,
            }
        )
        for e in np.linspace(0, runs - 1, 10).astype(int):
            for k in range(looks):
                result = sample_ratio([int(in_control[e, k]), int(in_treatment[e, k])], [0.5, 0.5])
                checked += 1
                mismatches += not (
                    _same_p(result.p_value, float(chi_p[e, k]))
                    and _same_p(result.sequential_p_value, float(sequential[e, k]))
                )
    # No mismatch, watched longer: does a false alarm become likelier with every look?
    horizons, chunk = (20_000, 50_000, 100_000), 1000
    rng = np.random.default_rng([seed, 4, 9])
    chi_alarms, seq_alarms = Counter[int](), Counter[int]()
    for start in range(0, runs, chunk):
        size = min(chunk, runs - start)
        in_control = np.cumsum(rng.binomial(block, 0.5, size=(size, horizons[-1] // block)), axis=1)
        chi_p, sequential = srm_p(in_control, np.arange(1, in_control.shape[1] + 1) * block - in_control)
        for horizon in horizons:
            chi_alarms[horizon] += int((chi_p[:, : horizon // block] < SRM_ALPHA).any(axis=1).sum())
            seq_alarms[horizon] += int((sequential[:, : horizon // block] < SRM_ALPHA).any(axis=1).sum())
    longer = [{"units": h, "chi": chi_alarms[h], "seq": seq_alarms[h], "runs": runs} for h in horizons]
    return {"rows": rows, "longer": longer, "looks": looks, "block": block, "checks": (checked, mismatches)}


# --- 5. decide() end to end ---------------------------------------------------------------------------

SPEC = ExperimentSpec.model_validate(
    {
        "name": "checkout",
        "endpoint": "churn",
        "variants": [
            {"name": "control", "model": "churn", "version": 1, "weight": 50},
            {"name": "candidate", "model": "churn", "version": 2, "weight": 50},
        ],
        "primary": {"name": "converted", "kind": "binary", "margin": 0.01},
        "guardrails": [{"name": "latency-ms", "kind": "continuous", "better": "lower", "margin": 5.0}],
    }
)
LATENCY_MEAN, LATENCY_SD = 50.0, 20.0
#: name, conversion of the candidate (control 10 %), extra latency (ms), verdicts that are right, wrong.
SCENARIOS = [
    ("true winner: 10 % → 12 %", 0.12, 0.0, {"winner"}, {"futility", "guardrail_breach", "srm"}),
    ("true loser: 10 % → 8 %", 0.08, 0.0, {"futility"}, {"winner", "guardrail_breach", "srm"}),
    ("A/A", 0.10, 0.0, {"futility"}, {"winner", "guardrail_breach", "srm"}),
    (
        "guardrail harm: 10 % → 12 %, latency +10 ms",
        0.12,
        10.0,
        {"guardrail_breach"},
        {"winner", "futility", "srm"},
    ),
]


def part_decide(seed: int, runs: int, looks: int = 100, block: int = 200) -> dict[str, Any]:
    results = []
    for index, (label, rate, slower, right, wrong) in enumerate(SCENARIOS):
        rng = np.random.default_rng([seed, 5, index])
        n_c, n_t = assign(rng, (runs, looks), block)
        converted = (arm(rng, n_c, "binary", 0.10, 0.0), arm(rng, n_t, "binary", rate, 0.0))
        latency = (
            arm(rng, n_c, "continuous", LATENCY_MEAN, LATENCY_SD),
            arm(rng, n_t, "continuous", LATENCY_MEAN + slower, LATENCY_SD),
        )
        verdicts: Counter[str] = Counter()
        stops = []
        for e in range(runs):
            verdict, stop = "continue", looks * block
            for k in range(looks):
                outcomes = {
                    "converted": {
                        "control": converted[0].moments(e, k),
                        "candidate": converted[1].moments(e, k),
                    },
                    "latency-ms": {
                        "control": latency[0].moments(e, k),
                        "candidate": latency[1].moments(e, k),
                    },
                }
                assigned = {"control": int(converted[0].n[e, k]), "candidate": int(converted[1].n[e, k])}
                decision = decide(SPEC, assigned, outcomes)
                if decision.stops:
                    verdict, stop = decision.verdict, (k + 1) * block
                    break
            verdicts[verdict] += 1
            stops.append(stop)
        results.append(
            {
                "scenario": label,
                "verdicts": dict(verdicts),
                "right": sum(verdicts[v] for v in right),
                "wrong": sum(verdicts[v] for v in wrong),
                "mean_stop": float(np.mean(stops)),
                "runs": runs,
            }
        )
    return {"rows": results, "looks": looks, "block": block}


# --- report -------------------------------------------------------------------------------------------


def markdown(results: dict[str, Any], command: str) -> str:
    aa, power, cup, srm, dec = (results[k] for k in ("aa", "power", "cuped", "srm", "decide"))
    timings = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in results["timings"].items())
    lines = [
        SECTION,
        "",
        f"Command: `make bench-experiments` (`{command}`). Measured {results['date']} on the development "
        f"machine ({os.cpu_count()} cores, one process), statistics as of commit {results['commit']}, "
        f"seed {results['seed']}: **{results['elapsed']:.0f} s** in all ({timings}).",
        "",
        "Units are assigned 50/50 by coin flip. Each block of units' sufficient statistics is drawn from its "
        "exact distribution (the log-normal metric and the CUPED runs draw every unit); the tests are the "
        "module's formulas on numpy arrays, every look of every experiment at once, and a cross-check "
        "runs `confidence_sequence`, `msprt_p_value`, `fixed_horizon` and `sample_ratio` themselves on "
        f"{results['checked']:,} of the same looks: {results['mismatches']} decisions differ. The "
        "intervals are 95 % Wilson intervals of the Monte-Carlo rate. The confidence sequence is the "
        f"module's default (alpha 0.05, tuned for 5,000 observations); mSPRT mixes with τ = {TAU:g} sd of "
        "the metric.",
        "",
        f"### A/A false positives: a look every {aa['block']} units up to 10,000, "
        f"{aa['rows'][0][3]:,} experiments per metric (alpha 5 %)",
        "",
        "| metric | test | false positives | rate | 95 % interval |",
        "|---|---|---:|---:|---|",
    ]
    for metric, test, hits, runs in aa["rows"]:
        lines.append(f"| {metric} | {test} | {hits:,} | {pct(hits, runs)} | {interval(hits, runs)} |")
    lines += [
        "",
        "### Power and stopping sample at the planned sizes",
        "",
        "Fixed horizon: exactly `sample_size` units per variant (80 % power planned), one test. Sequential: a "
        "look every 100 units, stopping at the first look whose interval excludes 0, up to "
        "`sequential_sample_size` per variant. Power counts a rejection in the right direction; stopping "
        f"samples are units per variant (a run that never rejects counts at its maximum); "
        f"{power[0]['runs']:,} experiments per row and test.",
        "",
        "| metric | effect | fixed n | fixed power | sequential n | sequence power | …within fixed n "
        "| mean stop | median stop | mean stop / fixed n | mSPRT power | mSPRT mean stop |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in power:
        runs = r["runs"]
        lines.append(
            f"| {r['metric']} | {r['effect']} | {r['n_fixed']:,} | {pct(r['fixed_power'], runs)} | "
            f"{r['n_seq']:,} | {pct(r['seq_power'], runs)} | {pct(r['seq_by_fixed'], runs)} | "
            f"{r['seq_mean_stop']:,.0f} | {r['seq_median_stop']:,.0f} | "
            f"{r['seq_mean_stop'] / r['n_fixed']:.2f} | {pct(r['mix_power'], runs)} | {r['mix_mean_stop']:,.0f} |"
        )
    wrong_sign = sum(r["seq_wrong"] for r in power)
    lines += [
        "",
        f"The sequence stopped in the wrong direction in {wrong_sign} of {sum(r['runs'] for r in power):,} runs.",
        "",
        f"### CUPED: {cup['runs']:,} experiments per rho, {cup['n']:,} units per variant, effect {cup['effect']:g} sd",
        "",
        "| rho | 1 - rho² | SE² adjusted / plain (mean) | Var(estimate) adjusted / plain | mean estimate | mean θ |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in cup["ratios"]:
        lines.append(
            f"| {r['rho']:g} | {r['expected']:.3f} | {r['se_ratio']:.3f} | {r['empirical_ratio']:.3f} | "
            f"{r['estimate']:.4f} ± {2 * r['estimate_se']:.4f} | {r['theta']:.3f} |"
        )
    lines += ["", f"A/A with a covariate, Welch t once at {cup['aa_n']:,} units per variant:", ""]
    lines += ["| rho | runs | plain: false positives | CUPED: false positives |", "|---:|---:|---|---|"]
    for r in cup["aa"]:
        lines.append(
            f"| {r['rho']:g} | {r['runs']:,} | {pct(r['plain'], r['runs'])} ({interval(r['plain'], r['runs'])}) | "
            f"{pct(r['adjusted'], r['runs'])} ({interval(r['adjusted'], r['runs'])}) |"
        )
    lines += [
        "",
        f"### Sample-ratio mismatch on 20,000 units, alarm at p < {SRM_ALPHA:g}, "
        f"{srm['rows'][0]['runs']:,} runs per split",
        "",
        "Watched = a look every 100 units (200 looks). The last column is the alarm `decide()` raised before "
        "it was fixed (either test below 0.001 at a look); it now alarms on the sequential test alone (the χ² "
        "also at a fixed-horizon experiment's one planned look).",
        "",
        "| control share | χ² once at 20,000 | χ² watched | sequential once | sequential watched "
        "| either watched (the old alarm) |",
        "|---|---|---|---|---|---|",
    ]
    for r in srm["rows"]:
        cells = [
            f"{pct(r[k], r['runs'])} ({interval(r[k], r['runs'])})"
            for k in ("chi_once", "chi_watched", "seq_once", "seq_watched", "either_watched")
        ]
        split = f"{100 * r['share']:g} / {100 - 100 * r['share']:g}"
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "False alarms on 50/50 as the watch goes on (a look every 100 units):",
        "",
        "| watched up to | looks | χ² watched | sequential watched |",
        "|---:|---:|---|---|",
    ]
    for r in srm["longer"]:
        lines.append(
            f"| {r['units']:,} | {r['units'] // srm['block']:,} | {pct(r['chi'], r['runs'])} "
            f"({interval(r['chi'], r['runs'])}) | {pct(r['seq'], r['runs'])} ({interval(r['seq'], r['runs'])}) |"
        )
    verdict_names = ["winner", "futility", "guardrail_breach", "srm", "continue"]
    lines += [
        "",
        f"### `decide()` end to end: a look every {dec['block']} units up to {dec['looks'] * dec['block']:,}, "
        f"{dec['rows'][0]['runs']:,} experiments per scenario",
        "",
        "The spec: 50/50, primary `converted` (binary, control 10 %, futility margin 0.01), guardrail "
        f"`latency-ms` (continuous, lower is better, N({LATENCY_MEAN:g}, {LATENCY_SD:g}²) ms, tolerated harm 5 ms), "
        "sequential, alpha 0.05, Holm, min_units 100. Every unit's outcome arrives at once. An experiment "
        "ends at its first verdict other than `continue`; `continue` below means still undecided at the end.",
        "",
        "| scenario | "
        + " | ".join(verdict_names)
        + " | wrong decision | 95 % interval | mean units at stop |",
        "|---|" + "---:|" * len(verdict_names) + "---:|---|---:|",
    ]
    for r in dec["rows"]:
        runs = r["runs"]
        cells = [pct(r["verdicts"].get(v, 0), runs) for v in verdict_names]
        lines.append(
            f"| {r['scenario']} | " + " | ".join(cells) + f" | {pct(r['wrong'], runs)} | "
            f"{interval(r['wrong'], runs)} | {r['mean_stop']:,.0f} |"
        )
    lines += [
        "",
        "Wrong: a winner when there is none (A/A, loser, harm); futility for the true winners; a guardrail "
        "breach or an SRM alarm where neither exists.",
        "",
    ]
    sequence = [r for r in aa["rows"] if r[1].startswith("confidence sequence, every")]
    peeking = [r for r in aa["rows"] if r[1].endswith("(peeking)")]
    srm_wrong = sum(r["verdicts"].get("srm", 0) for r in dec["rows"])
    all_wrong = sum(r["wrong"] for r in dec["rows"])
    longest = srm["longer"][-1]
    lines += [
        "What it shows: looked at 100 times, the confidence sequence's A/A rate is "
        + ", ".join(pct(r[2], r[3]) for r in sequence)
        + " (normal, log-normal, binary) against "
        + ", ".join(pct(r[2], r[3]) for r in peeking)
        + " for the fixed-horizon test read at every look. χ² is a fixed-horizon test: read at every look "
        f"on a correct 50/50 split, its false alarms grow with the looks ({pct(longest['chi'], longest['runs'])} "
        f"by {longest['units']:,} units, where the sequential test raised {pct(longest['seq'], longest['runs'])}), "
        "which is why a watched experiment's sample-ratio alarm is the sequential test's; SRM verdicts are "
        f"{srm_wrong} of the {all_wrong} wrong decisions in the `decide()` table.",
        "",
    ]
    return "\n".join(lines)


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    measured = ("workbench/experiments/statistics.py", "workbench/experiments/decide.py")
    changed = git("status", "--porcelain", *measured)
    return head + (f" (uncommitted changes: {changed})" if changed else "")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--experiments", type=int, default=10_000, help="runs per row in parts 1, 2 and 4")
    parser.add_argument("--cuped-runs", type=int, default=2_000, help="runs per rho in part 3")
    parser.add_argument("--decide-runs", type=int, default=2_000, help="runs per scenario in part 5")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    results: dict[str, Any] = {"seed": args.seed, "date": time.strftime("%Y-%m-%d"), "commit": commit()}
    parts: list[tuple[str, str, Callable[[], Any]]] = [
        ("aa", "A/A", lambda: part_aa(args.seed, args.experiments)),
        ("power", "power", lambda: part_power(args.seed, args.experiments)),
        ("cuped", "CUPED", lambda: part_cuped(args.seed, args.cuped_runs, args.experiments)),
        ("srm", "SRM", lambda: part_srm(args.seed, args.experiments)),
        ("decide", "decide()", lambda: part_decide(args.seed, args.decide_runs)),
    ]
    for key, name, run in parts:
        print(f"{name} ...", file=sys.stderr, flush=True)
        tick = time.perf_counter()
        results[key] = run()
        timings[name] = time.perf_counter() - tick
        print(f"  {timings[name]:.1f} s", file=sys.stderr, flush=True)
    results["timings"] = timings
    results["elapsed"] = time.perf_counter() - started
    checks = [(c[1], c[2]) for c in results["aa"]["checks"]] + [results["srm"]["checks"]]
    results["checked"] = sum(c[0] for c in checks)
    results["mismatches"] = sum(c[1] for c in checks)
    command = ".venv/bin/python benchmarks/experiments.py --write-docs"
    defaults = {"experiments": 10_000, "cuped_runs": 2_000, "decide_runs": 2_000, "seed": 13}
    extra = [
        f"--{k.replace('_', '-')} {getattr(args, k)}" for k, v in defaults.items() if getattr(args, k) != v
    ]
    command = " ".join([command, *extra])
    section = markdown(results, command)
    print(section)
    print(f"elapsed {results['elapsed']:.1f} s", file=sys.stderr)
    if results["mismatches"]:
        sys.exit(
            f"{results['mismatches']} looks differ between the vectorised tests and the module: not written"
        )
    if args.write_docs:
        replace_section(SECTION, section)
        print(f"updated {ROOT / 'docs' / 'benchmarks.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
