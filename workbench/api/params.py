"""Path and query parameters as the API schema states them, one definition each.

Each pattern comes from the regex the domain validates the value with (see ``workbench.specs.patterns``).
The schema states the rule; the domain enforces it, so a malformed name still gets the domain's own
message (``invalid model name ...``) as a 422, or a 404 where a lookup by that name is all there is.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from workbench.registry.refs import MODEL_NAME_RE
from workbench.specs.endpoint import ENDPOINT_NAME_RE
from workbench.specs.monitor import NAME_RE as MONITOR_NAME_RE
from workbench.specs.patterns import VERSION_SCHEMA, alias_schema, model_ref_schema, pattern_schema
from workbench.specs.runbook import NAME_RE as RUNBOOK_NAME_RE

__all__ = [
    "Alias",
    "EndpointFilter",
    "EndpointName",
    "EndpointQuery",
    "ModelName",
    "ModelRefQuery",
    "ModelVersion",
    "MonitorName",
    "RolloutCommand",
    "RuleName",
    "RunbookFilter",
    "RunbookName",
    "ScheduleName",
]

_ENDPOINT = pattern_schema(ENDPOINT_NAME_RE)
_MONITOR = pattern_schema(MONITOR_NAME_RE)
_RUNBOOK = pattern_schema(RUNBOOK_NAME_RE)

EndpointName = Annotated[
    str, Path(description="endpoint name (a lower-case DNS label)", json_schema_extra=_ENDPOINT)
]
ModelName = Annotated[
    str, Path(description="registered model name", json_schema_extra=pattern_schema(MODEL_NAME_RE))
]
ModelVersion = Annotated[str, Path(description="version number, from 1", json_schema_extra=VERSION_SCHEMA)]
Alias = Annotated[
    str,
    Path(
        description="alias (not `latest` or `v<number>`, which MLflow reserves)",
        json_schema_extra=alias_schema(),
    ),
]
MonitorName = Annotated[str, Path(description="monitor name", json_schema_extra=_MONITOR)]
RuleName = Annotated[str, Path(description="alert rule name", json_schema_extra=_MONITOR)]
RunbookName = Annotated[str, Path(description="runbook name", json_schema_extra=_RUNBOOK)]
ScheduleName = Annotated[str, Path(description="runbook schedule name", json_schema_extra=_RUNBOOK)]
RolloutCommand = Annotated[
    str,
    Path(
        description="what to do with the rollout",
        json_schema_extra={"enum": ["pause", "resume", "promote", "abort"]},
    ),
]

ModelRefQuery = Annotated[
    str,
    Query(
        description="models:/NAME@ALIAS or models:/NAME/VERSION",
        max_length=300,
        json_schema_extra=model_ref_schema(),
    ),
]
EndpointQuery = Annotated[
    str, Query(description="endpoint name", max_length=128, json_schema_extra=_ENDPOINT)
]
EndpointFilter = Annotated[
    str | None, Query(description="only this endpoint's", max_length=128, json_schema_extra=_ENDPOINT)
]
RunbookFilter = Annotated[
    str | None, Query(description="only this runbook's", max_length=128, json_schema_extra=_RUNBOOK)
]
