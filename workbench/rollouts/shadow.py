"""Shadow analysis: does the candidate, fed copies of live requests, answer like the primary?

The live checks of :mod:`workbench.rollouts.analysis` (errors, latency, prediction shift) compare the
shadow's telemetry with the primary's as they would compare a canary with its baseline. Agreement is
the shadow's own check: each mirrored request is paired with its primary by request id, and a pair
*disagrees* when some output differs by more than the tolerance. The disagreement probability gets the
same anytime-valid Bernoulli confidence sequence as an error rate (beta-binomial mixture, checked at
every tick), so FAIL means "disagrees more often than tolerated" with probability of a false alarm at
most the agreement's ``alpha``.
"""

from __future__ import annotations

from workbench.rollouts.analysis import AnalysisResult, MetricResult, Verdict, combine
from workbench.rollouts.sequential import bounded_mean_cs
from workbench.rollouts.telemetry import Agreement
from workbench.specs.analysis import MetricKind
from workbench.specs.rollout import ShadowOptions

AGREEMENT_CHECK = "agreement"


def agreement_result(agreement: Agreement, options: ShadowOptions) -> MetricResult:
    """PASS / FAIL / INCONCLUSIVE / NO_DATA for the share of disagreeing pairs against its tolerance."""
    n, k = agreement.pairs, agreement.disagreements
    threshold, alpha = options.max_disagreement, options.alpha
    if n == 0:
        return MetricResult(
            name=AGREEMENT_CHECK,
            kind=MetricKind.AGREEMENT,
            verdict=Verdict.NO_DATA,
            estimate=None,
            low=None,
            high=None,
            threshold=threshold,
            samples=(0, 0),
            reason=f"{AGREEMENT_CHECK}: no mirrored request has been paired with its primary yet",
            alpha=alpha,
        )
    low, high = bounded_mean_cs(k, n, alpha)
    share = k / n
    diff = (
        f", mean |diff| {agreement.mean_abs_diff:.3g}, max {agreement.max_abs_diff:.3g}"
        if agreement.mean_abs_diff is not None and agreement.max_abs_diff is not None
        else ""
    )
    described = (
        f"{AGREEMENT_CHECK}: {100 * share:.3g}% of {n} paired requests differ by more than "
        f"{options.tolerance:g}{diff} ({100 * (1 - alpha):.3g}% CS [{100 * low:.3g}%, {100 * high:.3g}%])"
    )
    if n < options.min_pairs:
        verdict = Verdict.NO_DATA
        reason = f"{described}; needs at least {options.min_pairs} pairs"
    elif low > threshold:
        verdict, reason = Verdict.FAIL, f"{described} exceeds the tolerated {100 * threshold:g}%"
    elif high < threshold:
        verdict, reason = Verdict.PASS, f"{described} is within the tolerated {100 * threshold:g}%"
    else:
        verdict = Verdict.INCONCLUSIVE
        reason = f"{described} cannot yet be told apart from the tolerated {100 * threshold:g}%"
    return MetricResult(
        name=AGREEMENT_CHECK,
        kind=MetricKind.AGREEMENT,
        verdict=verdict,
        estimate=share,
        low=low,
        high=high,
        threshold=threshold,
        samples=(n, n),
        reason=reason,
        alpha=alpha,
    )


def with_agreement(live: AnalysisResult, agreement: Agreement, options: ShadowOptions) -> AnalysisResult:
    """The live checks and the agreement check, with the overall verdict of them all."""
    return combine((*live.results, agreement_result(agreement, options)))
