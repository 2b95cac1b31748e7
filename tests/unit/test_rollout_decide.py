"""Canary decisions with a fake clock and real analysis of generated telemetry."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.rollouts.analysis import AnalysisResult, Measurements, VariantSample, Verdict, analyse
from workbench.rollouts.decide import Action, decide_blue_green, decide_canary
from workbench.specs.analysis import AnalysisSpec
from workbench.specs.rollout import CanaryStep, RolloutSpec, Strategy

SPEC = RolloutSpec(
    endpoint="churn",
    candidate="models:/churn/2",
    steps=(CanaryStep(weight=5, min_duration_s=60), CanaryStep(weight=25, min_duration_s=60)),
    step_timeout_s=600,
)


def _variant(
    rng: np.random.Generator, n: int, error_rate: float, latency_scale: float = 1.0
) -> VariantSample:
    return VariantSample(
        requests=n,
        errors=int(rng.binomial(n, error_rate)),
        latencies_ms=rng.lognormal(0.0, 0.4, n) * latency_scale,
        predictions=rng.beta(2, 5, n),
    )


def _analysis(
    n: int, *, candidate_errors: float = 0.005, latency_scale: float = 1.0, seed: int = 1
) -> AnalysisResult:
    rng = np.random.default_rng(seed)
    measurements = Measurements(
        baseline=_variant(rng, 4 * n, 0.005), candidate=_variant(rng, n, candidate_errors, latency_scale)
    )
    return analyse(measurements, SPEC.analysis)


def test_no_data_waits_and_names_the_verdict() -> None:
    decision = decide_canary(SPEC, 0, 1000.0, _analysis(20), now=1010.0)
    assert decision.action == Action.WAIT
    assert decision.candidate_weight == 5
    assert "no_data" in decision.reason


def test_a_passing_step_waits_for_its_minimum_duration_then_advances() -> None:
    good = _analysis(20_000)
    assert good.verdict.value == "pass"
    early = decide_canary(SPEC, 0, 1000.0, good, now=1030.0)
    assert (early.action, early.candidate_weight) == (Action.WAIT, 5)
    later = decide_canary(SPEC, 0, 1000.0, good, now=1061.0)
    assert (later.action, later.step_index, later.candidate_weight) == (Action.ADVANCE, 1, 25)


def test_the_last_passing_step_promotes() -> None:
    decision = decide_canary(SPEC, 1, 1000.0, _analysis(20_000), now=1100.0)
    assert (decision.action, decision.candidate_weight) == (Action.PROMOTE, 100)


@pytest.mark.parametrize(("errors", "latency"), [(0.05, 1.0), (0.005, 3.0)])
def test_a_regression_rolls_back_at_once_naming_the_metric(errors: float, latency: float) -> None:
    bad = _analysis(20_000, candidate_errors=errors, latency_scale=latency)
    decision = decide_canary(SPEC, 0, 1000.0, bad, now=1001.0)  # even before the minimum duration
    assert (decision.action, decision.candidate_weight) == (Action.ROLLBACK, 0)
    assert ("error_rate" if errors > 0.01 else "latency") in decision.reason
    assert decision.evidence["verdict"] == "fail"


def test_a_step_without_a_decision_times_out_as_inconclusive_or_rolls_back() -> None:
    undecided = _analysis(20)
    decision = decide_canary(SPEC, 1, 1000.0, undecided, now=1600.0)
    assert (decision.action, decision.candidate_weight) == (Action.INCONCLUSIVE, 25)
    strict = SPEC.model_copy(update={"rollback_on_inconclusive": True})
    assert decide_canary(strict, 1, 1000.0, undecided, now=1600.0).action == Action.ROLLBACK


def test_rollout_spec_validation() -> None:
    with pytest.raises(ValueError, match="must increase"):
        RolloutSpec(
            endpoint="e", candidate="models:/m/2", steps=(CanaryStep(weight=25), CanaryStep(weight=5))
        )
    with pytest.raises(ValueError, match="shorter than"):
        RolloutSpec(
            endpoint="e",
            candidate="models:/m/2",
            steps=(CanaryStep(weight=5, min_duration_s=100),),
            step_timeout_s=50,
        )
    with pytest.raises(ValueError, match="invalid endpoint"):
        RolloutSpec(endpoint="Bad!", candidate="models:/m/2")
    assert [s.weight for s in RolloutSpec(endpoint="e", candidate="models:/m/2").steps] == [5, 25, 50]


def _shifted_analysis(n: int, *, gating: bool | None = None) -> AnalysisResult:
    """As fast and error-free as the baseline, but answering differently (a retrained, better model)."""
    rng = np.random.default_rng(3)
    candidate = _variant(rng, n, 0.005)
    candidate = VariantSample(
        requests=candidate.requests,
        errors=candidate.errors,
        latencies_ms=candidate.latencies_ms,
        predictions=rng.beta(5, 2, n),
    )
    checks = [c.model_dump(exclude_none=True) for c in SPEC.analysis.checks]
    if gating is not None:
        checks[2]["gating"] = gating
    spec = AnalysisSpec.model_validate({"checks": checks})
    return analyse(Measurements(baseline=_variant(rng, 4 * n, 0.005), candidate=candidate), spec)


def test_a_prediction_shift_is_reported_but_promotes_unless_it_gates() -> None:
    shifted = _shifted_analysis(20_000)
    assert shifted.result("prediction_shift").verdict == Verdict.FAIL
    decision = decide_canary(SPEC, 1, 1000.0, shifted, now=1100.0)
    assert decision.action == Action.PROMOTE
    assert (
        decision.reason == "last step (25%) passed: promoting (reported, not gating: prediction_shift fail)"
    )
    metrics = {m["name"]: m for m in decision.evidence["metrics"]}
    assert (metrics["prediction_shift"]["verdict"], metrics["prediction_shift"]["gating"]) == ("fail", False)
    assert metrics["error_rate"]["gating"] is True
    advance = decide_canary(SPEC, 0, 1000.0, shifted, now=1100.0)
    assert advance.action == Action.ADVANCE
    assert advance.reason.endswith("(reported, not gating: prediction_shift fail)")
    asked = decide_canary(SPEC, 1, 1000.0, _shifted_analysis(20_000, gating=True), now=1100.0)
    assert asked.action == Action.ROLLBACK
    assert asked.reason.startswith(
        "analysis failed at 25%: prediction_shift: prediction distributions differ"
    )


def test_blue_green_between_different_models_promotes_on_a_shift_alone() -> None:
    """A switch to a model that answers differently is not a regression: only gating checks swap back."""
    spec = SPEC.model_copy(update={"strategy": Strategy.BLUE_GREEN})
    shifted = _shifted_analysis(20_000)
    waiting = decide_blue_green(spec, 1000.0, shifted, now=1010.0)
    assert waiting.action == Action.WAIT
    done = decide_blue_green(spec, 1000.0, shifted, now=1000.0 + spec.blue_green.keep_warm_s)
    assert done.action == Action.PROMOTE
    assert "not gating: prediction_shift fail" in done.reason
    gated = decide_blue_green(spec, 1000.0, _shifted_analysis(20_000, gating=True), now=1010.0)
    assert gated.action == Action.ROLLBACK
    assert "prediction_shift" in gated.reason
