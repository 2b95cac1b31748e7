"""What a rollout does next, decided from the analysis, the spec and the time: pure functions.

The controller calls one per tick (by strategy) with the rollout's recorded step and the analysis of its
telemetry, then applies the decision (set routes, move aliases, record the event). Tests drive them with
a fake clock; nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from workbench.rollouts.analysis import AnalysisResult, Verdict
from workbench.specs.rollout import RolloutSpec


class Action(StrEnum):
    WAIT = "wait"
    ADVANCE = "advance"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    INCONCLUSIVE = "inconclusive"
    #: A shadow rollout that passed: it ends, live traffic unchanged.
    COMPLETE = "complete"


@dataclass(frozen=True)
class Decision:
    action: Action
    candidate_weight: float
    step_index: int
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


def decide_canary(
    spec: RolloutSpec, step_index: int, step_started_at: float, analysis: AnalysisResult, now: float
) -> Decision:
    """One tick of a canary at ``step_index`` (its traffic weight set at ``step_started_at``)."""
    step = spec.steps[step_index]
    elapsed = now - step_started_at
    evidence = analysis_evidence(analysis, step=step_index, weight=step.weight, elapsed=elapsed)
    if analysis.verdict == Verdict.FAIL:
        return Decision(
            Action.ROLLBACK,
            0.0,
            step_index,
            f"analysis failed at {step.weight:g}%: {failing_reasons(analysis)}",
            evidence,
        )
    if analysis.verdict == Verdict.PASS and elapsed >= step.min_duration_s:
        if step_index + 1 < len(spec.steps):
            following = spec.steps[step_index + 1]
            return Decision(
                Action.ADVANCE,
                following.weight,
                step_index + 1,
                f"step {step_index} ({step.weight:g}%) passed after {elapsed:.0f}s: {following.weight:g}% next"
                + reported_note(analysis),
                evidence,
            )
        return Decision(
            Action.PROMOTE,
            100.0,
            step_index,
            f"last step ({step.weight:g}%) passed: promoting" + reported_note(analysis),
            evidence,
        )
    if elapsed >= spec.step_timeout_s:
        action = Action.ROLLBACK if spec.rollback_on_inconclusive else Action.INCONCLUSIVE
        weight = 0.0 if action == Action.ROLLBACK else step.weight
        return Decision(
            action,
            weight,
            step_index,
            f"no decision at {step.weight:g}% after {elapsed:.0f}s ({analysis.verdict.value}): {analysis.summary}",
            evidence,
        )
    waiting = "minimum duration" if analysis.verdict == Verdict.PASS else analysis.verdict.value
    return Decision(
        Action.WAIT, step.weight, step_index, f"waiting at {step.weight:g}% ({waiting})", evidence
    )


def analysis_evidence(
    analysis: AnalysisResult, *, step: int, weight: float, elapsed: float
) -> dict[str, Any]:
    """What an event records of the analysis behind a decision: every check's verdict and bounds."""
    return {
        "verdict": analysis.verdict.value,
        "step": step,
        "weight": weight,
        "elapsed_s": round(elapsed, 3),
        "metrics": [
            {
                "name": r.name,
                "kind": r.kind.value,
                "verdict": r.verdict.value,
                "estimate": r.estimate,
                "low": r.low,
                "high": r.high,
                "threshold": r.threshold,
                "samples": list(r.samples),
                "reason": r.reason,
                "gating": r.gating,
            }
            for r in analysis.results
        ],
    }


def failing_reasons(analysis: AnalysisResult) -> str:
    """The reasons of the gating checks that failed: what a rollback is for."""
    return "; ".join(r.reason for r in analysis.results if r.verdict == Verdict.FAIL and r.gating)


def reported_note(analysis: AnalysisResult) -> str:
    """`` (reported, not gating: prediction_shift fail)`` when checks that do not gate failed, else ``""``."""
    failed = analysis.reported
    if not failed:
        return ""
    return f" (reported, not gating: {', '.join(f'{r.name} fail' for r in failed)})"


def decide_blue_green(
    spec: RolloutSpec, switched_at: float, analysis: AnalysisResult, now: float
) -> Decision:
    """After the switch: swap back on FAIL; promote when the keep-warm window ends.

    At the end of the window a PASS promotes; so does any verdict but FAIL unless the spec requires a
    PASS, in which case the rollout waits for one until ``step_timeout_s`` (then inconclusive, or a
    rollback if the spec says so). The verdict is part of the decision's evidence either way.
    """
    options = spec.blue_green
    elapsed = now - switched_at
    evidence = analysis_evidence(analysis, step=1, weight=100.0, elapsed=elapsed)
    if analysis.verdict == Verdict.FAIL:
        return Decision(
            Action.ROLLBACK,
            0.0,
            1,
            f"analysis failed after the switch: {failing_reasons(analysis)}",
            evidence,
        )
    if elapsed >= options.keep_warm_s:
        if analysis.verdict == Verdict.PASS:
            return Decision(
                Action.PROMOTE,
                100.0,
                1,
                f"analysis passed; keep-warm window of {options.keep_warm_s:g}s over"
                + reported_note(analysis),
                evidence,
            )
        if not options.require_pass:
            return Decision(
                Action.PROMOTE,
                100.0,
                1,
                f"keep-warm window of {options.keep_warm_s:g}s over without a failure "
                f"(analysis {analysis.summary})",
                evidence,
            )
        if elapsed >= max(spec.step_timeout_s, options.keep_warm_s):
            action = Action.ROLLBACK if spec.rollback_on_inconclusive else Action.INCONCLUSIVE
            return Decision(
                action,
                0.0 if action == Action.ROLLBACK else 100.0,
                1,
                f"no analysis PASS after {elapsed:.0f}s ({analysis.summary})",
                evidence,
            )
    return Decision(
        Action.WAIT,
        100.0,
        1,
        f"switched; old version warm for {max(options.keep_warm_s - elapsed, 0):.0f}s more "
        f"({analysis.verdict.value})",
        evidence,
    )


def decide_shadow(spec: RolloutSpec, started_at: float, analysis: AnalysisResult, now: float) -> Decision:
    """Mirror for ``shadow.duration_s``; stop early on FAIL; at the end, complete on PASS.

    Candidate weight is always 0: a shadow never changes live traffic.
    """
    options = spec.shadow
    elapsed = now - started_at
    evidence = analysis_evidence(analysis, step=0, weight=0.0, elapsed=elapsed)
    if analysis.verdict == Verdict.FAIL:
        return Decision(
            Action.ROLLBACK, 0.0, 0, f"shadow analysis failed: {failing_reasons(analysis)}", evidence
        )
    if elapsed < options.duration_s:
        return Decision(
            Action.WAIT,
            0.0,
            0,
            f"mirroring, {options.duration_s - elapsed:.0f}s left ({analysis.verdict.value})",
            evidence,
        )
    if analysis.verdict == Verdict.PASS:
        return Decision(
            Action.COMPLETE,
            0.0,
            0,
            f"shadow passed after {elapsed:.0f}s: the candidate agrees with the primary ({analysis.summary})",
            evidence,
        )
    action = Action.ROLLBACK if spec.rollback_on_inconclusive else Action.INCONCLUSIVE
    return Decision(action, 0.0, 0, f"no shadow verdict after {elapsed:.0f}s ({analysis.summary})", evidence)
