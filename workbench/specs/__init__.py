"""Frozen, validated specifications that round-trip to JSON and YAML: what the user asks for."""

from workbench.specs.analysis import AnalysisSpec, MetricCheck, MetricKind
from workbench.specs.endpoint import BatchingSpec, EndpointSpec, TrafficRoute
from workbench.specs.features import FeatureLookup
from workbench.specs.rollout import CanaryStep, RolloutSpec, Strategy

__all__ = [
    "AnalysisSpec",
    "BatchingSpec",
    "CanaryStep",
    "EndpointSpec",
    "FeatureLookup",
    "MetricCheck",
    "MetricKind",
    "RolloutSpec",
    "Strategy",
    "TrafficRoute",
]
