"""What the rollout controller needs from the control plane, and nothing more.

The controller changes traffic only the way every change is made (``apply_spec``: replicas first, then
definition, revision and audit event in one transaction, then routes), moves aliases through the audited
calls, and keeps its own records in the state store. Tests and other hosts can stand in for the control
plane by providing these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import Connection

from workbench.registry.refs import ModelRef
from workbench.registry.types import ModelVersionInfo
from workbench.revisions import Change, Rejection
from workbench.specs.endpoint import EndpointSpec
from workbench.store import EndpointRecord
from workbench.store.host import StoreHost


class ActiveExperiment(Protocol):
    name: str

    @property
    def state(self) -> Any: ...


class ExperimentSource(Protocol):
    """An endpoint's running or paused A/B experiment holds its traffic: no rollout starts meanwhile."""

    def active_on(self, endpoint: str) -> ActiveExperiment | None: ...


class ModelSource(Protocol):
    """The registry's reads a rollout makes: its candidate, and reference rows for the health gate."""

    def resolve(self, ref: ModelRef | str) -> ModelVersionInfo: ...

    def get_version(self, name: str, version: int | str) -> ModelVersionInfo: ...

    def load_reference(self, name: str, version: int) -> Any: ...


class RolloutPlane(StoreHost, Protocol):
    @property
    def registry(self) -> ModelSource: ...

    def get_endpoint(self, name: str) -> EndpointRecord: ...

    @property
    def experiments(self) -> ExperimentSource: ...

    def endpoint_status(self, name: str) -> dict[str, Any]: ...

    def rejected_versions(self, name: str) -> list[Rejection]: ...

    def apply_spec(
        self,
        spec: EndpointSpec,
        *,
        action: str,
        actor: str,
        reason: str | None,
        change: Change | None = None,
        guard: Callable[[Connection], None] | None = None,
    ) -> EndpointRecord: ...

    def set_alias(
        self, name: str, alias: str, version: int, *, actor: str, reason: str | None = None
    ) -> ModelVersionInfo: ...

    def delete_alias(self, name: str, alias: str, *, actor: str, reason: str | None = None) -> int: ...

    def reject_version(
        self,
        endpoint: str,
        model: str,
        version: int,
        *,
        rollout_id: str | None,
        actor: str,
        reason: str,
        evidence: Any = None,
    ) -> Rejection: ...

    def clear_rejection(
        self, endpoint: str, model: str, version: int, *, actor: str, reason: str
    ) -> bool: ...
