"""What monitoring needs from the control plane, and nothing more.

Monitors read endpoints and reference data, write their own records with audit events, and act on what
their alert rules decide: a rollback, or a runbook run. Anything that provides these can host them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from workbench.store.host import StoreHost

if TYPE_CHECKING:
    from workbench.records.endpoints import EndpointRecord
    from workbench.records.runbooks import RunRecord
    from workbench.registry.types import ModelVersionInfo
    from workbench.revisions import RollbackRequest, RollbackResult
    from workbench.runbooks.catalog import RunbookInfo
    from workbench.specs.runbook import RunRequest, Trigger


class ReferenceSource(Protocol):
    """The registry's reads a monitor makes: the served version and its reference dataset."""

    def get_version(self, name: str, version: int | str) -> ModelVersionInfo: ...

    def load_reference(self, name: str, version: int) -> Any: ...


class RunbookStarter(Protocol):
    """How an alert's runbook action checks its runbook and starts a run."""

    def runbook(self, name: str) -> RunbookInfo: ...

    def start(self, request: RunRequest, *, actor: str, trigger: Trigger | None = None) -> RunRecord: ...


class ServingStatus(Protocol):
    def status(self) -> dict[str, Any]: ...


class ExperimentOutcomes(Protocol):
    """Where the feedback API sends business outcomes: the endpoint's A/B experiment."""

    def active_on(self, endpoint: str) -> Any: ...

    def add_endpoint_outcomes(self, endpoint: str, items: Sequence[Any], *, actor: str) -> dict[str, Any]: ...


class MonitoringPlane(StoreHost, Protocol):
    @property
    def registry(self) -> ReferenceSource: ...

    @property
    def serving(self) -> ServingStatus: ...

    @property
    def runbooks(self) -> RunbookStarter: ...

    @property
    def experiments(self) -> ExperimentOutcomes: ...

    def get_endpoint(self, name: str) -> EndpointRecord: ...

    def list_endpoints(self) -> list[EndpointRecord]: ...

    def rollback(
        self, name: str, request: RollbackRequest | None = None, *, actor: str
    ) -> RollbackResult: ...
