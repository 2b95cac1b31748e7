"""An experiment's decision at one look, from seeded outcomes: SRM first, then guardrails, then the
primary metric; each verdict with its evidence (issue 13)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from workbench.experiments.decide import decide
from workbench.experiments.statistics import Moments
from workbench.specs.experiment import ExperimentSpec


def _spec(**changes: Any) -> ExperimentSpec:
    base: dict[str, Any] = {
        "name": "checkout",
        "endpoint": "churn",
        "variants": [
            {"name": "control", "model": "churn", "version": 1, "weight": 50},
            {"name": "candidate", "model": "churn", "version": 2, "weight": 50},
        ],
        "primary": {"name": "converted", "kind": "binary"},
        "guardrails": [{"name": "latency-ms", "kind": "continuous", "better": "lower", "margin": 5.0}],
    }
    base.update(changes)
    return ExperimentSpec.model_validate(base)


def _outcomes(
    rng: np.random.Generator, n: int, rates: dict[str, float], latency: dict[str, float]
) -> dict[str, dict[str, Moments]]:
    return {
        "converted": {name: Moments.of(rng.random(n) < rate) for name, rate in rates.items()},
        "latency-ms": {name: Moments.of(rng.normal(mean, 10.0, n)) for name, mean in latency.items()},
    }


def test_a_clearly_better_candidate_wins_with_its_evidence() -> None:
    rng = np.random.default_rng(1)
    outcomes = _outcomes(rng, 5000, {"control": 0.10, "candidate": 0.14}, {"control": 50, "candidate": 50})
    decision = decide(_spec(), {"control": 5000, "candidate": 5000}, outcomes)
    assert decision.verdict == "winner"
    assert decision.winner == "candidate"
    (comparison,) = decision.primary
    assert comparison.direction == "better"
    assert comparison.difference.lower > 0
    assert "candidate beats control on converted" in decision.reason
    assert decision.guardrails[0].direction is None  # latency unchanged


def test_a_guardrail_breach_stops_the_experiment_even_when_the_primary_metric_wins() -> None:
    rng = np.random.default_rng(2)
    outcomes = _outcomes(rng, 5000, {"control": 0.10, "candidate": 0.14}, {"control": 50, "candidate": 70})
    decision = decide(_spec(), {"control": 5000, "candidate": 5000}, outcomes)
    assert decision.verdict == "guardrail_breach"
    assert decision.winner is None
    assert "candidate harms guardrail latency-ms" in decision.reason


def test_harm_within_the_guardrails_margin_does_not_stop_it() -> None:
    rng = np.random.default_rng(3)
    outcomes = _outcomes(rng, 5000, {"control": 0.10, "candidate": 0.14}, {"control": 50, "candidate": 51})
    assert decide(_spec(), {"control": 5000, "candidate": 5000}, outcomes).verdict == "winner"


def test_a_sample_ratio_mismatch_comes_before_any_metric() -> None:
    rng = np.random.default_rng(4)
    outcomes = _outcomes(rng, 5000, {"control": 0.10, "candidate": 0.14}, {"control": 50, "candidate": 50})
    decision = decide(_spec(), {"control": 10_400, "candidate": 9_600}, outcomes)
    assert decision.verdict == "srm"
    assert decision.sample_ratio.alarm
    assert "not assigned as planned" in decision.reason


def test_too_few_units_continue_and_say_how_many_are_needed() -> None:
    rng = np.random.default_rng(5)
    outcomes = _outcomes(rng, 60, {"control": 0.1, "candidate": 0.9}, {"control": 50, "candidate": 50})
    decision = decide(_spec(min_units=100), {"control": 60, "candidate": 60}, outcomes)
    assert decision.verdict == "continue"
    assert decision.reason.endswith("no decision is made before 100 per variant")


def test_an_a_a_experiment_continues_and_a_worse_candidate_stops_for_futility() -> None:
    rng = np.random.default_rng(6)
    same = _outcomes(rng, 5000, {"control": 0.10, "candidate": 0.10}, {"control": 50, "candidate": 50})
    assert decide(_spec(), {"control": 5000, "candidate": 5000}, same).verdict == "continue"
    worse = _outcomes(rng, 5000, {"control": 0.14, "candidate": 0.10}, {"control": 50, "candidate": 50})
    decision = decide(_spec(), {"control": 5000, "candidate": 5000}, worse)
    assert decision.verdict == "futility"
    assert decision.primary[0].direction == "worse"


def test_a_planned_experiment_is_judged_only_at_its_planned_sample() -> None:
    rng = np.random.default_rng(7)
    spec = _spec(method="fixed", planned_units=4000)
    early = _outcomes(rng, 3000, {"control": 0.10, "candidate": 0.14}, {"control": 50, "candidate": 50})
    assert decide(spec, {"control": 3000, "candidate": 3000}, early).verdict == "continue"
    null = _outcomes(rng, 4000, {"control": 0.10, "candidate": 0.10}, {"control": 50, "candidate": 50})
    assert decide(spec, {"control": 4000, "candidate": 4000}, null).verdict == "futility"


def test_of_several_winners_the_best_is_named_after_the_correction() -> None:
    rng = np.random.default_rng(8)
    spec = _spec(
        variants=[
            {"name": "control", "model": "churn", "version": 1, "weight": 34},
            {"name": "b", "model": "churn", "version": 2, "weight": 33},
            {"name": "c", "model": "churn", "version": 3, "weight": 33},
        ],
        guardrails=[],
    )
    outcomes = {
        "converted": {
            n: Moments.of(rng.random(6000) < r) for n, r in (("control", 0.10), ("b", 0.14), ("c", 0.17))
        }
    }
    decision = decide(spec, {"control": 6000, "b": 6000, "c": 6000}, outcomes)
    assert decision.verdict == "winner"
    assert decision.winner == "c"
    assert all(c.adjusted_p >= c.difference.p_value for c in decision.primary)  # Holm never lowers a p


def test_with_a_covariate_the_adjustment_is_applied_and_reported() -> None:
    rng = np.random.default_rng(9)
    spec = _spec(primary={"name": "revenue", "kind": "continuous"}, guardrails=[], covariate=True)
    outcomes: dict[str, dict[str, Moments]] = {"revenue": {}}
    for name, lift in (("control", 0.0), ("candidate", 0.3)):
        before = rng.normal(20, 5, 3000)
        outcomes["revenue"][name] = Moments.of(before + lift + rng.normal(0, 1, 3000), covariate=before)
    decision = decide(spec, {"control": 3000, "candidate": 3000}, outcomes)
    assert decision.cuped_theta["revenue"] == pytest.approx(1.0, abs=0.05)
    assert decision.verdict == "winner"  # 0.3 on a spread of 5: found only thanks to the covariate


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {
                "variants": [
                    {"name": "a", "model": "m", "version": 1, "weight": 50},
                    {"name": "b", "model": "m", "version": 2, "weight": 40},
                ]
            },
            "add up to 100",
        ),
        (
            {
                "variants": [
                    {"name": "a", "model": "m", "version": 1, "weight": 50},
                    {"name": "a", "model": "m", "version": 2, "weight": 50},
                ]
            },
            "distinct",
        ),
        (
            {
                "variants": [
                    {"name": "a", "model": "m", "version": 1, "weight": 50},
                    {"name": "b", "model": "m", "version": 1, "weight": 50},
                ]
            },
            "different model version",
        ),
        ({"method": "fixed"}, "planned_units"),
        ({"guardrails": [{"name": "converted", "kind": "binary"}]}, "metric names must be distinct"),
    ],
)
def test_a_bad_experiment_is_refused_with_the_reason(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _spec(**change)
