"""What to watch on an endpoint (a monitor) and when to act (alert rules).

A :class:`MonitorSpec` names an endpoint, the sliding window its series and drift are computed over,
how often the engine looks (``every_s``, the scrape interval) and how drift is judged. An
:class:`AlertRuleSpec` is a condition on one series of a monitor (``error_rate > 0.05``), held for
``for_s`` seconds before it fires, with a severity, a cooldown between firings, and actions.

Series names (what a rule may watch), all over the monitor's window:

* ``requests_per_s``, ``error_rate``, ``latency_p50_ms``, ``latency_p95_ms``, ``latency_p99_ms``;
* ``drift_share`` (share of drifted feature columns), ``dataset_drift`` (1 when the dataset drifts),
  ``prediction_drift`` (drift score of the model's output), ``drift:<column>`` (one column's score);
* ``accuracy``, ``auc``, ``mae`` (from fed-back labels), ``estimated_accuracy``, ``estimated_auc``
  (without labels, CBPE), and ``accuracy_drop``, ``auc_drop``, ``estimated_accuracy_drop``: how far below
  the serving version's own performance on its reference dataset they are.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from workbench.specs.base import Spec
from workbench.specs.endpoint import EndpointName
from workbench.specs.patterns import pattern_schema, required_in_schema
from workbench.specs.runbook import NAME_RE as RUNBOOK_NAME_RE

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
#: A monitor's or a rule's name, its rule stated in the JSON Schema (the validators enforce it).
_Name = Annotated[str, Field(json_schema_extra=pattern_schema(NAME_RE))]
DRIFT_METHODS = ("wasserstein", "jensenshannon", "psi")
BASE_SERIES = (
    "requests_per_s",
    "error_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "drift_share",
    "dataset_drift",
    "prediction_drift",
    "accuracy",
    "auc",
    "mae",
    "estimated_accuracy",
    "estimated_auc",
    "accuracy_drop",
    "auc_drop",
    "estimated_accuracy_drop",
    "feature_age_max_s",
    "feature_lookup_p95_ms",
)


#: The scalar series every look computes (``dataset_drift`` and per-column drift aside).
SCALAR_SERIES = tuple(s for s in BASE_SERIES if s != "dataset_drift")


#: Every name ``check_series`` accepts, as a JSON Schema pattern.
SERIES_PATTERN = "^(" + "|".join(BASE_SERIES) + r"|drift:[\s\S]+)$"


def check_series(name: str) -> str:
    """Refuse an unknown series at creation, naming the known ones."""
    if name in BASE_SERIES or (name.startswith("drift:") and len(name) > len("drift:")):
        return name
    raise ValueError(f"unknown series {name!r}: use one of {', '.join(BASE_SERIES)} or drift:<column>")


class DriftOptions(Spec):
    columns: tuple[str, ...] | None = Field(
        default=None, description="feature columns to watch; the model signature's inputs if unset"
    )
    categorical: tuple[str, ...] = Field(
        default=(), description="columns compared as categories (numeric ones with <= 5 values are anyway)"
    )
    methods: dict[str, Literal["wasserstein", "jensenshannon", "psi"]] = Field(
        default_factory=dict, description="per-column method; Evidently's large-sample default if unset"
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="per-column drift threshold",
        json_schema_extra={"additionalProperties": {"type": "number", "exclusiveMinimum": 0}},
    )
    drift_share: float = Field(
        default=0.5, gt=0, le=1, description="share of drifted columns for dataset drift"
    )
    min_rows: int = Field(default=500, ge=10, description="rows in the window before drift is judged")

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not v > 0}
        if bad:
            raise ValueError(f"drift thresholds must be > 0, got {bad}")
        return value


class ReportSchedule(Spec):
    every_s: float = Field(ge=60, le=7 * 86_400, description="how often a full Evidently report is archived")


class MonitorSpec(Spec):
    name: _Name
    endpoint: EndpointName
    window_s: float = Field(default=300.0, gt=0, le=7 * 86_400, description="sliding window of every series")
    every_s: float = Field(default=10.0, ge=0.1, le=3600, description="how often the engine looks (scrape)")
    drift: DriftOptions = Field(default_factory=lambda: DriftOptions())
    reports: ReportSchedule | None = None
    description: str | None = Field(default=None, max_length=2000)
    kind: Literal["monitor"] = "monitor"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError(f"invalid monitor name {value!r}: use 1-63 lower-case letters, digits or '-'")
        return value

    @model_validator(mode="after")
    def _window(self) -> MonitorSpec:
        if self.window_s < self.every_s:
            raise ValueError(
                f"window_s ({self.window_s:g}s) is shorter than the scrape interval every_s ({self.every_s:g}s): "
                "each window would hold less than one look"
            )
        if self.window_s / self.every_s > 10_000:
            raise ValueError("window_s / every_s must be at most 10,000 slices")
        return self


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


WEBHOOK_RE = re.compile(r"^https?://[^\s]+\Z")


class NotifyAction(Spec):
    model_config = ConfigDict(json_schema_extra=required_in_schema("kind"))

    kind: Literal["notify"] = "notify"
    webhook: str | None = Field(
        default=None,
        description="POSTed the alert as JSON; logged either way",
        json_schema_extra=pattern_schema(WEBHOOK_RE),
    )

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value is not None and not WEBHOOK_RE.match(value):
            raise ValueError(f"webhook must be an http(s) URL, got {value!r}")
        return value


class RollbackAction(Spec):
    model_config = ConfigDict(json_schema_extra=required_in_schema("kind"))

    kind: Literal["rollback"] = "rollback"


class RunbookAction(Spec):
    model_config = ConfigDict(json_schema_extra=required_in_schema("kind"))

    kind: Literal["runbook"] = "runbook"
    runbook: str = Field(min_length=1, max_length=200, json_schema_extra=pattern_schema(RUNBOOK_NAME_RE))
    parameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("runbook")
    @classmethod
    def _runbook(cls, value: str) -> str:
        from workbench.specs.runbook import check_name

        return check_name(value, "runbook")


Action = Annotated[NotifyAction | RollbackAction | RunbookAction, Field(discriminator="kind")]


class AlertRuleSpec(Spec):
    name: _Name
    monitor: _Name
    series: str = Field(json_schema_extra={"pattern": SERIES_PATTERN})
    op: Literal[">", ">=", "<", "<="]
    threshold: float
    for_s: float = Field(default=0.0, ge=0, le=86_400, description="how long the condition must hold")
    severity: Severity = Severity.WARNING
    cooldown_s: float = Field(default=300.0, ge=0, le=7 * 86_400, description="quiet time after a firing")
    actions: tuple[Action, ...] = Field(default=(NotifyAction(),), max_length=8)
    description: str | None = Field(default=None, max_length=2000)
    kind: Literal["alert_rule"] = "alert_rule"

    @field_validator("name", "monitor")
    @classmethod
    def _names(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError(f"invalid name {value!r}: use 1-63 lower-case letters, digits or '-'")
        return value

    @field_validator("series")
    @classmethod
    def _series(cls, value: str) -> str:
        return check_series(value)
