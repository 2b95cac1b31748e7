"""An A/B experiment on an endpoint: which versions compete, for what share of units, judged on what.

A unit is what is randomised: each request (``unit: request``), or each value of the routing key
(``unit: key``, the ``x-workbench-routing-key`` header, sticky through the router), so that a customer
sees one variant for the whole experiment. The first variant is the control. The primary metric decides
the winner; guardrail metrics only stop an experiment that harms them. A metric is binary (conversion)
or continuous (revenue, latency, a model score), with the direction that is better.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from workbench.specs.base import Spec
from workbench.specs.endpoint import EndpointName, ModelName
from workbench.specs.patterns import pattern_schema

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
_Name = Annotated[str, Field(json_schema_extra=pattern_schema(NAME_RE))]


class Variant(Spec):
    name: _Name
    model: ModelName
    version: int = Field(ge=1)
    weight: float = Field(gt=0, le=100, description="percent of the experiment's units")


class Metric(Spec):
    name: _Name
    kind: Literal["binary", "continuous"]
    better: Literal["higher", "lower"] = "higher"
    #: For the primary metric: the smallest effect worth shipping (absolute, treatment - control, in the
    #: direction that is better); the experiment stops for futility once it is ruled out. For a guardrail:
    #: the largest harm tolerated (absolute); the experiment stops once more harm than that is shown.
    margin: float = Field(default=0.0, ge=0)


class ExperimentSpec(Spec):
    name: _Name
    endpoint: EndpointName
    variants: list[Variant] = Field(min_length=2, max_length=8)
    unit: Literal["request", "key"] = "key"
    primary: Metric
    guardrails: list[Metric] = Field(default_factory=list, max_length=16)
    #: Regression adjustment with a pre-experiment value per unit, fed with the outcomes.
    covariate: bool = False
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    correction: Literal["holm", "bh", "none"] = "holm"
    #: ``sequential``: valid at every look, may stop early. ``fixed``: a planned test, judged once when
    #: ``planned_units`` per variant have outcomes (looking before proves nothing).
    method: Literal["sequential", "fixed"] = "sequential"
    planned_units: int | None = Field(default=None, ge=10)
    #: No decision before every variant has this many units with outcomes.
    min_units: int = Field(default=100, ge=10)
    #: Act on a stopping decision: conclude on a winner or futility, pause (traffic back to the baseline)
    #: on a guardrail breach or a sample-ratio mismatch. False: record and audit it, keep running.
    auto_stop: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be distinct")
        versions = [(v.model, v.version) for v in self.variants]
        if len(set(versions)) != len(versions):
            raise ValueError("each variant must serve a different model version")
        if not math.isclose(sum(v.weight for v in self.variants), 100.0, abs_tol=1e-6):
            raise ValueError("variant weights must add up to 100")
        metrics = [self.primary.name, *(g.name for g in self.guardrails)]
        if len(set(metrics)) != len(metrics):
            raise ValueError("metric names must be distinct (the primary metric is not also a guardrail)")
        if self.method == "fixed" and self.planned_units is None:
            raise ValueError("a fixed-horizon experiment needs planned_units (per variant)")
        return self

    @property
    def control(self) -> Variant:
        return self.variants[0]

    @property
    def shares(self) -> list[float]:
        return [v.weight / 100.0 for v in self.variants]
