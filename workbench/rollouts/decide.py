"""What a canary does next, decided from the analysis, the spec and the time: a pure function.

The controller calls it once per tick with the rollout's recorded step and the analysis of that step's
telemetry, then applies the decision (set routes, move aliases, record the event). Tests drive it with a
fake clock; nothing here reads a clock or does I/O.
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
    evidence = {
        "verdict": analysis.verdict.value,
        "step": step_index,
        "weight": step.weight,
        "elapsed_s": round(elapsed, 3),
        "metrics": [
            {"name": r.name, "verdict": r.verdict.value, "estimate": r.estimate, "low": r.low, "high": r.high}
            for r in analysis.results
        ],
    }
    if analysis.verdict == Verdict.FAIL:
        failing = [r for r in analysis.results if r.verdict == Verdict.FAIL]
        reason = "; ".join(f"{r.name}: {r.reason}" for r in failing)
        return Decision(
            Action.ROLLBACK, 0.0, step_index, f"analysis failed at {step.weight:g}%: {reason}", evidence
        )
    if analysis.verdict == Verdict.PASS and elapsed >= step.min_duration_s:
        if step_index + 1 < len(spec.steps):
            following = spec.steps[step_index + 1]
            return Decision(
                Action.ADVANCE,
                following.weight,
                step_index + 1,
                f"step {step_index} ({step.weight:g}%) passed after {elapsed:.0f}s: {following.weight:g}% next",
                evidence,
            )
        return Decision(
            Action.PROMOTE, 100.0, step_index, f"last step ({step.weight:g}%) passed: promoting", evidence
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
