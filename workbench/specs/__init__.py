"""Frozen, validated specifications that round-trip to JSON and YAML: what the user asks for."""

from workbench.specs.endpoint import BatchingSpec, EndpointSpec, TrafficRoute

__all__ = ["BatchingSpec", "EndpointSpec", "TrafficRoute"]
