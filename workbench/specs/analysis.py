"""What a canary analysis checks: per-metric tolerated degradations and one false-alarm budget.

Each :class:`MetricCheck` states how much worse the candidate may be than the baseline (the stable
version) on one metric before the rollout should stop. :class:`AnalysisSpec` holds the checks and
``alpha``, the probability of a false FAIL over the *whole* rollout, all metrics and all ticks together;
it is split across the checks (Bonferroni). ``workbench.rollouts.analysis`` turns a spec and the
measurements so far into verdicts; ``docs/analysis.md`` gives the statistics and why the defaults are what
they are.

Every check is computed and reported; only *gating* checks decide the rollout. By default every kind
gates except ``prediction_shift``: a better model is meant to answer differently, so a shift is shown
as evidence and fails a rollout only where a check asks for it (``gating: true``).
"""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import Final, Literal

from pydantic import Field, field_validator, model_validator
from pydantic.config import JsonDict

from workbench.specs.base import Spec
from workbench.specs.patterns import pattern_schema

__all__ = ["DEFAULT_CHECKS", "DEFAULT_LATENCY_TOLERANCE_MS", "AnalysisSpec", "MetricCheck", "MetricKind"]

CHECK_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}\Z")
DEFAULT_QUANTILE: Final = 0.95
DEFAULT_MIN_SAMPLES: Final = 200
#: A latency check compared with the baseline counts a candidate request as slow only when it is slower
#: than the baseline's quantile *plus* this many milliseconds: nobody rolls a model back for a tenth of
#: a millisecond, and on a shared machine scheduling noise alone moves a sub-millisecond p95 by that much.
DEFAULT_LATENCY_TOLERANCE_MS: Final = 1.0
#: An alpha's range in the JSON Schema; the validators enforce it with their own messages.
_ALPHA: Final[JsonDict] = {"exclusiveMinimum": 0, "exclusiveMaximum": 0.5}


class MetricKind(StrEnum):
    """What a check compares, and so what its ``threshold`` means."""

    #: Share of failed requests. Threshold: tolerated absolute increase (0.01 = one percentage point).
    ERROR_RATE = "error_rate"
    #: Share of candidate requests slower than the baseline's ``quantile`` plus ``tolerance_ms`` (5% for
    #: p95 when nothing changed). Threshold: tolerated excess of that share (0.05: up to 10% of candidate
    #: requests may be slower than the baseline p95 + 1 ms). With ``objective_ms`` the candidate is
    #: compared with the objective instead: the share of its requests slower than ``objective_ms``.
    LATENCY = "latency"
    #: Kolmogorov-Smirnov distance between the candidate's and the baseline's prediction distributions.
    #: Threshold: the largest tolerated distance, in (0, 1).
    PREDICTION_SHIFT = "prediction_shift"
    #: A per-observation metric bounded in [lower, upper] (accuracy from fed-back labels, a business
    #: score). Threshold: tolerated decrease of its mean (increase when ``higher_is_better`` is false).
    CUSTOM = "custom"
    #: Shadow rollouts only, computed from paired outputs and configured by the rollout's shadow options:
    #: the share of mirrored requests whose output differs from the primary's beyond a tolerance.
    AGREEMENT = "agreement"


LabelSource = Literal["label_correct", "label_abs_error", "label_squared_error"]


