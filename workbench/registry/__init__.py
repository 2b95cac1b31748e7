"""The model registry: MLflow behind a small adapter, and the records the rest of Workbench sees."""

from workbench.registry.refs import ModelRef
from workbench.registry.types import (
    Lineage,
    ModelVersionInfo,
    PathSource,
    ReferenceData,
    ReferenceSpec,
    RegisteredModelInfo,
    RegistrationRequest,
    RunSource,
)

__all__ = [
    "Lineage",
    "ModelRef",
    "ModelVersionInfo",
    "PathSource",
    "ReferenceData",
    "ReferenceSpec",
    "RegisteredModelInfo",
    "RegistrationRequest",
    "RunSource",
]
