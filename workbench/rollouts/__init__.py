"""Rollouts: moving an endpoint from its stable version to a candidate, and deciding whether to go on.

``analysis`` compares the candidate with the baseline at every tick of a canary and returns explicit
verdicts (PASS, FAIL, INCONCLUSIVE, NO_DATA) that stay trustworthy however often it is asked, thanks to
the anytime-valid confidence sequences of ``sequential``; ``phases`` holds a rollout's phases and their
transitions. Analysis is pure: measurements and a spec in, verdicts out, no clock and no I/O.

The names below are imported on first use, so that importing a light submodule (``phases``) does not
load numpy and the statistics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.rollouts.analysis import (
        AnalysisResult,
        Measurements,
        MetricResult,
        VariantSample,
        Verdict,
        analyse,
    )

__all__ = ["AnalysisResult", "Measurements", "MetricResult", "VariantSample", "Verdict", "analyse"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from workbench.rollouts import analysis

        return getattr(analysis, name)
    raise AttributeError(f"module 'workbench.rollouts' has no attribute {name!r}")