class MetricCheck(Spec):
    """One metric compared between candidate and baseline, and the degradation it tolerates."""

    name: str = Field(
        description="unique within the analysis; for a custom metric, the key of its values",
        json_schema_extra=pattern_schema(CHECK_NAME_RE),
    )
    kind: MetricKind
    threshold: float = Field(
        description="tolerated degradation, in the metric's own unit (see MetricKind)",
        json_schema_extra={"minimum": 0},
    )
    quantile: float | None = Field(
        default=None, description="latency only: the baseline quantile, 0.95 if unset"
    )
    tolerance_ms: float | None = Field(
        default=None,
        description=(
            "latency only, compared with the baseline: a candidate request counts as slow only when it is "
            f"slower than the baseline's quantile plus this many ms ({DEFAULT_LATENCY_TOLERANCE_MS:g} if unset)"
        ),
        json_schema_extra={"minimum": 0},
    )
    objective_ms: float | None = Field(
        default=None,
        description=(
            "latency only: judge the candidate against this latency objective instead of the baseline "
            "(FAIL when its quantile would exceed objective_ms; threshold may then be 0)"
        ),
        json_schema_extra={"exclusiveMinimum": 0},
    )
    objective_from_endpoint: bool | None = Field(
        default=None,
        description=(
            "latency only: judge the candidate against the endpoint's latency_objective_ms, read when the "
            "rollout starts (a start on an endpoint without one is refused)"
        ),
    )
    lower: float | None = Field(default=None, description="custom only: smallest possible value, 0 if unset")
    upper: float | None = Field(default=None, description="custom only: largest possible value, 1 if unset")
    higher_is_better: bool | None = Field(default=None, description="custom only: true if unset")
    source: LabelSource | None = Field(
        default=None,
        description=(
            "custom only: computed by the controller from fed-back labels joined to each variant's "
            "answers by request id (label_correct: 1 if the score is on the label's side of 0.5; "
            "label_abs_error / label_squared_error: the score's error, clipped to [lower, upper])"
        ),
    )
    min_samples: int | None = Field(
        default=None, ge=1, description="per variant, before any verdict; the analysis default if unset"
    )
    alpha: float | None = Field(
        default=None,
        description="this check's share of the false-alarm budget; an equal split if unset",
        json_schema_extra=_ALPHA,
    )
    gating: bool | None = Field(
        default=None,
        description=(
            "whether a FAIL of this check fails the rollout (every check is reported either way); "
            "true if unset, except for prediction_shift"
        ),
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not CHECK_NAME_RE.match(value):
            raise ValueError(
                f"invalid check name {value!r}: use 1-64 letters, digits, '_', '.' or '-', "
                "starting with a letter or '_'"
            )
        return value

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, value: float) -> float:
        # 0 is allowed only against a latency objective, which needs the kind: see _kind_fields.
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(
                f"threshold must be a finite number > 0 (the tolerated degradation), got {value}"
            )
        return value

    @field_validator("tolerance_ms")
    @classmethod
    def _tolerance_ms(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ValueError(f"tolerance_ms must be a finite number >= 0, got {value}")
        return value

    @field_validator("objective_ms")
    @classmethod
    def _objective_ms(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"objective_ms must be a finite number > 0, got {value}")
        return value

    @field_validator("alpha")
    @classmethod
    def _alpha(cls, value: float | None) -> float | None:
        if value is not None and not 0 < value < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {value}")
        return value

    @model_validator(mode="after")
    def _kind_fields(self) -> MetricCheck:
        kind = self.kind
        if kind is MetricKind.AGREEMENT:
            raise ValueError(
                f"check {self.name!r}: agreement is measured by shadow rollouts (see the rollout's shadow "
                "options), not configured as a check"
            )
        if kind is not MetricKind.LATENCY:
            for field in ("quantile", "tolerance_ms", "objective_ms", "objective_from_endpoint"):
                if getattr(self, field) is not None:
                    raise ValueError(f"check {self.name!r}: {field} applies to latency checks only")
        if self.objective_from_endpoint and self.objective_ms is not None:
            raise ValueError(
                f"check {self.name!r}: objective_ms and objective_from_endpoint both name the objective; "
                "give one"
            )
        if self.threshold == 0 and self.objective_ms is None and not self.objective_from_endpoint:
            raise ValueError(
                f"threshold must be a finite number > 0 (the tolerated degradation), got {self.threshold}"
                + (" (0 is allowed only with objective_ms)" if kind is MetricKind.LATENCY else "")
            )
        if kind is not MetricKind.CUSTOM:
            for field in ("lower", "upper", "higher_is_better", "source"):
                if getattr(self, field) is not None:
                    raise ValueError(f"check {self.name!r}: {field} applies to custom checks only")
        if kind in (MetricKind.ERROR_RATE, MetricKind.PREDICTION_SHIFT) and self.threshold >= 1:
            raise ValueError(
                f"check {self.name!r}: a {kind.value} threshold must be below 1, got {self.threshold}"
            )
        if kind is MetricKind.LATENCY:
            quantile = self.effective_quantile
            if not 0 < quantile < 1:
                raise ValueError(f"check {self.name!r}: quantile must be in (0, 1), got {quantile}")
            if self.threshold >= quantile:
                raise ValueError(
                    f"check {self.name!r}: a latency threshold must be below the quantile {quantile:g} "
                    f"(the share of slow requests can exceed {1 - quantile:g} by at most that), "
                    f"got {self.threshold}"
                )
            if (
                self.objective_ms is not None or self.objective_from_endpoint
            ) and self.tolerance_ms is not None:
                raise ValueError(
                    f"check {self.name!r}: tolerance_ms applies to the comparison with the baseline; a check "
                    "with objective_ms compares the candidate with the objective"
                )
        if kind is MetricKind.CUSTOM:
            lower, upper = self.bounds
            if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
                raise ValueError(f"check {self.name!r}: need finite lower < upper, got [{lower}, {upper}]")
            if self.threshold >= upper - lower:
                raise ValueError(
                    f"check {self.name!r}: threshold {self.threshold} must be below the range "
                    f"upper - lower = {upper - lower:g}"
                )
        return self

    @property
    def effective_quantile(self) -> float:
        return DEFAULT_QUANTILE if self.quantile is None else self.quantile

    @property
    def effective_tolerance_ms(self) -> float:
        return DEFAULT_LATENCY_TOLERANCE_MS if self.tolerance_ms is None else self.tolerance_ms

    @property
    def effective_gating(self) -> bool:
        """Whether a FAIL fails the rollout: unless set, every kind but ``prediction_shift`` gates."""
        if self.gating is not None:
            return self.gating
        return self.kind is not MetricKind.PREDICTION_SHIFT

    @property
    def bounds(self) -> tuple[float, float]:
        return (0.0 if self.lower is None else self.lower, 1.0 if self.upper is None else self.upper)

    @property
    def effective_higher_is_better(self) -> bool:
        return True if self.higher_is_better is None else self.higher_is_better


DEFAULT_CHECKS: Final = (
    MetricCheck(name="error_rate", kind=MetricKind.ERROR_RATE, threshold=0.01),
    MetricCheck(name="latency_p95", kind=MetricKind.LATENCY, threshold=0.05, quantile=DEFAULT_QUANTILE),
    MetricCheck(name="prediction_shift", kind=MetricKind.PREDICTION_SHIFT, threshold=0.1),
)


class AnalysisSpec(Spec):
    """The checks of a canary analysis and the false-alarm budget they share."""

    # A tuple keeps the frozen spec frozen all the way down.
    checks: tuple[MetricCheck, ...] = Field(
        default=DEFAULT_CHECKS, max_length=32, json_schema_extra={"minItems": 1}
    )
    alpha: float = Field(
        default=0.05,
        description="probability of any false FAIL over the whole rollout, all checks and ticks",
        json_schema_extra=_ALPHA,
    )
    min_samples: int = Field(
        default=DEFAULT_MIN_SAMPLES, ge=1, description="per variant, for checks without one"
    )

    @field_validator("alpha")
    @classmethod
    def _alpha(cls, value: float) -> float:
        if not 0 < value < 0.5:
            raise ValueError(
                f"alpha must be in (0, 0.5): it is the false-alarm probability of the whole rollout, got {value}"
            )
        return value

    def with_endpoint_objective(self, objective_ms: float | None, endpoint: str) -> AnalysisSpec:
        """The checks that judge against the endpoint's objective, given its value now (for the record).

        Raises ``ValueError`` when a check asks for an objective the endpoint does not state.
        """
        asking = [c for c in self.checks if c.objective_from_endpoint]
        if not asking:
            return self
        if objective_ms is None:
            names = ", ".join(c.name for c in asking)
            raise ValueError(
                f"check {names} judges against the latency objective of endpoint {endpoint!r}, "
                "which states none (set latency_objective_ms on the endpoint)"
            )
        checks = tuple(
            c.model_copy(update={"objective_ms": objective_ms, "objective_from_endpoint": None})
            if c.objective_from_endpoint
            else c
            for c in self.checks
        )
        return self.model_copy(update={"checks": checks})

    @model_validator(mode="after")
    def _checks(self) -> AnalysisSpec:
        if not self.checks:
            raise ValueError("an analysis needs at least one check")
        if not any(check.effective_gating for check in self.checks):
            raise ValueError(
                "no check gates the rollout (prediction_shift is reported but does not gate unless "
                "gating: true): add a gating check or set gating: true on one"
            )
        names = [check.name for check in self.checks]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"check names must be unique, repeated: {', '.join(duplicates)}")
        pinned = [check.alpha for check in self.checks if check.alpha is not None]
        spent = math.fsum(pinned)
        free = len(self.checks) - len(pinned)
        if spent > self.alpha * (1 + 1e-9) or (free and spent >= self.alpha):
            raise ValueError(
                f"the checks' own alphas add up to {spent:g}, which leaves nothing of the analysis alpha "
                f"{self.alpha:g} for the {free} check(s) without one"
                if free
                else f"the checks' own alphas add up to {spent:g}, more than the analysis alpha {self.alpha:g}"
            )
        return self

    def check_alpha(self, check: MetricCheck) -> float:
        """The check's share of ``alpha``: its own if set, else an equal part of what the others leave."""
        if check.alpha is not None:
            return check.alpha
        pinned = [other.alpha for other in self.checks if other.alpha is not None]
        return (self.alpha - math.fsum(pinned)) / (len(self.checks) - len(pinned))

    def check_min_samples(self, check: MetricCheck) -> int:
        return self.min_samples if check.min_samples is None else check.min_samples
