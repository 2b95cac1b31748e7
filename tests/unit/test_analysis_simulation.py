"""Canary analysis, simulated: false alarms stay within alpha when looking at every tick, regressions are
caught, good candidates pass.

Each rollout runs TICKS ticks; at every tick both variants receive new requests (candidate 250-750, the
baseline four times as many: a 20% canary on an endpoint serving 250-750 requests/s with a 5 s tick), and
``analyse`` is called on everything seen so far with the default ``AnalysisSpec`` (alpha 0.05 over three
checks). Requests fail with a fixed probability, take lognormal latencies and, for the half of them that
the prediction log keeps, produce a score from a beta distribution (a mixture for a shifted candidate).

Volumes: detecting +2pp errors against a +1pp tolerance takes 8,000-11,000 candidate requests with this
anytime-valid test at alpha 0.05/3 (with the 20-200 requests per tick of a quieter endpoint, about 90
ticks), so these are the volumes simulated.

Scenarios (RUNS rollouts each; the baseline of rollout r is shared by all scenarios to save time, which
leaves each scenario's rates unbiased):

* ``aa``: the candidate is the baseline; ``boundary``: every metric degraded by exactly its threshold (the
  worst case the guarantee covers: any FAIL is a false alarm); ``regression``: every metric degraded by
  twice its threshold beyond the baseline (error rate 0.9% -> 2.9%, 15% of candidate requests slower than
  the baseline p95 + 1 ms, prediction KS distance 0.2). Every check only looks at its own data, so
  degrading all metrics at once measures each one's detection as if it were degraded alone. Prediction
  shift does not gate by default: the overall verdict is the error and latency checks'.

A second, smaller simulation (``LATENCY_SPEC``) looks at the latency check's absolute tolerance and at a
latency objective: a sub-millisecond endpoint with a candidate 0.9 ms slower (must never FAIL), and a
candidate whose p95 sits exactly at the objective (false FAIL and false PASS both bounded by alpha) or 20%
above it (caught).

Run this file as a script to print the full table (used for docs/analysis.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from statistics import NormalDist

import numpy as np
import pytest
from numpy.typing import NDArray

from workbench.rollouts.analysis import Measurements, VariantSample, Verdict, analyse
from workbench.specs.analysis import AnalysisSpec, MetricCheck, MetricKind

SPEC = AnalysisSpec()
TOLERANCE_MS = SPEC.checks[1].effective_tolerance_ms
NAMES = [check.name for check in SPEC.checks]
RUNS = 200
TICKS = 30
PER_TICK = (250, 750)
BASELINE_FACTOR = 4
PREDICTION_LOG_RATE = 0.5
BASE_ERROR_RATE = 0.009
LATENCY_MEDIAN_MS = 40.0
LATENCY_SIGMA = 0.5
SEED = 20240611

_GRID = np.linspace(0.0, 1.0, 100_001)


def _beta_cdf(a: float, b: float) -> NDArray[np.float64]:
    """CDF of Beta(a, b) on _GRID by the trapezoid rule (a, b > 1: the density is bounded)."""
    x = _GRID
    log_norm = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    with np.errstate(divide="ignore"):
        pdf = np.exp((a - 1) * np.log(x) + (b - 1) * np.log1p(-x) - log_norm)
    cdf = np.concatenate([[0.0], np.cumsum((pdf[1:] + pdf[:-1]) / 2 * np.diff(x))])
    return cdf / cdf[-1]


BASE_PRED_CDF = _beta_cdf(2.0, 5.0)
SHIFTED_PRED_CDF = _beta_cdf(5.0, 2.0)
#: KS distance between Beta(2, 5) and Beta(5, 2); a candidate drawing from the second with probability w
#: and from the first otherwise is at KS distance w * SUP_DIFF from the baseline.
SUP_DIFF = float(np.max(np.abs(BASE_PRED_CDF - SHIFTED_PRED_CDF)))


def _latency_shift(share_slower: float) -> float:
    """Log-shift making ``share_slower`` of candidate latencies exceed the baseline's p95 + the tolerance."""
    normal = NormalDist()
    p95 = LATENCY_MEDIAN_MS * math.exp(LATENCY_SIGMA * normal.inv_cdf(0.95))
    return math.log((p95 + TOLERANCE_MS) / LATENCY_MEDIAN_MS) - LATENCY_SIGMA * normal.inv_cdf(
        1 - share_slower
    )


