"""The base every spec shares: frozen, strict about unknown fields, and YAML as well as JSON."""

from __future__ import annotations

from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict


class Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> Self:
        data: Any = yaml.safe_load(text)
        return cls.model_validate(data)
