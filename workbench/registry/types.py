"""What the registry tells the rest of Workbench about models: plain frozen records, no MLflow types.

Everything above the registry adapter sees these, so the API schema, the client and the CLI never
depend on MLflow's entity classes (which change between releases).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from workbench.specs.patterns import alias_schema, required_in_schema

#: What MLflow accepts as a run id (its own check is ``^[a-zA-Z0-9][\w\-]{0,255}$``), within our 64 characters.
RUN_ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Lineage(_Frozen):
    """Where a version came from: enough to reproduce it or to explain it in an incident review."""

    run_id: str | None = None
    source: str | None = Field(default=None, description="run, path or upload, with its origin")
    data_digest: str | None = Field(default=None, description="sha256 of the training data")
    data_rows: int | None = Field(default=None, ge=0)
    code_version: str | None = Field(default=None, description="git commit of the training code")
    parent_version: int | None = Field(default=None, ge=1)
    data_window: str | None = Field(
        default=None, max_length=200, description="ISO start/end of the logged traffic it learned from"
    )
    trained_by: str | None = Field(default=None, max_length=200, description="e.g. the runbook run")


class ReferenceData(_Frozen):
    """The data a version was validated on; monitoring compares live traffic against it."""

    artifact_uri: str
    rows: int
    columns: list[str]
    digest: str
    target: str | None = None


class ModelVersionInfo(_Frozen):
    name: str
    version: int
    aliases: list[str] = Field(default_factory=list)
    status: str
    source: str
    created_at: datetime
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    flavors: list[str] = Field(default_factory=list)
    signature: dict[str, Any] | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)
    lineage: Lineage = Field(default_factory=Lineage)
    reference: ReferenceData | None = None
    optimization: dict[str, Any] | None = Field(
        default=None,
        description="for an optimised variant: its method, parent version and the figures its gate measured",
    )

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


class RegisteredModelInfo(_Frozen):
    name: str
    description: str | None = None
    created_at: datetime
    updated_at: datetime
    aliases: dict[str, int] = Field(default_factory=dict)
    latest_version: int | None = None
    version_count: int = 0
    tags: dict[str, str] = Field(default_factory=dict)


class RunSource(_Frozen):
    """Register the MLflow model logged by an existing run."""

    model_config = ConfigDict(json_schema_extra=required_in_schema("kind"))

    kind: Literal["run"] = "run"
    run_id: str = Field(min_length=1, max_length=64, pattern=RUN_ID_PATTERN, description="an MLflow run id")
    artifact_path: str = Field(default="model", min_length=1, max_length=512)


class PathSource(_Frozen):
    """Register an MLflow model directory (one holding an ``MLmodel`` file) on the server's disk."""

    model_config = ConfigDict(json_schema_extra=required_in_schema("kind"))

    kind: Literal["path"] = "path"
    path: str = Field(min_length=1, max_length=4096)


class ReferenceSpec(_Frozen):
    path: str = Field(min_length=1, max_length=4096)
    target: str | None = Field(default=None, max_length=256)


#: MLflow's rule for metric and parameter names (its stores refuse others, after the model is uploaded).
MlflowKey = Annotated[str, StringConstraints(min_length=1, max_length=250, pattern=r"^[A-Za-z0-9_\-. :/]+$")]


class RegistrationRequest(_Frozen):
    """Everything a new version carries besides its files; shared by the JSON and upload routes."""

    description: str | None = Field(default=None, max_length=5000)
    tags: dict[str, str] = Field(default_factory=dict)
    params: dict[MlflowKey, str] = Field(default_factory=dict)
    metrics: dict[MlflowKey, float] = Field(default_factory=dict)
    lineage: Lineage = Field(default_factory=Lineage)
    reference: ReferenceSpec | None = None
    aliases: list[Annotated[str, Field(json_schema_extra=alias_schema())]] = Field(default_factory=list)
    reason: str | None = Field(default=None, max_length=2000)


class RegisterBody(RegistrationRequest):
    """The JSON body of a registration: where the model is, plus what the new version carries."""

    source: RunSource | PathSource = Field(discriminator="kind")

    def request(self) -> RegistrationRequest:
        return RegistrationRequest.model_validate(self.model_dump(exclude={"source"}))


class AliasBody(_Frozen):
    version: int = Field(ge=1)
    reason: str | None = Field(default=None, max_length=2000)
