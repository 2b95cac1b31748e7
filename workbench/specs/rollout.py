"""A rollout: move an endpoint from its stable version to a candidate, by a strategy, with analysis.

* ``canary``: steps of traffic for the candidate (default 5 → 25 → 50 %, then promotion to 100 %); each
  step lasts at least ``min_duration_s`` and is judged by the analysis at every tick.
* ``blue_green``: the candidate is started beside the stable version with no traffic, warmed and
  health-gated (smoke requests through the router), then takes 100 % in one atomic route swap. The stable
  version stays warm (0 %) for ``blue_green.keep_warm_s`` while the analysis watches the candidate
  against the stable version's traffic from before the switch: a FAIL swaps back at once.
* ``shadow``: the candidate only receives mirrored copies of live requests for ``shadow.duration_s``;
  its outputs are paired with the primary's by request id (agreement), and its errors and latency are
  compared with the primary's. Live traffic never changes, whatever the verdict.
"""

from __future__ import annotations

from enum import StrEnum
from itertools import pairwise

from pydantic import Field, model_validator

from workbench.specs.analysis import AnalysisSpec
from workbench.specs.base import Spec
from workbench.specs.endpoint import EndpointName
from workbench.specs.patterns import model_ref_schema


class Strategy(StrEnum):
    CANARY = "canary"
    BLUE_GREEN = "blue_green"
    SHADOW = "shadow"


class CanaryStep(Spec):
    weight: float = Field(gt=0, lt=100, description="percent of live traffic to the candidate")
    min_duration_s: float = Field(default=30.0, ge=0, le=86_400)


DEFAULT_STEPS = (CanaryStep(weight=5), CanaryStep(weight=25), CanaryStep(weight=50))


class BlueGreenOptions(Spec):
    keep_warm_s: float = Field(
        default=300.0, ge=0, le=86_400, description="how long the old version stays warm after the switch"
    )
    gate_requests: int = Field(
        default=8, ge=0, le=1000, description="smoke requests the candidate must answer before the switch"
    )
    baseline_window_s: float = Field(
        default=900.0, gt=0, description="the stable version's traffic before the switch used as baseline"
    )
    require_pass: bool = Field(
        default=False,
        description="promote only on an analysis PASS; else the end of the keep-warm window promotes "
        "unless the analysis failed (the verdict is recorded either way)",
    )


class ShadowOptions(Spec):
    duration_s: float = Field(default=300.0, gt=0, le=7 * 86_400, description="how long to mirror")
    sample_percent: float = Field(default=100.0, gt=0, le=100, description="share of requests mirrored")
    tolerance: float = Field(
        default=0.05, ge=0, description="largest absolute output difference that still counts as agreement"
    )
    max_disagreement: float = Field(
        default=0.05, gt=0, lt=1, description="tolerated share of paired requests whose outputs disagree"
    )
    alpha: float = Field(
        default=0.01, gt=0, lt=0.5, description="false-alarm probability of the agreement check"
    )
    min_pairs: int = Field(default=200, ge=1, description="paired requests before agreement is judged")


class RolloutSpec(Spec):
    endpoint: EndpointName
    candidate: str = Field(
        description="models:/NAME@ALIAS or models:/NAME/VERSION", json_schema_extra=model_ref_schema()
    )
    strategy: Strategy = Strategy.CANARY
    steps: tuple[CanaryStep, ...] = Field(default=DEFAULT_STEPS, max_length=20)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    tick_s: float = Field(default=5.0, gt=0, le=600, description="how often the controller looks")
    step_timeout_s: float = Field(
        default=900.0, gt=0, description="a step with no decision by then becomes inconclusive"
    )
    rollback_on_inconclusive: bool = Field(
        default=False, description="roll back instead of waiting for a person when a step times out"
    )
    blue_green: BlueGreenOptions = Field(default_factory=lambda: BlueGreenOptions())
    shadow: ShadowOptions = Field(default_factory=lambda: ShadowOptions())

    @model_validator(mode="after")
    def _steps(self) -> RolloutSpec:
        if self.strategy == Strategy.CANARY and not self.steps:
            raise ValueError("a canary needs at least one step")
        weights = [step.weight for step in self.steps]
        if any(b <= a for a, b in pairwise(weights)):
            raise ValueError(f"canary step weights must increase, got {weights}")
        if self.step_timeout_s < max((s.min_duration_s for s in self.steps), default=0):
            raise ValueError("step_timeout_s is shorter than a step's min_duration_s")
        return self
