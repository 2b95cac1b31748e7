"""An endpoint's feature lookup: requests carry an entity id, the replica fetches that entity's features.

The lookup names where the id is in the request (``entity``), what to fetch (a Feast feature service,
or ``view:feature`` references), and how fetched features become the model's inputs: a model input
takes the fetched feature of the same name unless ``inputs`` maps it to another one. Model inputs no
fetched feature fills are request-time features: the request carries them beside the id.

A fetched value that is absent from the online store, or older than its view's TTL, is missing. With
``missing="refuse"`` a request with a missing value is answered 422 naming the entity and the features;
with ``missing="default"`` the value is filled from ``defaults`` (every fetched input needs one) and
counted. Checked when deployed, against each served version's signature and the Feast registry
(:mod:`workbench.features.lookup`).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from workbench.specs.base import Spec
from workbench.specs.patterns import pattern_schema

#: A Feast name: letters, digits, underscores and dashes.
FEAST_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,127}\Z")
FEATURE_REF_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,127}:[A-Za-z_][A-Za-z0-9_\-]{0,127}\Z")


def _feast_name(value: str) -> str:
    if not FEAST_NAME_RE.match(value):
        raise ValueError(f"invalid name {value!r}: letters, digits, '_' or '-', not starting with a digit")
    return value


def _feature_ref(value: str) -> str:
    if not FEATURE_REF_RE.match(value):
        raise ValueError(f"invalid feature reference {value!r}: expected view:feature")
    return value


FeastName = Annotated[
    str, AfterValidator(_feast_name), Field(json_schema_extra=pattern_schema(FEAST_NAME_RE))
]
FeatureRef = Annotated[
    str, AfterValidator(_feature_ref), Field(json_schema_extra=pattern_schema(FEATURE_REF_RE))
]


class FeatureLookup(Spec):
    entity: FeastName = Field(
        description="the request column (or OIP input) holding the entity id; also the Feast join key "
        "unless join_key says otherwise",
    )
    join_key: str | None = Field(
        default=None, max_length=128, description="the Feast join key, if not entity"
    )
    service: str | None = Field(default=None, max_length=128, description="a Feast feature service to fetch")
    features: tuple[str, ...] = Field(
        default=(), max_length=512, description="feature references view:feature, when no service is named"
    )
    inputs: dict[str, str] = Field(
        default_factory=dict,
        description="model input -> fetched feature (name or view:feature), where the names differ",
    )
    missing: Literal["refuse", "default"] = Field(
        default="refuse",
        description="a missing or stale feature: refuse the request (422) or use the default",
    )
    defaults: dict[str, float] = Field(
        default_factory=dict, description="model input -> value used when its feature is missing"
    )

    @field_validator("entity", "join_key", "service")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not FEAST_NAME_RE.match(value):
            raise ValueError(
                f"invalid name {value!r}: letters, digits, '_' or '-', not starting with a digit"
            )
        return value

    @field_validator("features")
    @classmethod
    def _refs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for ref in value:
            if not FEATURE_REF_RE.match(ref):
                raise ValueError(f"invalid feature reference {ref!r}: expected view:feature")
        if len(set(value)) != len(value):
            raise ValueError("a feature is listed twice")
        return value

    @field_validator("defaults")
    @classmethod
    def _finite(cls, value: dict[str, float]) -> dict[str, float]:
        bad = sorted(name for name, number in value.items() if not math.isfinite(number))
        if bad:
            raise ValueError(f"defaults must be finite numbers: {', '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _what(self) -> FeatureLookup:
        if (self.service is None) == (not self.features):
            raise ValueError("name one of: a feature service, or a list of features (view:feature)")
        if self.missing == "refuse" and self.defaults:
            raise ValueError('defaults are used only with missing="default"')
        return self

    @property
    def key(self) -> str:
        """The Feast join key the id is looked up by."""
        return self.join_key or self.entity
