"""What a user asks of ``workbench optimize``: the method and the bar a variant must clear to be registered."""

from __future__ import annotations

from pydantic import Field

from workbench.optimize.methods import METHOD_HELP, METHOD_RE
from workbench.specs.base import Spec
from workbench.specs.patterns import pattern_schema

DEFAULT_ACCURACY_BUDGET_POINTS = 1.0
DEFAULT_MIN_SPEEDUP = 1.05


class OptimizationRequest(Spec):
    method: str = Field(description=METHOD_HELP, json_schema_extra=pattern_schema(METHOD_RE))
    accuracy_budget_points: float = Field(
        default=DEFAULT_ACCURACY_BUDGET_POINTS,
        ge=0,
        le=100,
        description="the most AUC or accuracy points (MAE: percent) the variant may lose against its parent",
    )
    min_speedup: float = Field(
        default=DEFAULT_MIN_SPEEDUP,
        ge=1.0,
        le=1000.0,
        description="the variant must be at least this many times faster at the serving batch size",
    )
    batch_size: int | None = Field(
        default=None,
        ge=1,
        le=65536,
        description="the batch size it will serve at; by default the mean batch observed on the endpoints "
        "serving the parent, else 1 (one-row requests)",
    )
    threads: int | None = Field(default=None, ge=1, le=256, description="intra-op threads while measuring")
    aliases: list[str] = Field(default_factory=list, max_length=8, description="aliases for the variant")
    reason: str | None = Field(default=None, max_length=2000)
