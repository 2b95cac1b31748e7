"""Blue-green and shadow decisions with a fake clock, and the shadow agreement check."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.rollouts.analysis import AnalysisResult, Measurements, VariantSample, Verdict, analyse
from workbench.rollouts.decide import Action, decide_blue_green, decide_shadow
from workbench.rollouts.shadow import agreement_result, with_agreement
from workbench.rollouts.telemetry import Agreement
from workbench.specs.analysis import MetricCheck, MetricKind
from workbench.specs.rollout import BlueGreenOptions, RolloutSpec, ShadowOptions, Strategy

BLUE_GREEN = RolloutSpec(
    endpoint="churn",
    candidate="models:/churn/2",
    strategy=Strategy.BLUE_GREEN,
    blue_green=BlueGreenOptions(keep_warm_s=120),
    step_timeout_s=600,
)
SHADOW = RolloutSpec(
    endpoint="churn",
    candidate="models:/churn/2",
    strategy=Strategy.SHADOW,
    shadow=ShadowOptions(duration_s=300, min_pairs=100),
)


def _analysis(n: int, *, candidate_errors: float = 0.0, seed: int = 1) -> AnalysisResult:
    rng = np.random.default_rng(seed)

    def variant(size: int, errors: float) -> VariantSample:
        return VariantSample(
            requests=size,
            errors=int(rng.binomial(size, errors)),
            latencies_ms=rng.lognormal(0.0, 0.4, size),
            predictions=rng.beta(2, 5, size),
        )

    return analyse(Measurements(variant(n, 0.0), variant(n, candidate_errors)), BLUE_GREEN.analysis)


# --- blue-green ------------------------------------------------------------------------------------------


def test_blue_green_waits_out_the_keep_warm_window_then_promotes() -> None:
    good = _analysis(20_000)
    assert good.verdict == Verdict.PASS
    early = decide_blue_green(BLUE_GREEN, 1000.0, good, now=1060.0)
    assert (early.action, early.candidate_weight) == (Action.WAIT, 100)
    assert "60s more" in early.reason
    done = decide_blue_green(BLUE_GREEN, 1000.0, good, now=1120.0)
    assert done.action == Action.PROMOTE


def test_blue_green_swaps_back_on_fail_even_inside_the_window() -> None:
    bad = _analysis(20_000, candidate_errors=0.05)
    decision = decide_blue_green(BLUE_GREEN, 1000.0, bad, now=1001.0)
    assert (decision.action, decision.candidate_weight) == (Action.ROLLBACK, 0)
    assert "error_rate" in decision.reason


def test_blue_green_without_evidence_promotes_at_the_window_end_and_says_so() -> None:
    empty = _analysis(5)
    assert empty.verdict == Verdict.NO_DATA
    decision = decide_blue_green(BLUE_GREEN, 1000.0, empty, now=1200.0)
    assert decision.action == Action.PROMOTE
    assert "no_data" in decision.reason
    assert decision.evidence["verdict"] == "no_data"


def test_blue_green_that_requires_a_pass_waits_then_goes_inconclusive() -> None:
    strict = BLUE_GREEN.model_copy(
        update={"blue_green": BlueGreenOptions(keep_warm_s=120, require_pass=True)}
    )
    empty = _analysis(5)
    assert decide_blue_green(strict, 1000.0, empty, now=1200.0).action == Action.WAIT
    assert decide_blue_green(strict, 1000.0, empty, now=1600.0).action == Action.INCONCLUSIVE
    assert decide_blue_green(strict, 1000.0, _analysis(20_000), now=1200.0).action == Action.PROMOTE


# --- shadow ----------------------------------------------------------------------------------------------


def test_agreement_needs_its_minimum_pairs_then_passes_or_fails() -> None:
    options = ShadowOptions(max_disagreement=0.05, min_pairs=100)
    assert agreement_result(Agreement(0, 0, None, None), options).verdict == Verdict.NO_DATA
    few = agreement_result(Agreement(50, 0, 0.0, 0.0), options)
    assert few.verdict == Verdict.NO_DATA
    assert "needs at least 100 pairs" in few.reason
    agreeing = agreement_result(Agreement(2_000, 10, 0.001, 0.2), options)
    assert agreeing.verdict == Verdict.PASS
    assert agreeing.high is not None
    assert agreeing.high < 0.05
    disagreeing = agreement_result(Agreement(2_000, 600, 0.2, 0.9), options)
    assert disagreeing.verdict == Verdict.FAIL
    assert "30%" in disagreeing.reason
    borderline = agreement_result(Agreement(300, 15, 0.01, 0.3), options)
    assert borderline.verdict == Verdict.INCONCLUSIVE


def test_agreement_is_anytime_valid_under_a_check_at_every_pair() -> None:
    """A shadow that disagrees exactly at the tolerated rate is never FAILed, looking after every pair."""
    options = ShadowOptions(max_disagreement=0.05, min_pairs=1, alpha=0.05)
    rng = np.random.default_rng(7)
    false_alarms = 0
    for _ in range(200):
        flags = rng.random(2_000) < 0.05
        counts = np.cumsum(flags)
        # The CS is monotone in the count for a given n, so checking every 20th pair bounds every pair.
        for n in range(20, 2_001, 20):
            if agreement_result(Agreement(n, int(counts[n - 1]), 0.0, 0.0), options).verdict == Verdict.FAIL:
                false_alarms += 1
                break
    assert false_alarms / 200 <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 200)


def test_shadow_mirrors_for_its_duration_then_completes_on_pass() -> None:
    live = _analysis(20_000)
    agreeing = with_agreement(live, Agreement(5_000, 3, 0.0, 0.1), SHADOW.shadow)
    assert agreeing.verdict == Verdict.PASS
    assert agreeing.results[-1].kind == MetricKind.AGREEMENT
    assert decide_shadow(SHADOW, 1000.0, agreeing, now=1100.0).action == Action.WAIT
    done = decide_shadow(SHADOW, 1000.0, agreeing, now=1300.0)
    assert (done.action, done.candidate_weight) == (Action.COMPLETE, 0)


def test_shadow_stops_early_when_outputs_disagree() -> None:
    result = with_agreement(_analysis(20_000), Agreement(5_000, 2_000, 0.3, 1.0), SHADOW.shadow)
    decision = decide_shadow(SHADOW, 1000.0, result, now=1010.0)
    assert (decision.action, decision.candidate_weight) == (Action.ROLLBACK, 0)
    assert "agreement" in decision.reason


def test_shadow_without_a_verdict_at_the_end_is_inconclusive_or_rolled_back() -> None:
    result = with_agreement(_analysis(20_000), Agreement(10, 0, 0.0, 0.0), SHADOW.shadow)
    assert decide_shadow(SHADOW, 1000.0, result, now=1300.0).action == Action.INCONCLUSIVE
    strict = SHADOW.model_copy(update={"rollback_on_inconclusive": True})
    assert decide_shadow(strict, 1000.0, result, now=1300.0).action == Action.ROLLBACK


def test_agreement_cannot_be_configured_as_a_canary_check() -> None:
    with pytest.raises(ValueError, match="measured by shadow rollouts"):
        MetricCheck(name="agree", kind=MetricKind.AGREEMENT, threshold=0.1)
