"""Frozen, validated specifications that round-trip to JSON and YAML: what the user asks for."""

from workbench.specs.analysis import AnalysisSpec, MetricCheck, MetricKind
from workbench.specs.endpoint import BatchingSpec, EndpointSpec, TrafficRoute

__all__ = ["AnalysisSpec", "BatchingSpec", "EndpointSpec", "MetricCheck", "MetricKind", "TrafficRoute"]
