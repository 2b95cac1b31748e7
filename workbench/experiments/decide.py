"""What an experiment's numbers mean at one look: continue, a winner, futility, a guardrail breached, or
a sample-ratio mismatch, each with the evidence that led to it.

The order matters and is the field's: a sample-ratio mismatch first (if assignment is off plan, no
metric comparison can be trusted), then the guardrails (harm stops an experiment whatever the primary
metric says), then the primary metric. Guardrails form their own family for multiple comparisons, so
adding one does not make a winner harder to find.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from workbench.experiments.statistics import (
    SRM_ALPHA,
    Difference,
    Moments,
    SampleRatio,
    adjust,
    confidence_sequence,
    cuped,
    fixed_horizon,
    sample_ratio,
)
from workbench.specs.experiment import ExperimentSpec, Metric

Verdict = Literal["continue", "winner", "futility", "guardrail_breach", "srm"]


@dataclass(frozen=True)
class Comparison:
    """One variant against the control on one metric."""

    variant: str
    metric: str
    n_control: int
    n_variant: int
    control_mean: float
    variant_mean: float
    difference: Difference
    adjusted_p: float
    #: "better" or "worse" when the difference is established in that direction, else None.
    direction: Literal["better", "worse"] | None


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str
    winner: str | None
    sample_ratio: SampleRatio
    primary: list[Comparison] = field(default_factory=list)
    guardrails: list[Comparison] = field(default_factory=list)
    cuped_theta: dict[str, float] = field(default_factory=dict)
    #: Units assigned per variant at the look, all of them (the sample-ratio check counts settled ones).
    assigned: dict[str, int] = field(default_factory=dict)

    @property
    def stops(self) -> bool:
        return self.verdict != "continue"


def _watched_sample_ratio(
    spec: ExperimentSpec, counts: list[int], outcomes: Mapping[str, Mapping[str, Moments]]
) -> SampleRatio:
    """The sample-ratio check as an experiment that is looked at repeatedly may use it.

    Pearson's chi-square is valid once: read at every look, its false alarms at 0.001 grow with the
    looks (benchmarks/experiments.py: 1.6 % by 200 looks on a correct split). So a look raises the alarm
    on the sequential (always-valid) test; the chi-square is still computed and reported, and stops a
    planned (fixed-horizon) experiment at its one planned look."""
    ratio = sample_ratio(counts, spec.shares)
    with_outcomes = outcomes.get(spec.primary.name, {})
    fewest = min(with_outcomes[v.name].n if v.name in with_outcomes else 0 for v in spec.variants)
    planned_look = spec.method == "fixed" and fewest >= (spec.planned_units or 0)
    alarm = ratio.sequential_p_value < SRM_ALPHA or (planned_look and ratio.p_value < SRM_ALPHA)
    return dataclasses.replace(ratio, alarm=alarm)


def decide(
    spec: ExperimentSpec,
    assigned: Mapping[str, int],
    outcomes: Mapping[str, Mapping[str, Moments]],
) -> Decision:
    """Judge one look. ``assigned``: units assigned per variant; ``outcomes``: per metric, per variant,
    the moments of the units with an outcome (and, with ``spec.covariate``, their covariate)."""
    names = [v.name for v in spec.variants]
    counts = [int(assigned.get(name, 0)) for name in names]
    ratio = _watched_sample_ratio(spec, counts, outcomes)
    if ratio.alarm:
        shares = ", ".join(f"{n} {c}" for n, c in zip(names, counts, strict=True))
        return Decision(
            "srm",
            f"units were not assigned as planned ({shares}; p = {min(ratio.p_value, ratio.sequential_p_value):.2g}): "
            "the comparison cannot be trusted until the cause is found",
            None,
            ratio,
        )
    thetas: dict[str, float] = {}
    primary = _compare(spec, spec.primary, outcomes, thetas, family_size=len(names) - 1)
    guardrails = [
        c
        for metric in spec.guardrails
        for c in _compare(spec, metric, outcomes, thetas, family_size=(len(names) - 1) * len(spec.guardrails))
    ]
    with_outcomes = outcomes.get(spec.primary.name, {})
    fewest = min(with_outcomes[v.name].n if v.name in with_outcomes else 0 for v in spec.variants)
    needed = spec.planned_units if spec.method == "fixed" else spec.min_units
    if fewest < (needed or 0):
        why = "the planned test is judged at" if spec.method == "fixed" else "no decision is made before"
        return Decision(
            "continue",
            f"{fewest} units with outcomes in the smallest variant; {why} {needed} per variant",
            None,
            ratio,
            primary,
            guardrails,
            thetas,
        )
    harmed = [c for c in guardrails if _beyond_margin(c, _metric(spec, c.metric), harm=True)]
    if harmed:
        worst = harmed[0]
        return Decision(
            "guardrail_breach",
            f"{worst.variant} harms guardrail {worst.metric}: {worst.difference.estimate:+.4g} "
            f"(interval {worst.difference.lower:+.4g} to {worst.difference.upper:+.4g}) against a tolerated "
            f"{_metric(spec, worst.metric).margin:g}",
            None,
            ratio,
            primary,
            guardrails,
            thetas,
        )
    winners = [c for c in primary if c.direction == "better" and c.adjusted_p < spec.alpha]
    if winners:
        sign = 1.0 if spec.primary.better == "higher" else -1.0
        best = max(winners, key=lambda c: sign * c.difference.estimate)
        return Decision(
            "winner",
            f"{best.variant} beats {spec.control.name} on {spec.primary.name} by {best.difference.estimate:+.4g} "
            f"({best.difference.relative:+.1%}; interval {best.difference.lower:+.4g} to "
            f"{best.difference.upper:+.4g}, adjusted p = {best.adjusted_p:.2g})",
            best.variant,
            ratio,
            primary,
            guardrails,
            thetas,
        )
    hopeless = [c for c in primary if _beyond_margin(c, spec.primary, harm=False)]
    if spec.method == "fixed" or (primary and len(hopeless) == len(primary)):
        why = (
            "at the planned sample no variant beats the control"
            if spec.method == "fixed"
            else f"every variant's interval rules out a gain of {spec.primary.margin:g} or more"
        )
        return Decision("futility", f"{why} on {spec.primary.name}", None, ratio, primary, guardrails, thetas)
    return Decision(
        "continue",
        f"no variant is established better or worse on {spec.primary.name} yet",
        None,
        ratio,
        primary,
        guardrails,
        thetas,
    )


def _metric(spec: ExperimentSpec, name: str) -> Metric:
    return spec.primary if spec.primary.name == name else next(g for g in spec.guardrails if g.name == name)


def _compare(
    spec: ExperimentSpec,
    metric: Metric,
    outcomes: Mapping[str, Mapping[str, Moments]],
    thetas: dict[str, float],
    *,
    family_size: int,
) -> list[Comparison]:
    by_variant = outcomes.get(metric.name, {})
    moments = [by_variant.get(v.name, Moments(0, 0.0, 0.0)) for v in spec.variants]
    if spec.covariate:
        moments, thetas[metric.name] = cuped(moments)
    control = moments[0]
    # Each interval at the family's Bonferroni level, so intervals and adjusted p-values agree in spirit.
    level = spec.alpha / max(family_size, 1)
    raw: list[tuple[str, Moments, Difference | None]] = []
    for variant, treated in zip(spec.variants[1:], moments[1:], strict=True):
        if control.n < 2 or treated.n < 2:
            raw.append((variant.name, treated, None))
            continue
        raw.append(
            (
                variant.name,
                treated,
                confidence_sequence(control, treated, level)
                if spec.method == "sequential"
                else fixed_horizon(metric.kind, control, treated, level),
            )
        )
    # The family's correction (Holm or BH) acts on each test's own p-value at the nominal alpha; the
    # intervals shown are at the Bonferroni level. A direction counts as established only when both
    # agree, so the interval a person reads never contradicts the verdict.
    nominal = [_nominal_p(spec, metric, control, treated) for _, treated, _ in raw]
    adjusted = adjust(nominal, spec.correction) if nominal else []
    sign = 1.0 if metric.better == "higher" else -1.0
    comparisons = []
    for (name, treated, tested), p in zip(raw, adjusted, strict=True):
        if tested is None:
            continue
        difference = tested
        direction: Literal["better", "worse"] | None = None
        if difference.significant and p < spec.alpha:
            direction = "better" if sign * difference.estimate > 0 else "worse"
        comparisons.append(
            Comparison(
                name, metric.name, control.n, treated.n, control.mean, treated.mean, difference, p, direction
            )
        )
    return comparisons


def _nominal_p(spec: ExperimentSpec, metric: Metric, control: Moments, treated: Moments) -> float:
    if control.n < 2 or treated.n < 2:
        return 1.0
    if spec.method == "sequential":
        return confidence_sequence(control, treated, spec.alpha).p_value
    return fixed_horizon(metric.kind, control, treated, spec.alpha).p_value


def _beyond_margin(comparison: Comparison, metric: Metric, *, harm: bool) -> bool:
    """``harm``: the interval shows more harm than the margin tolerates. Otherwise: the interval rules
    out a gain as large as the margin (futility)."""
    low, high = comparison.difference.lower, comparison.difference.upper
    if metric.better == "lower":
        low, high = -high, -low  # as if higher were better
    if harm:
        return high < -metric.margin
    return high < metric.margin


def _comparison_dict(comparison: Comparison) -> dict[str, Any]:
    difference = comparison.difference
    return {
        "variant": comparison.variant,
        "metric": comparison.metric,
        "n_control": comparison.n_control,
        "n_variant": comparison.n_variant,
        "control_mean": _finite(comparison.control_mean),
        "variant_mean": _finite(comparison.variant_mean),
        "estimate": _finite(difference.estimate),
        "lower": _finite(difference.lower),
        "upper": _finite(difference.upper),
        "relative": _finite(difference.relative),
        "p_value": _finite(difference.p_value),
        "adjusted_p": _finite(comparison.adjusted_p),
        "direction": comparison.direction,
    }


def _finite(value: float) -> float | None:
    """JSON has no NaN or infinity: an undefined figure (a relative change against 0) is null."""
    return value if math.isfinite(value) else None


def decision_dict(decision: Decision, *, at: float) -> dict[str, Any]:
    """The decision and its evidence as stored, audited and served (JSON, no NaN)."""
    ratio = decision.sample_ratio
    return {
        "at": at,
        "verdict": decision.verdict,
        "reason": decision.reason,
        "winner": decision.winner,
        "sample_ratio": {
            "counts": list(ratio.counts),
            "expected_shares": list(ratio.expected_shares),
            "p_value": _finite(ratio.p_value),
            "sequential_p_value": _finite(ratio.sequential_p_value),
            "alarm": ratio.alarm,
        },
        "primary": [_comparison_dict(c) for c in decision.primary],
        "guardrails": [_comparison_dict(c) for c in decision.guardrails],
        "cuped_theta": {k: _finite(v) for k, v in decision.cuped_theta.items()},
        "assigned": dict(decision.assigned),
    }