@dataclass(frozen=True)
class Scenario:
    name: str
    error_rate: float
    share_slower_than_p95: float
    prediction_ks: float

    @property
    def degradation(self) -> dict[str, float]:
        return {
            "error_rate": self.error_rate - BASE_ERROR_RATE,
            "latency_p95": self.share_slower_than_p95 - 0.05,
            "prediction_shift": self.prediction_ks,
        }


SCENARIOS = (
    Scenario("aa", BASE_ERROR_RATE, 0.05, 0.0),
    Scenario("boundary", BASE_ERROR_RATE + 0.01, 0.10, 0.10),
    Scenario("regression", BASE_ERROR_RATE + 0.02, 0.15, 0.20),
)
#: Reported by ``_report`` only: tolerated but real degradations need far more data to PASS (see docs).
WITHIN = Scenario("within", BASE_ERROR_RATE + 0.005, 0.075, 0.05)


def _cumulative_sorted(values: NDArray[np.float64], counts: NDArray[np.int64]) -> list[NDArray[np.float64]]:
    """The sorted sample of everything seen after each tick (tick k brings ``counts[k]`` values)."""
    out: list[NDArray[np.float64]] = []
    seen = np.empty(0)
    start = 0
    for count in counts:
        chunk = np.sort(values[start : start + count])
        start += count
        # Two sorted runs: the stable sort (timsort) merges them in linear time.
        seen = np.sort(np.concatenate([seen, chunk]), kind="stable")
        out.append(seen)
    return out


def _variant(
    rng: np.random.Generator, counts: NDArray[np.int64], error_rate: float, log_shift: float, mix: float
) -> list[VariantSample]:
    total = int(counts.sum())
    errors = np.cumsum(rng.binomial(counts, error_rate))
    latencies = _cumulative_sorted(
        rng.lognormal(math.log(LATENCY_MEDIAN_MS) + log_shift, LATENCY_SIGMA, total), counts
    )
    logged = rng.binomial(counts, PREDICTION_LOG_RATE)
    scores = rng.beta(2.0, 5.0, int(logged.sum()))
    shifted = rng.random(scores.size) < mix
    scores[shifted] = rng.beta(5.0, 2.0, int(shifted.sum()))
    predictions = _cumulative_sorted(scores, logged)
    requests = np.cumsum(counts)
    return [
        VariantSample(
            requests=int(requests[k]),
            errors=int(errors[k]),
            latencies_ms=latencies[k],
            predictions=predictions[k],
        )
        for k in range(counts.size)
    ]


@dataclass(frozen=True)
class Outcome:
    """Verdicts of every rollout of one scenario: ``verdicts[run, tick, check]``, the overall one last."""

    verdicts: NDArray[np.str_]
    candidate_requests: NDArray[np.int64]  # [run, tick]

    def column(self, name: str) -> NDArray[np.str_]:
        index = len(NAMES) if name == "overall" else NAMES.index(name)
        return self.verdicts[:, :, index]

    def ever(self, name: str, verdict: Verdict) -> float:
        return float((self.column(name) == verdict.value).any(axis=1).mean())

    def at_end(self, name: str, verdict: Verdict) -> float:
        return float((self.column(name)[:, -1] == verdict.value).mean())

    def first(self, name: str, verdict: Verdict) -> tuple[float, float]:
        """Mean tick (1-based) and candidate requests at the first ``verdict``, over runs that reach it."""
        hit = self.column(name) == verdict.value
        runs = np.flatnonzero(hit.any(axis=1))
        if runs.size == 0:
            return math.nan, math.nan
        ticks = hit[runs].argmax(axis=1)
        return float(ticks.mean() + 1), float(self.candidate_requests[runs, ticks].mean())


