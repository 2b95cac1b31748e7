"""An endpoint: a name that clients call, and which model versions answer it, in which proportions.

Routes pin concrete versions. An alias given at definition time is resolved once, so moving an alias
later never silently changes live traffic; changing traffic is always an explicit, audited act.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from workbench.registry.refs import MODEL_NAME_RE
from workbench.specs.base import Spec
from workbench.specs.features import FeatureLookup
from workbench.specs.patterns import pattern_schema

ENDPOINT_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)\Z")


def _check_model_name(value: str) -> str:
    if not MODEL_NAME_RE.match(value):
        raise ValueError(f"invalid model name {value!r}")
    return value


ModelName = Annotated[
    str,
    AfterValidator(_check_model_name),
    Field(description="registered model name", json_schema_extra=pattern_schema(MODEL_NAME_RE)),
]


def check_endpoint_name(value: str) -> str:
    if not ENDPOINT_NAME_RE.match(value):
        raise ValueError(
            f"invalid endpoint name {value!r}: use 1-63 lower-case letters, digits or '-', "
            "starting and ending with a letter or digit"
        )
    return value


#: An endpoint's name wherever a spec refers to one (rollouts, monitors).
EndpointName = Annotated[
    str,
    AfterValidator(check_endpoint_name),
    Field(description="endpoint name", json_schema_extra=pattern_schema(ENDPOINT_NAME_RE)),
]

# The serving options' bounds, shared with the requests that carry them (workbench.control_plane), so the
# API schema states them where a request is first read.
Replicas = Annotated[int, Field(ge=1, le=32)]
Device = Annotated[
    str, Field(description="auto, cpu, cuda or cuda:N", json_schema_extra=pattern_schema(DEVICE_RE))
]
MaxBatchSize = Annotated[int, Field(ge=1, le=8192)]
LatencyObjective = Annotated[
    float,
    Field(
        gt=0,
        le=600_000,
        description="the endpoint's latency objective in ms; rollout latency checks can judge against it",
    ),
]
MaxWaitMs = Annotated[float, Field(ge=0, le=1000)]
PayloadLimit = Annotated[int, Field(ge=1024, le=1024 * 1024 * 1024)]
Threads = Annotated[int, Field(ge=1, le=256, description="torch intra-op threads per replica")]
TorchScript = Annotated[
    bool,
    Field(
        description="serve a torch model as its TorchScript trace when the trace reproduces the model's "
        "outputs: the forward pass no longer waits for the GIL between layers, but Python side effects in "
        "forward() (logging, sleeps) are dropped"
    ),
]
LogSampleRate = Annotated[
    float, Field(ge=0.0, le=1.0, description="share of requests whose inputs and outputs are logged")
]


class TrafficRoute(Spec):
    model: ModelName
    version: int = Field(ge=1)
    weight: float = Field(ge=0, le=100, description="percent of live traffic")

    @property
    def uri(self) -> str:
        return f"models:/{self.model}/{self.version}"


class ShadowTarget(Spec):
    model: ModelName
    version: int = Field(ge=1)
    sample_percent: float = Field(default=100.0, gt=0, le=100, description="share of requests mirrored")


class BatchingSpec(Spec):
    max_batch_size: MaxBatchSize = 64
    max_wait_ms: MaxWaitMs = 2.0


class AutoscalingSpec(Spec):
    """Ray Serve's autoscaler, per version: replicas follow the requests each one has in flight."""

    min_replicas: int = Field(default=1, ge=0, le=64)
    max_replicas: int = Field(default=4, ge=1, le=64)
    target_ongoing_requests: float = Field(
        default=32.0, gt=0, le=10_000, description="requests in flight per replica the autoscaler aims for"
    )

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) must not exceed max_replicas ({self.max_replicas})"
            )
        return self


class RayResources(Spec):
    """What each replica reserves on a Ray cluster (the ``ray`` backend; the local backend ignores it)."""

    num_cpus: float | None = Field(
        default=None, ge=0, le=256, description="CPUs per replica; default: the endpoint's threads, else 1"
    )
    num_gpus: float | None = Field(
        default=None, ge=0, le=64, description="GPUs per replica; default: 1 for a cuda device, else 0"
    )
    autoscaling: AutoscalingSpec | None = Field(
        default=None, description="replicas between min and max by load; replaces the fixed replica count"
    )


class EndpointSpec(Spec):
    name: str = Field(
        description="lower-case DNS label: used in URLs and process names",
        json_schema_extra=pattern_schema(ENDPOINT_NAME_RE),
    )
    # Tuples keep a frozen spec frozen all the way down (a list could be appended to after validation).
    routes: tuple[TrafficRoute, ...] = Field(max_length=16, json_schema_extra={"minItems": 1})
    shadows: tuple[ShadowTarget, ...] = Field(default=(), max_length=4)
    replicas: Replicas = 1
    device: Device = "auto"
    batching: BatchingSpec = Field(default_factory=BatchingSpec)
    payload_limit_bytes: PayloadLimit = 8 * 1024 * 1024
    threads: Threads | None = None
    torchscript: TorchScript = False
    log_sample_rate: LogSampleRate = 1.0
    latency_objective_ms: LatencyObjective | None = None
    description: str | None = Field(default=None, max_length=2000)
    #: Hashed with the routing key for sticky assignment: set to ``experiment:NAME`` while an A/B
    #: experiment runs, so each experiment splits the keys afresh.
    sticky_salt: str | None = Field(default=None, max_length=80)
    #: Requests carry an entity id; the replicas fetch its features from the feature store.
    features: FeatureLookup | None = None
    #: Placement and autoscaling on the ``ray`` serving backend.
    ray: RayResources | None = None
    kind: Literal["endpoint"] = "endpoint"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_endpoint_name(value)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not DEVICE_RE.match(value):
            raise ValueError(f"invalid device {value!r}: use auto, cpu, cuda or cuda:N")
        return value

    @model_validator(mode="after")
    def _weights(self) -> EndpointSpec:
        if not self.routes:
            raise ValueError("an endpoint needs at least one route")
        total = sum(route.weight for route in self.routes)
        if not math.isclose(total, 100.0, abs_tol=1e-6):
            raise ValueError(f"route weights must add up to 100, they add up to {total:g}")
        uris = [route.uri for route in self.routes]
        if len(set(uris)) != len(uris):
            raise ValueError("each model version may appear in the routes only once")
        live = set(uris)
        for shadow in self.shadows:
            if f"models:/{shadow.model}/{shadow.version}" in live:
                raise ValueError(f"models:/{shadow.model}/{shadow.version} is both live and a shadow")
        return self
