"""Canary analysis verdicts on constructed measurements: every path of every metric kind, the overall
combination, the audit reasons, input validation and spec validation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pydantic
import pytest
from numpy.typing import NDArray

from workbench.errors import ValidationError
from workbench.rollouts.analysis import (
    AnalysisResult,
    Measurements,
    MetricResult,
    VariantSample,
    Verdict,
    analyse,
    combine,
)
from workbench.specs.analysis import DEFAULT_CHECKS, AnalysisSpec, MetricCheck, MetricKind


def _spec(*checks: dict[str, Any], **fields: Any) -> AnalysisSpec:
    return AnalysisSpec.model_validate({"checks": list(checks), **fields})


ERRORS = {"name": "errors", "kind": "error_rate", "threshold": 0.01}
LATENCY = {"name": "latency", "kind": "latency", "threshold": 0.05}
# Asked to gate: on its own, a check that only reports could not make a spec.
SHIFT = {"name": "shift", "kind": "prediction_shift", "threshold": 0.1, "gating": True}
ACCURACY = {"name": "accuracy", "kind": "custom", "threshold": 0.02}


def _single(spec: AnalysisSpec, baseline: VariantSample, candidate: VariantSample) -> MetricResult:
    result = analyse(Measurements(baseline=baseline, candidate=candidate), spec)
    assert len(result.results) == 1
    return result.results[0]


def _spread(n: int, start: float = 0.0, stop: float = 1.0) -> NDArray[np.float64]:
    """n evenly spread values in (start, stop): a deterministic stand-in for a sample of a uniform."""
    return start + (stop - start) * (np.arange(n) + 0.5) / n


# --- error rate --------------------------------------------------------------------------------------------


def test_error_rate_fail_names_the_numbers() -> None:
    result = _single(
        _spec(ERRORS),
        VariantSample(requests=40_000, errors=360),
        VariantSample(requests=10_000, errors=410),
    )
    assert result.verdict is Verdict.FAIL
    assert result.kind is MetricKind.ERROR_RATE
    assert result.estimate == pytest.approx(0.041 - 0.009)
    assert result.low is not None
    assert result.high is not None
    assert 0.01 < result.low < result.estimate < result.high
    assert result.samples == (40_000, 10_000)
    assert result.threshold == 0.01
    assert result.alpha == 0.05
    assert "4.1% vs baseline 0.9%" in result.reason
    assert "+3.20pp" in result.reason
    assert "95% CS [+" in result.reason
    assert result.reason.endswith("exceeds the tolerated +1pp")


def test_error_rate_pass_when_no_worse() -> None:
    result = _single(
        _spec(ERRORS), VariantSample(requests=40_000, errors=360), VariantSample(requests=10_000, errors=90)
    )
    assert result.verdict is Verdict.PASS
    assert result.high is not None
    assert result.high < 0.01
    assert "is within the tolerated +1pp" in result.reason


def test_error_rate_inconclusive_with_a_moderate_sample() -> None:
    result = _single(
        _spec(ERRORS), VariantSample(requests=2000, errors=18), VariantSample(requests=500, errors=10)
    )
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.low is not None
    assert result.high is not None
    assert result.low < 0.01 < result.high
    assert "cannot yet be told apart from the tolerated +1pp" in result.reason


def test_error_rate_no_data_below_min_samples_even_when_damning() -> None:
    result = _single(
        _spec(ERRORS), VariantSample(requests=5000, errors=0), VariantSample(requests=199, errors=199)
    )
    assert result.verdict is Verdict.NO_DATA
    assert result.estimate == pytest.approx(1.0)  # computed and reported, not acted upon
    assert "needs at least 200 requests per variant, has 5000 (baseline) and 199 (candidate)" in result.reason
    empty = _single(_spec(ERRORS), VariantSample(), VariantSample(requests=1000))
    assert empty.verdict is Verdict.NO_DATA
    assert (empty.estimate, empty.low, empty.high) == (None, None, None)


# --- latency -----------------------------------------------------------------------------------------------


def _latencies(n: int, slow_share: float, cutoff: float = 100.0) -> NDArray[np.float64]:
    """n latencies of which ``slow_share`` exceed ``cutoff``, the rest spread below it."""
    slow = round(n * slow_share)
    return np.concatenate([_spread(n - slow, 10.0, cutoff), _spread(slow, cutoff + 1, 500.0)])


def test_latency_fail_when_too_many_candidate_requests_are_slower_than_the_baseline_p95() -> None:
    baseline = VariantSample(latencies_ms=_latencies(40_000, 0.05))
    candidate = VariantSample(latencies_ms=_latencies(10_000, 0.20))
    result = _single(_spec(LATENCY), baseline, candidate)
    assert result.verdict is Verdict.FAIL
    assert result.estimate == pytest.approx(0.15, abs=0.005)
    assert result.low is not None
    assert result.low > 0.05
    assert "20% of candidate requests slower than the baseline p95 + 1 ms (" in result.reason
    assert "5% expected (+15.00pp" in result.reason
    assert result.gating
    assert "exceeds the tolerated +5pp" in result.reason


def test_latency_pass_when_the_distributions_match() -> None:
    baseline = VariantSample(latencies_ms=_latencies(40_000, 0.05))
    candidate = VariantSample(latencies_ms=_latencies(10_000, 0.05))
    result = _single(_spec(LATENCY), baseline, candidate)
    assert result.verdict is Verdict.PASS
    assert result.estimate == pytest.approx(0.0, abs=0.002)
    assert result.high is not None
    assert result.high < 0.05


def test_latency_inconclusive_and_no_data() -> None:
    baseline = VariantSample(latencies_ms=_latencies(1000, 0.05))
    result = _single(_spec(LATENCY), baseline, VariantSample(latencies_ms=_latencies(300, 0.09)))
    assert result.verdict is Verdict.INCONCLUSIVE
    short = _single(_spec(LATENCY), baseline, VariantSample(latencies_ms=_latencies(150, 0.5)))
    assert short.verdict is Verdict.NO_DATA
    assert "needs at least 200 latency samples" in short.reason


def test_latency_accounts_for_the_baseline_quantile_being_estimated() -> None:
    """With few baseline samples the baseline p95 is uncertain, and the interval says so."""
    candidate = VariantSample(latencies_ms=_latencies(100_000, 0.05))
    few = _single(_spec(LATENCY), VariantSample(latencies_ms=_latencies(300, 0.05)), candidate)
    many = _single(_spec(LATENCY), VariantSample(latencies_ms=_latencies(100_000, 0.05)), candidate)
    assert few.low is not None
    assert few.high is not None
    assert many.low is not None
    assert many.high is not None
    assert few.high - few.low > 2 * (many.high - many.low)
    assert few.low <= 0.0 <= few.high


def test_latency_quantile_and_threshold_are_configurable() -> None:
    check = {**LATENCY, "quantile": 0.99, "threshold": 0.005}
    baseline = VariantSample(latencies_ms=_latencies(200_000, 0.01))
    candidate = VariantSample(latencies_ms=_latencies(50_000, 0.03))
    result = _single(_spec(check), baseline, candidate)
    assert result.verdict is Verdict.FAIL
    assert "baseline p99" in result.reason
    assert "1% expected" in result.reason


def _lognormal(n: int, median_ms: float, sigma: float, seed: int) -> NDArray[np.float64]:
    return np.random.default_rng(seed).lognormal(math.log(median_ms), sigma, n)


#: (case, latency check, baseline median ms, candidate: (scale, added ms), expected verdict). Baselines have
#: 40,000 requests, candidates 10,000, both lognormal (sigma 0.3; 0.25 below a millisecond).
TOLERANCE_CASES = [
    # The demo: a sub-millisecond p95 (about 0.75 ms) and a candidate a tenth of a ms slower.
    ("0.1 ms slower, sub-ms p95", {}, 0.5, (1.0, 0.1), Verdict.PASS),
    ("0.1 ms slower, no tolerance", {"tolerance_ms": 0.0}, 0.5, (1.0, 0.1), Verdict.FAIL),
    ("0.9 ms slower, sub-ms p95", {}, 0.5, (1.0, 0.9), Verdict.PASS),
    ("twice as slow, sub-ms p95", {}, 0.5, (2.0, 0.0), Verdict.PASS),  # +0.5 ms at the median
    ("3 ms slower, sub-ms p95", {}, 0.5, (1.0, 3.0), Verdict.FAIL),
    ("2x slower on 50 ms", {}, 50.0, (2.0, 0.0), Verdict.FAIL),
    ("2x slower on 50 ms, 100 ms tolerated", {"tolerance_ms": 100.0}, 50.0, (2.0, 0.0), Verdict.PASS),
    ("equal on 50 ms", {}, 50.0, (1.0, 0.0), Verdict.PASS),
    ("equal on 50 ms, no tolerance", {"tolerance_ms": 0.0}, 50.0, (1.0, 0.0), Verdict.PASS),
    ("equal, sub-ms p95", {}, 0.5, (1.0, 0.0), Verdict.PASS),
    # Against an objective at p95: the baseline does not matter, the candidate's p95 does.
    ("2x slower on 50 ms, p95 164 ms > SLO 100", {"objective_ms": 100.0}, 50.0, (2.0, 0.0), Verdict.FAIL),
    ("2x slower on 30 ms, p95 98 ms < SLO 200", {"objective_ms": 200.0}, 30.0, (2.0, 0.0), Verdict.PASS),
    ("equal on 50 ms, p95 82 ms < SLO 100", {"objective_ms": 100.0}, 50.0, (1.0, 0.0), Verdict.PASS),
    ("equal on 80 ms, p95 130 ms > SLO 100", {"objective_ms": 100.0}, 80.0, (1.0, 0.0), Verdict.FAIL),
    (
        "SLO 110 with 5pp tolerated: p90 103 ms",
        {"objective_ms": 110.0, "threshold": 0.05},
        70.0,
        (1.0, 0.0),
        Verdict.PASS,
    ),
]


@pytest.mark.parametrize(
    ("case", "fields", "median_ms", "candidate", "expected"),
    TOLERANCE_CASES,
    ids=[case[0] for case in TOLERANCE_CASES],
)
def test_latency_tolerance_and_objective(
    case: str, fields: dict[str, Any], median_ms: float, candidate: tuple[float, float], expected: Verdict
) -> None:
    sigma = 0.25 if median_ms < 1 else 0.3
    check = {**LATENCY, "threshold": 0.0 if "objective_ms" in fields else 0.05, **fields}
    baseline = _lognormal(40_000, median_ms, sigma, seed=1)
    scale, added = candidate
    slower = _lognormal(10_000, median_ms, sigma, seed=2) * scale + added
    result = _single(_spec(check), VariantSample(latencies_ms=baseline), VariantSample(latencies_ms=slower))
    assert result.verdict is expected, f"{case}: {result.reason}"
    assert result.gating


def test_latency_reason_names_both_quantiles_and_the_tolerance() -> None:
    baseline = VariantSample(latencies_ms=_lognormal(40_000, 0.5, 0.25, seed=1))
    candidate = VariantSample(latencies_ms=_lognormal(10_000, 0.5, 0.25, seed=2) + 0.1)
    result = _single(_spec(LATENCY), baseline, candidate)
    assert result.reason.startswith("latency: candidate p95 0.85"), result.reason
    assert "vs baseline 0.75" in result.reason
    assert "slower than the baseline p95 + 1 ms (1.75" in result.reason
    assert result.estimate is not None
    assert result.estimate < -0.04  # hardly any request is slower than p95 + 1 ms
    exact = _single(_spec({**LATENCY, "tolerance_ms": 0}), baseline, candidate)
    assert "slower than the baseline p95 (0.75" in exact.reason


def test_latency_objective_reason_and_no_data() -> None:
    check = {**LATENCY, "objective_ms": 100.0, "threshold": 0.0}
    baseline = VariantSample(latencies_ms=_lognormal(4000, 50.0, 0.3, seed=1))
    breach = _single(_spec(check), baseline, VariantSample(latencies_ms=_lognormal(1000, 100.0, 0.3, seed=2)))
    assert breach.verdict is Verdict.FAIL
    assert "against the objective 100 ms" in breach.reason
    assert "(baseline 8" in breach.reason
    assert breach.reason.endswith("breaches the objective")
    assert breach.estimate == pytest.approx(0.45, abs=0.03)  # half the requests are slower, 5% allowed
    # Only the candidate's samples count: no baseline at all is no obstacle to a verdict.
    alone = _single(_spec(check), VariantSample(), VariantSample(latencies_ms=_lognormal(1000, 10.0, 0.3, 2)))
    assert alone.verdict is Verdict.PASS
    assert alone.reason.endswith("meets the objective")
    few = _single(_spec(check), baseline, VariantSample(latencies_ms=_lognormal(50, 500.0, 0.3, seed=2)))
    assert few.verdict is Verdict.NO_DATA
    assert few.reason == "latency: needs at least 200 latency samples of the candidate, has 50"
    assert few.low is not None
    assert few.low > 0  # reported, not acted upon
    none = _single(_spec(check), baseline, VariantSample())
    assert (none.verdict, none.estimate) == (Verdict.NO_DATA, None)


# --- prediction shift --------------------------------------------------------------------------------------


def test_prediction_shift_fail_pass_inconclusive() -> None:
    baseline = VariantSample(predictions=_spread(20_000))
    shifted = _single(_spec(SHIFT), baseline, VariantSample(predictions=_spread(5000, 0.25, 1.25)))
    assert shifted.verdict is Verdict.FAIL
    assert shifted.estimate == pytest.approx(0.25, abs=1e-3)
    assert "differ by KS distance 0.250" in shifted.reason
    assert "exceeds the tolerated 0.1" in shifted.reason
    same = _single(_spec(SHIFT), baseline, VariantSample(predictions=_spread(5000)))
    assert same.verdict is Verdict.PASS
    assert same.low == 0.0
    small = _single(_spec(SHIFT), baseline, VariantSample(predictions=_spread(300, 0.1, 1.1)))
    assert small.verdict is Verdict.INCONCLUSIVE
    none = _single(_spec(SHIFT), baseline, VariantSample(predictions=_spread(100)))
    assert none.verdict is Verdict.NO_DATA
    assert "needs at least 200 predictions" in none.reason


def test_input_order_does_not_matter() -> None:
    rng = np.random.default_rng(3)
    base_lat, cand_lat = rng.lognormal(3, 0.5, 8000), rng.lognormal(3.1, 0.5, 2000)
    base_pred, cand_pred = rng.random(8000), rng.random(2000)
    spec = _spec(LATENCY, SHIFT)
    unsorted = analyse(
        Measurements(
            baseline=VariantSample(latencies_ms=base_lat, predictions=base_pred),
            candidate=VariantSample(latencies_ms=cand_lat, predictions=cand_pred),
        ),
        spec,
    )
    ordered = analyse(
        Measurements(
            baseline=VariantSample(latencies_ms=np.sort(base_lat), predictions=np.sort(base_pred)),
            candidate=VariantSample(latencies_ms=np.sort(cand_lat), predictions=np.sort(cand_pred)),
        ),
        spec,
    )
    assert unsorted == ordered
    # and the caller's arrays are left as they were
    assert not np.all(np.diff(base_lat) >= 0)


# --- custom metrics ----------------------------------------------------------------------------------------


def _correct(n: int, accuracy: float) -> NDArray[np.float64]:
    right = round(n * accuracy)
    return np.concatenate([np.ones(right), np.zeros(n - right)])


def test_custom_higher_is_better() -> None:
    baseline = VariantSample(custom={"accuracy": _correct(40_000, 0.90)})
    worse = _single(_spec(ACCURACY), baseline, VariantSample(custom={"accuracy": _correct(10_000, 0.85)}))
    assert worse.verdict is Verdict.FAIL
    assert worse.estimate == pytest.approx(0.05)
    assert "candidate mean 0.85 vs baseline 0.9 (decrease +0.05" in worse.reason
    better = _single(_spec(ACCURACY), baseline, VariantSample(custom={"accuracy": _correct(10_000, 0.91)}))
    assert better.verdict is Verdict.PASS
    assert better.estimate == pytest.approx(-0.01)
    close = _single(_spec(ACCURACY), baseline, VariantSample(custom={"accuracy": _correct(2000, 0.88)}))
    assert close.verdict is Verdict.INCONCLUSIVE


def test_custom_lower_is_better_with_bounds() -> None:
    check = {"name": "cost", "kind": "custom", "threshold": 0.5, "lower": 0.0, "upper": 10.0}
    check["higher_is_better"] = False
    baseline = VariantSample(custom={"cost": np.full(20_000, 2.0)})
    pricier = VariantSample(custom={"cost": np.full(5000, 3.0)})
    cheaper = VariantSample(custom={"cost": np.full(5000, 1.0)})
    result = _single(_spec(check), baseline, pricier)
    assert result.verdict is Verdict.FAIL
    assert result.estimate == pytest.approx(1.0)
    assert "increase +1" in result.reason
    assert _single(_spec(check), baseline, cheaper).verdict is Verdict.PASS


def test_custom_metric_missing_or_out_of_bounds() -> None:
    baseline = VariantSample(custom={"accuracy": _correct(1000, 0.9)})
    missing = _single(_spec(ACCURACY), baseline, VariantSample(requests=5000))
    assert missing.verdict is Verdict.NO_DATA
    assert "has 1000 (baseline) and 0 (candidate)" in missing.reason
    with pytest.raises(ValidationError, match=r"accuracy: candidate values must lie in \[0, 1\]"):
        analyse(
            Measurements(
                baseline=baseline, candidate=VariantSample(custom={"accuracy": np.array([0.5, 1.5])})
            ),
            _spec(ACCURACY),
        )


# --- overall verdict ---------------------------------------------------------------------------------------

GOOD_ERRORS = (VariantSample(requests=40_000, errors=360), VariantSample(requests=10_000, errors=90))
BAD_ERRORS = (VariantSample(requests=40_000, errors=360), VariantSample(requests=10_000, errors=500))


def _combined(
    errors: tuple[VariantSample, VariantSample], accuracy_n: int, accuracy: float
) -> AnalysisResult:
    baseline = VariantSample(
        requests=errors[0].requests, errors=errors[0].errors, custom={"accuracy": _correct(40_000, 0.9)}
    )
    candidate = VariantSample(
        requests=errors[1].requests,
        errors=errors[1].errors,
        custom={"accuracy": _correct(accuracy_n, accuracy)} if accuracy_n else {},
    )
    return analyse(Measurements(baseline=baseline, candidate=candidate), _spec(ERRORS, ACCURACY))


@pytest.mark.parametrize(
    ("errors", "accuracy_n", "accuracy", "expected"),
    [
        (GOOD_ERRORS, 10_000, 0.9, Verdict.PASS),  # pass + pass
        (BAD_ERRORS, 10_000, 0.9, Verdict.FAIL),  # fail + pass
        (BAD_ERRORS, 0, 0.0, Verdict.FAIL),  # fail + no data: a failure is never hidden by missing data
        (GOOD_ERRORS, 0, 0.0, Verdict.NO_DATA),  # pass + no data: never a silent pass
        (GOOD_ERRORS, 1000, 0.89, Verdict.INCONCLUSIVE),  # pass + inconclusive
        (GOOD_ERRORS, 10_000, 0.8, Verdict.FAIL),  # pass + fail
    ],
)
def test_overall_verdict(
    errors: tuple[VariantSample, VariantSample], accuracy_n: int, accuracy: float, expected: Verdict
) -> None:
    result = _combined(errors, accuracy_n, accuracy)
    assert result.verdict is expected
    assert result.summary.startswith(f"{expected.value}: errors ")


def test_overall_no_data_beats_inconclusive() -> None:
    spec = _spec(ERRORS, ACCURACY)
    baseline = VariantSample(requests=2000, errors=18, custom={"accuracy": _correct(1000, 0.9)})
    candidate = VariantSample(requests=500, errors=10)
    result = analyse(Measurements(baseline=baseline, candidate=candidate), spec)
    assert [r.verdict for r in result.results] == [Verdict.INCONCLUSIVE, Verdict.NO_DATA]
    assert result.verdict is Verdict.NO_DATA
    assert result.result("accuracy").verdict is Verdict.NO_DATA
    with pytest.raises(KeyError):
        result.result("latency")


def test_default_spec_on_identical_variants_is_deterministic() -> None:
    rng = np.random.default_rng(9)
    baseline = VariantSample(
        requests=40_000,
        errors=360,
        latencies_ms=rng.lognormal(3, 0.4, 40_000),
        predictions=rng.random(20_000),
    )
    candidate = VariantSample(
        requests=10_000, errors=90, latencies_ms=rng.lognormal(3, 0.4, 10_000), predictions=rng.random(5000)
    )
    measurements = Measurements(baseline=baseline, candidate=candidate)
    first, second = analyse(measurements, AnalysisSpec()), analyse(measurements, AnalysisSpec())
    assert first == second
    assert first.verdict is Verdict.PASS
    assert [r.name for r in first.results] == ["error_rate", "latency_p95", "prediction_shift"]
    assert all(r.alpha == pytest.approx(0.05 / 3) for r in first.results)
    assert all("98.3% CS" in r.reason for r in first.results)


# --- gating -----------------------------------------------------------------------------------------------


def _shifted(gating: bool | None) -> AnalysisResult:
    """Default checks, candidate as fast and error-free as the baseline, its predictions shifted by 0.5."""
    checks = [c.model_dump(exclude_none=True) for c in DEFAULT_CHECKS]
    if gating is not None:
        checks[2]["gating"] = gating
    rng = np.random.default_rng(5)
    baseline = VariantSample(
        requests=40_000, errors=40, latencies_ms=rng.lognormal(3, 0.3, 40_000), predictions=_spread(20_000)
    )
    candidate = VariantSample(
        requests=10_000,
        errors=10,
        latencies_ms=rng.lognormal(3, 0.3, 10_000),
        predictions=_spread(5000, 0.5, 1.5),
    )
    return analyse(Measurements(baseline=baseline, candidate=candidate), _spec(*checks))


def test_prediction_shift_is_reported_but_does_not_gate_by_default() -> None:
    result = _shifted(None)
    shift = result.result("prediction_shift")
    assert shift.verdict is Verdict.FAIL
    assert not shift.gating
    assert shift.reason.endswith("exceeds the tolerated 0.1 (reported, not gating)")
    assert result.verdict is Verdict.PASS
    assert result.summary == "pass: error_rate pass, latency_p95 pass, prediction_shift fail (not gating)"
    assert result.reported == (shift,)


def test_prediction_shift_gates_where_asked() -> None:
    result = _shifted(True)
    assert result.result("prediction_shift").gating
    assert result.verdict is Verdict.FAIL
    assert result.reported == ()


def test_a_check_that_does_not_gate_neither_holds_nor_makes_a_verdict() -> None:
    """NO_DATA on a reporting check does not hold the rollout; a PASS on it does not make one."""
    few = Measurements(
        baseline=VariantSample(requests=40_000, errors=360, latencies_ms=_latencies(100, 0.05)),
        candidate=VariantSample(requests=10_000, errors=90, latencies_ms=_latencies(100, 0.05)),
    )
    errors_report = analyse(few, _spec({**ERRORS, "gating": False}, LATENCY))
    assert [r.verdict for r in errors_report.results] == [Verdict.PASS, Verdict.NO_DATA]
    assert errors_report.verdict is Verdict.NO_DATA
    assert analyse(few, _spec(ERRORS, {**LATENCY, "gating": False})).verdict is Verdict.PASS


def test_combine_with_nothing_gating_is_never_a_pass() -> None:
    only_reported = combine([_shifted(None).result("prediction_shift")])
    assert only_reported.verdict is Verdict.NO_DATA


# --- measurement validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"requests": 10, "errors": 11}, "errors <= requests"),
        ({"requests": -1}, "errors <= requests"),
        ({"requests": 1.5}, "requests must be an integer"),
        ({"requests": True}, "requests must be an integer"),
        ({"latencies_ms": [1.0, math.nan]}, "latencies_ms must be finite"),
        ({"predictions": [[0.1, 0.9]]}, "one-dimensional"),
        ({"custom": {"accuracy": [1.0, math.inf]}}, r"custom\['accuracy'\] must be finite"),
    ],
)
def test_invalid_measurements_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        VariantSample(**fields)


def test_measurements_are_frozen() -> None:
    sample = VariantSample(requests=3, custom={"a": [1.0]})
    with pytest.raises(AttributeError):
        sample.requests = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        sample.custom["b"] = np.zeros(1)  # type: ignore[index]
    assert sample.custom["a"].dtype == np.float64


# --- spec validation ---------------------------------------------------------------------------------------


def test_default_spec() -> None:
    spec = AnalysisSpec()
    assert spec.checks == DEFAULT_CHECKS
    assert [(c.kind, c.threshold) for c in spec.checks] == [
        (MetricKind.ERROR_RATE, 0.01),
        (MetricKind.LATENCY, 0.05),
        (MetricKind.PREDICTION_SHIFT, 0.1),
    ]
    assert spec.checks[1].effective_quantile == 0.95
    assert (spec.alpha, spec.min_samples) == (0.05, 200)
    assert AnalysisSpec.from_yaml(spec.to_yaml()) == spec


def test_alpha_split_and_min_samples_fallback() -> None:
    spec = _spec({**ERRORS, "alpha": 0.01, "min_samples": 50}, LATENCY, SHIFT, alpha=0.05, min_samples=300)
    errors, latency, shift = spec.checks
    assert spec.check_alpha(errors) == 0.01
    assert spec.check_alpha(latency) == pytest.approx(0.02)
    assert spec.check_alpha(shift) == pytest.approx(0.02)
    assert math.fsum(spec.check_alpha(c) for c in spec.checks) == pytest.approx(0.05)
    assert (spec.check_min_samples(errors), spec.check_min_samples(latency)) == (50, 300)


def _refused(message: str, *checks: dict[str, Any], **fields: Any) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        _spec(*checks, **fields)


@pytest.mark.parametrize("alpha", [0.0, -0.1, 0.5, 0.9])
def test_analysis_alpha_must_be_in_range(alpha: float) -> None:
    _refused(r"alpha must be in \(0, 0.5\)", ERRORS, alpha=alpha)


def test_spec_validation_errors() -> None:
    _refused("at least one check")
    _refused("check names must be unique, repeated: errors", ERRORS, {**ERRORS, "threshold": 0.02})
    _refused("threshold must be a finite number > 0", {**ERRORS, "threshold": 0})
    _refused("threshold must be a finite number > 0", {**ERRORS, "threshold": -0.01})
    _refused("threshold must be a finite number > 0", {**ERRORS, "threshold": math.inf})
    _refused("error_rate threshold must be below 1", {**ERRORS, "threshold": 1.0})
    _refused("prediction_shift threshold must be below 1", {**SHIFT, "threshold": 1.5})
    _refused("latency threshold must be below the quantile 0.95", {**LATENCY, "threshold": 0.96})
    _refused(r"quantile must be in \(0, 1\)", {**LATENCY, "quantile": 1.0})
    _refused("quantile applies to latency checks only", {**ERRORS, "quantile": 0.9})
    _refused("tolerance_ms applies to latency checks only", {**ERRORS, "tolerance_ms": 1.0})
    _refused("objective_ms applies to latency checks only", {**SHIFT, "objective_ms": 100.0})
    _refused("tolerance_ms must be a finite number >= 0", {**LATENCY, "tolerance_ms": -1.0})
    _refused("tolerance_ms must be a finite number >= 0", {**LATENCY, "tolerance_ms": math.inf})
    _refused("objective_ms must be a finite number > 0", {**LATENCY, "objective_ms": 0.0})
    _refused(r"0 is allowed only with objective_ms", {**LATENCY, "threshold": 0.0})
    _refused("threshold must be a finite number > 0", {**SHIFT, "threshold": 0.0})
    _refused("a check with objective_ms compares", {**LATENCY, "objective_ms": 100, "tolerance_ms": 2})
    _refused("no check gates the rollout", {**SHIFT, "gating": None})
    _refused("no check gates the rollout", {**ERRORS, "gating": False}, {**LATENCY, "gating": False})
    _refused("lower applies to custom checks only", {**SHIFT, "lower": 0.0})
    _refused("higher_is_better applies to custom checks only", {**ERRORS, "higher_is_better": True})
    _refused("source applies to custom checks only", {**ERRORS, "source": "label_correct"})
    _refused("need finite lower < upper", {**ACCURACY, "lower": 1.0, "upper": 1.0})
    _refused("must be below the range", {**ACCURACY, "threshold": 1.0})
    _refused("invalid check name", {**ERRORS, "name": "error rate"})
    _refused(r"alpha must be in \(0, 0.5\)", {**ERRORS, "alpha": 0.5})
    _refused("leaves nothing", {**ERRORS, "alpha": 0.05}, LATENCY, alpha=0.05)
    _refused("more than the analysis alpha", {**ERRORS, "alpha": 0.04}, {**LATENCY, "alpha": 0.02})
    _refused(
        "Input should be 'error_rate', 'latency', 'prediction_shift', 'custom' or 'agreement'",
        {**ERRORS, "kind": "x"},
    )
    _refused("Extra inputs are not permitted", {**ERRORS, "direction": "up"})


def test_latency_objective_may_tolerate_nothing_and_gating_defaults_per_kind() -> None:
    slo = MetricCheck.model_validate({**LATENCY, "objective_ms": 100.0, "threshold": 0.0})
    assert (slo.objective_ms, slo.threshold, slo.tolerance_ms) == (100.0, 0.0, None)
    assert MetricCheck.model_validate(LATENCY).effective_tolerance_ms == 1.0
    assert MetricCheck.model_validate({**LATENCY, "tolerance_ms": 0}).effective_tolerance_ms == 0.0
    gates = {
        kind: MetricCheck(name="c", kind=kind, threshold=0.05).effective_gating
        for kind in MetricKind
        if kind is not MetricKind.AGREEMENT
    }
    assert gates == {
        MetricKind.ERROR_RATE: True,
        MetricKind.LATENCY: True,
        MetricKind.PREDICTION_SHIFT: False,
        MetricKind.CUSTOM: True,
    }
    assert MetricCheck.model_validate({**SHIFT, "gating": True}).effective_gating
    assert not MetricCheck.model_validate({**ERRORS, "gating": False}).effective_gating


def test_stored_specs_without_the_new_fields_still_load() -> None:
    """A spec stored before tolerances, objectives and gating existed reads back with their defaults."""
    stored = {
        "checks": [
            {"name": "error_rate", "kind": "error_rate", "threshold": 0.02, "quantile": None, "alpha": None},
            {
                "name": "latency_p95",
                "kind": "latency",
                "threshold": 0.1,
                "quantile": 0.95,
                "min_samples": None,
            },
            {"name": "prediction_shift", "kind": "prediction_shift", "threshold": 0.35},
        ],
        "alpha": 0.05,
        "min_samples": 150,
    }
    spec = AnalysisSpec.model_validate(stored)
    assert [c.effective_gating for c in spec.checks] == [True, True, False]
    assert spec.checks[1].effective_tolerance_ms == 1.0
    assert AnalysisSpec.model_validate_json(spec.model_dump_json()) == spec


def test_metric_check_defaults_per_kind() -> None:
    check = MetricCheck.model_validate(ACCURACY)
    assert check.bounds == (0.0, 1.0)
    assert check.effective_higher_is_better is True
    assert (
        MetricCheck.model_validate({**ACCURACY, "higher_is_better": False}).effective_higher_is_better
        is False
    )


def test_a_check_can_judge_against_the_endpoints_latency_objective() -> None:
    from workbench.specs.analysis import AnalysisSpec, MetricCheck, MetricKind

    check = MetricCheck(
        name="latency_slo",
        kind=MetricKind.LATENCY,
        threshold=0.0,
        quantile=0.95,
        objective_from_endpoint=True,
    )
    errors = MetricCheck(name="error_rate", kind=MetricKind.ERROR_RATE, threshold=0.01)
    analysis = AnalysisSpec(checks=(errors, check))
    resolved = analysis.with_endpoint_objective(120.0, "churn")
    assert [c.objective_ms for c in resolved.checks] == [None, 120.0]
    assert not any(c.objective_from_endpoint for c in resolved.checks)
    assert AnalysisSpec(checks=(errors,)).with_endpoint_objective(None, "churn").checks == (errors,)
    with pytest.raises(ValueError, match="latency objective of endpoint 'churn', which states none"):
        analysis.with_endpoint_objective(None, "churn")
    with pytest.raises(ValueError, match="give one"):
        MetricCheck(
            name="both",
            kind=MetricKind.LATENCY,
            threshold=0.0,
            objective_ms=50.0,
            objective_from_endpoint=True,
        )
    with pytest.raises(ValueError, match="applies to latency checks only"):
        MetricCheck(name="e", kind=MetricKind.ERROR_RATE, threshold=0.01, objective_from_endpoint=True)