@cache
def simulate(scenarios: tuple[Scenario, ...] = SCENARIOS) -> dict[str, Outcome]:
    verdicts = {
        scenario.name: np.empty((RUNS, TICKS, len(NAMES) + 1), dtype="<U12") for scenario in scenarios
    }
    requests = np.empty((RUNS, TICKS), dtype=np.int64)
    for run in range(RUNS):
        rng = np.random.default_rng([SEED, run])
        counts = rng.integers(PER_TICK[0], PER_TICK[1] + 1, TICKS)
        requests[run] = np.cumsum(counts)
        baseline = _variant(rng, BASELINE_FACTOR * counts, BASE_ERROR_RATE, 0.0, 0.0)
        for index, scenario in enumerate(scenarios):
            candidate = _variant(
                np.random.default_rng([SEED, run, index]),
                counts,
                scenario.error_rate,
                _latency_shift(scenario.share_slower_than_p95),
                scenario.prediction_ks / SUP_DIFF,
            )
            for tick in range(TICKS):
                result = analyse(Measurements(baseline=baseline[tick], candidate=candidate[tick]), SPEC)
                row = [r.verdict.value for r in result.results] + [result.verdict.value]
                verdicts[scenario.name][run, tick] = row
    return {name: Outcome(table, requests) for name, table in verdicts.items()}


def _tolerance(alpha: float) -> float:
    """Three binomial standard errors of a rate alpha estimated from RUNS rollouts."""
    return 3 * math.sqrt(alpha * (1 - alpha) / RUNS)


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    return simulate()


def test_simulated_distributions_are_what_the_scenarios_say() -> None:
    """The knobs produce the degradations they claim (checked on large samples, outside the analysis)."""
    rng = np.random.default_rng(SEED)
    baseline = rng.lognormal(math.log(LATENCY_MEDIAN_MS), LATENCY_SIGMA, 400_000)
    p95 = float(np.quantile(baseline, 0.95))
    for share in (0.05, 0.10, 0.15):
        candidate = rng.lognormal(math.log(LATENCY_MEDIAN_MS) + _latency_shift(share), LATENCY_SIGMA, 400_000)
        assert float(np.mean(candidate > p95 + TOLERANCE_MS)) == pytest.approx(share, abs=0.003)
    assert 0.7 < SUP_DIFF < 0.85
    for ks in (0.1, 0.2):
        mix = ks / SUP_DIFF
        cdf = (1 - mix) * BASE_PRED_CDF + mix * SHIFTED_PRED_CDF
        assert float(np.max(np.abs(cdf - BASE_PRED_CDF))) == pytest.approx(ks, abs=1e-9)


@pytest.mark.parametrize("scenario", ["aa", "boundary"])
def test_false_alarms_stay_within_alpha_despite_looking_every_tick(
    outcomes: dict[str, Outcome], scenario: str
) -> None:
    """No degradation beyond the threshold: a FAIL at any of the 30 ticks is a false alarm."""
    outcome = outcomes[scenario]
    for check in SPEC.checks:
        alpha = SPEC.check_alpha(check)
        assert outcome.ever(check.name, Verdict.FAIL) <= alpha + _tolerance(alpha), check.name
    assert outcome.ever("overall", Verdict.FAIL) <= SPEC.alpha + _tolerance(SPEC.alpha)


