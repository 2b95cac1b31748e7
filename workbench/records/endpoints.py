"""An endpoint definition with its revision, as readers see it."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from workbench.specs.endpoint import EndpointSpec


class EndpointRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    spec: EndpointSpec
    revision: int
    created_at: datetime
    updated_at: datetime
