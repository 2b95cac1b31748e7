"""A rollout: move an endpoint from its stable version to a candidate, by a strategy, with analysis.

Canary steps are traffic weights for the candidate (default 5 → 25 → 50 %, then promotion to 100 %);
each step lasts at least ``min_duration_s`` and is judged by the analysis at every tick.
"""

from __future__ import annotations

from enum import StrEnum
from itertools import pairwise

from pydantic import Field, field_validator, model_validator

from workbench.specs.analysis import AnalysisSpec
from workbench.specs.base import Spec
from workbench.specs.endpoint import ENDPOINT_NAME_RE


class Strategy(StrEnum):
    CANARY = "canary"
    BLUE_GREEN = "blue_green"
    SHADOW = "shadow"


class CanaryStep(Spec):
    weight: float = Field(gt=0, lt=100, description="percent of live traffic to the candidate")
    min_duration_s: float = Field(default=30.0, ge=0, le=86_400)


DEFAULT_STEPS = (CanaryStep(weight=5), CanaryStep(weight=25), CanaryStep(weight=50))


class RolloutSpec(Spec):
    endpoint: str
    candidate: str = Field(description="models:/NAME@ALIAS or models:/NAME/VERSION")
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
    keep_warm_s: float = Field(default=300.0, ge=0, description="blue-green: keep the old version warm")
    shadow_duration_s: float = Field(default=300.0, gt=0, description="shadow: how long to mirror")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not ENDPOINT_NAME_RE.match(value):
            raise ValueError(f"invalid endpoint name {value!r}")
        return value

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