def test_regressions_of_twice_the_threshold_are_caught(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["regression"]
    for name in NAMES:
        assert outcome.ever(name, Verdict.FAIL) >= 0.9, name
        # Once the evidence is there the verdict does not flip back to PASS.
        assert outcome.ever(name, Verdict.PASS) <= 0.01, name
    assert outcome.ever("overall", Verdict.FAIL) >= 0.99
    # Latency and prediction shifts are caught early: within the first third of the rollout.
    for name in ("latency_p95", "prediction_shift"):
        tick, _ = outcome.first(name, Verdict.FAIL)
        assert tick <= TICKS / 3, name


def test_good_candidates_pass(outcomes: dict[str, Outcome]) -> None:
    identical = outcomes["aa"]
    assert identical.at_end("overall", Verdict.PASS) >= 0.9
    for name in NAMES:
        assert identical.at_end(name, Verdict.PASS) >= 0.95, name


def test_degradation_at_the_threshold_is_never_declared_a_pass(outcomes: dict[str, Outcome]) -> None:
    """The other error: a PASS when the true degradation equals the threshold is also bounded by alpha."""
    outcome = outcomes["boundary"]
    for check in SPEC.checks:
        alpha = SPEC.check_alpha(check)
        assert outcome.ever(check.name, Verdict.PASS) <= alpha + _tolerance(alpha), check.name


def test_no_data_only_while_below_min_samples(outcomes: dict[str, Outcome]) -> None:
    """The first tick may log fewer than 200 candidate predictions (NO_DATA, never PASS); later ticks do not."""
    for outcome in outcomes.values():
        first = outcome.verdicts[:, 0, :]
        assert set(np.unique(outcome.column("prediction_shift")[:, 0])) <= {"no_data", "inconclusive", "fail"}
        assert not (first[:, -1] == Verdict.PASS.value).any()
        assert not (outcome.verdicts[:, 1:, :] == Verdict.NO_DATA.value).any()


# --- the latency check's absolute tolerance and objective --------------------------------------------------

SUB_MS_MEDIAN = 0.5  # ms: p95 about 0.75 ms, the demo's order of magnitude
SUB_MS_SIGMA = 0.25
OBJECTIVE_MS = 100.0
LATENCY_SPEC = AnalysisSpec(
    checks=(
        MetricCheck(name="latency_p95", kind=MetricKind.LATENCY, threshold=0.05),
        MetricCheck(
            name="latency_slo",
            kind=MetricKind.LATENCY,
            threshold=0.0,
            quantile=0.95,
            objective_ms=OBJECTIVE_MS,
        ),
    )
)


@dataclass(frozen=True)
class LatencyScenario:
    name: str
    median_ms: float  # of both variants
    sigma: float
    added_ms: float  # to every candidate latency
    scale: float = 1.0  # of every candidate latency, before adding


#: The objective's median: its p95 is exactly OBJECTIVE_MS.
AT_OBJECTIVE = OBJECTIVE_MS / math.exp(LATENCY_SIGMA * NormalDist().inv_cdf(0.95))
LATENCY_SCENARIOS = (
    LatencyScenario("sub_ms_0.9ms_slower", SUB_MS_MEDIAN, SUB_MS_SIGMA, 0.9),
    LatencyScenario("p95_at_objective", AT_OBJECTIVE, LATENCY_SIGMA, 0.0),
    LatencyScenario("p95_20pct_over_objective", AT_OBJECTIVE, LATENCY_SIGMA, 0.0, 1.2),
)
LATENCY_NAMES = [check.name for check in LATENCY_SPEC.checks]


@cache
def simulate_latency() -> dict[str, NDArray[np.str_]]:
    """``verdicts[scenario][run, tick, check]`` of LATENCY_SPEC, as ``simulate`` does for the default spec."""
    out = {s.name: np.empty((RUNS, TICKS, len(LATENCY_NAMES)), dtype="<U12") for s in LATENCY_SCENARIOS}
    for run in range(RUNS):
        rng = np.random.default_rng([SEED, 7, run])
        counts = rng.integers(PER_TICK[0], PER_TICK[1] + 1, TICKS)
        for scenario in LATENCY_SCENARIOS:
            mu = math.log(scenario.median_ms)
            base = rng.lognormal(mu, scenario.sigma, int(BASELINE_FACTOR * counts.sum()))
            cand = rng.lognormal(mu, scenario.sigma, int(counts.sum())) * scenario.scale + scenario.added_ms
            baseline = _cumulative_sorted(base, BASELINE_FACTOR * counts)
            candidate = _cumulative_sorted(cand, counts)
            for tick in range(TICKS):
                result = analyse(
                    Measurements(
                        baseline=VariantSample(latencies_ms=baseline[tick]),
                        candidate=VariantSample(latencies_ms=candidate[tick]),
                    ),
                    LATENCY_SPEC,
                )
                out[scenario.name][run, tick] = [r.verdict.value for r in result.results]
    return out


def _ever(verdicts: NDArray[np.str_], check: str, verdict: Verdict) -> float:
    column = verdicts[:, :, LATENCY_NAMES.index(check)]
    return float((column == verdict.value).any(axis=1).mean())


def test_a_sub_millisecond_slowdown_never_fails_and_an_objective_is_judged_within_alpha() -> None:
    outcome = simulate_latency()
    alpha = LATENCY_SPEC.check_alpha(LATENCY_SPEC.checks[1])
    # 0.9 ms slower on a 0.75 ms p95: the tolerance absorbs it (without it, every candidate request is
    # slower than the baseline p95).
    assert _ever(outcome["sub_ms_0.9ms_slower"], "latency_p95", Verdict.FAIL) == 0.0
    # A p95 exactly at the objective: any FAIL and any PASS is an error the CS bounds by alpha.
    at = outcome["p95_at_objective"]
    assert _ever(at, "latency_slo", Verdict.FAIL) <= alpha + _tolerance(alpha)
    assert _ever(at, "latency_slo", Verdict.PASS) <= alpha + _tolerance(alpha)
    assert _ever(outcome["p95_20pct_over_objective"], "latency_slo", Verdict.FAIL) >= 0.9


def _report() -> str:  # pragma: no cover - run by hand for docs/analysis.md
    lines = [f"{RUNS} rollouts x {TICKS} ticks per scenario, default AnalysisSpec (alpha {SPEC.alpha})"]
    scenarios = (*SCENARIOS, WITHIN)
    for scenario in scenarios:
        outcome = simulate(scenarios)[scenario.name]
        lines.append(f"\n{scenario.name}: true degradation {scenario.degradation}")
        for name in [*NAMES, "overall"]:
            fail_tick, fail_n = outcome.first(name, Verdict.FAIL)
            pass_tick, pass_n = outcome.first(name, Verdict.PASS)
            lines.append(
                f"  {name:17s} ever FAIL {outcome.ever(name, Verdict.FAIL):6.1%}  ever PASS "
                f"{outcome.ever(name, Verdict.PASS):6.1%}  PASS at end {outcome.at_end(name, Verdict.PASS):6.1%}"
                f"  first FAIL tick {fail_tick:5.1f} (n_c {fail_n:7.0f})  first PASS tick {pass_tick:5.1f}"
                f" (n_c {pass_n:7.0f})"
            )
    latency = simulate_latency()
    lines.append(f"\nlatency tolerance and objective, {LATENCY_SPEC}")
    for latency_scenario in LATENCY_SCENARIOS:
        for name in LATENCY_NAMES:
            verdicts = latency[latency_scenario.name]
            column = verdicts[:, :, LATENCY_NAMES.index(name)]
            hit = (column == "fail").any(axis=1)
            first = float((column == "fail")[hit].argmax(axis=1).mean() + 1) if hit.any() else math.nan
            lines.append(
                f"  {latency_scenario.name:26s} {name:12s} ever FAIL {_ever(verdicts, name, Verdict.FAIL):6.1%}  "
                f"ever PASS {_ever(verdicts, name, Verdict.PASS):6.1%}  first FAIL tick {first:5.1f}"
            )
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    import time

    started = time.perf_counter()
    print(_report())
    print(f"\n{time.perf_counter() - started:.1f} s")
