"""Whether a measured variant may be registered: within the accuracy budget *and* faster where it serves.

A pure function of the measurements, so the rule is tested without training anything and the API, CLI
and runbook all refuse for the same reasons. "Where it serves" is the batch size the endpoint actually
runs (its observed mean batch, or what the user says): a variant that wins at batch 1024 and loses at
batch 1 is no gain for an endpoint whose requests arrive one row at a time.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    accepted: bool
    reasons: list[str] = Field(default_factory=list, description="why it was refused (empty when accepted)")
    quality_delta: dict[str, float] = Field(default_factory=dict, description="variant minus parent")
    speedup: float = Field(description="parent latency / variant latency at the serving batch size")
    serving_batch: int


def decide(
    measured: dict[str, Any], *, accuracy_budget_points: float, min_speedup: float, serving_batch: int
) -> Verdict:
    """``measured`` is the worker's result: ``parent`` and ``variant`` blocks with quality and latency."""
    parent, variant = measured["parent"], measured["variant"]
    reasons: list[str] = []
    delta = {key: float(variant["quality"][key]) - float(parent["quality"][key]) for key in parent["quality"]}
    for key, change in delta.items():
        if key == "mae":
            base = float(parent["quality"]["mae"])
            relative = 100.0 * change / base if base > 0 else (0.0 if change <= 0 else math.inf)
            if relative > accuracy_budget_points:
                reasons.append(
                    f"MAE rose {relative:.2f}% over the parent's (budget {accuracy_budget_points:g}%)"
                )
        elif -change > accuracy_budget_points:
            label = (
                key.removesuffix("_points").upper() if key == "auc_points" else key.removesuffix("_points")
            )
            reasons.append(
                f"{label} fell {-change:.2f} points ({parent['quality'][key]:.2f} -> "
                f"{variant['quality'][key]:.2f}), over the budget of {accuracy_budget_points:g}"
            )
    key = str(serving_batch)
    parent_ms = float(parent["latency_ms"][key]["p50"])
    variant_ms = float(variant["latency_ms"][key]["p50"])
    speedup = parent_ms / variant_ms if variant_ms > 0 else math.inf
    if speedup < min_speedup:
        reasons.append(
            f"not faster where it serves: {variant_ms:.3f} ms against the parent's {parent_ms:.3f} ms at batch "
            f"{serving_batch} ({speedup:.2f}x; at least {min_speedup:g}x is required)"
        )
    return Verdict(
        accepted=not reasons,
        reasons=reasons,
        quality_delta={k: round(v, 4) for k, v in delta.items()},
        speedup=round(speedup, 3),
        serving_batch=serving_batch,
    )
