"""Specs: every one round-trips through JSON and YAML, and EndpointSpec refuses what it should."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

import pydantic
import pytest

import workbench.specs
from workbench.specs.analysis import AnalysisSpec, MetricCheck
from workbench.specs.base import Spec
from workbench.specs.endpoint import (
    AutoscalingSpec,
    BatchingSpec,
    EndpointSpec,
    RayResources,
    ShadowTarget,
    TrafficRoute,
)
from workbench.specs.experiment import ExperimentSpec, Metric, Variant
from workbench.specs.features import FeatureLookup
from workbench.specs.monitor import (
    AlertRuleSpec,
    DriftOptions,
    MonitorSpec,
    NotifyAction,
    ReportSchedule,
    RollbackAction,
    RunbookAction,
)
from workbench.specs.optimization import OptimizationRequest
from workbench.specs.rollout import BlueGreenOptions, CanaryStep, RolloutSpec, ShadowOptions
from workbench.specs.runbook import RunRequest, ScheduleSpec, Trigger


def _discover_specs() -> list[type[Spec]]:
    """Every Spec subclass defined anywhere in the workbench.specs package, imported or not."""
    found: set[type[Spec]] = set()
    modules = [workbench.specs]
    for info in pkgutil.walk_packages(workbench.specs.__path__, prefix="workbench.specs."):
        modules.append(importlib.import_module(info.name))
    for module in modules:
        for _, value in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(value, Spec)
                and value is not Spec
                and value.__module__.startswith("workbench.specs")
            ):
                found.add(value)
    return sorted(found, key=lambda cls: cls.__qualname__)


SPEC_CLASSES = _discover_specs()

# A representative valid instance of each spec, with every optional field set away from its default so a
# field that does not survive the round trip is noticed.
FACTORIES: dict[type[Spec], dict[str, Any]] = {
    OptimizationRequest: {
        "method": "distill:mlp-32x16",
        "accuracy_budget_points": 0.5,
        "min_speedup": 2.0,
        "batch_size": 16,
        "threads": 1,
        "aliases": ["fast"],
        "reason": "smaller replicas",
    },
    CanaryStep: {"weight": 12.5, "min_duration_s": 90.0},
    DriftOptions: {
        "columns": ["age", "plan"],
        "categorical": ["plan"],
        "methods": {"age": "psi"},
        "thresholds": {"age": 0.2},
        "drift_share": 0.3,
        "min_rows": 1000,
    },
    ReportSchedule: {"every_s": 3600.0},
    FeatureLookup: {
        "entity": "customer_id",
        "join_key": "customer",
        "service": None,
        "features": ["customer_features:tenure_months", "customer_features:age"],
        "inputs": {"tenure": "tenure_months"},
        "missing": "default",
        "defaults": {"tenure": 0.0, "age": 40.0},
    },
    MonitorSpec: {
        "name": "fraud-watch",
        "endpoint": "fraud-scoring-2",
        "window_s": 600.0,
        "every_s": 15.0,
        "drift": {
            "columns": ["amount"],
            "categorical": [],
            "methods": {},
            "thresholds": {},
            "drift_share": 0.5,
            "min_rows": 200,
        },
        "reports": {"every_s": 86400.0},
        "description": "Fraud scoring: inputs and outputs.",
        "kind": "monitor",
    },
    NotifyAction: {"kind": "notify", "webhook": "http://127.0.0.1:9000/hook"},
    RollbackAction: {"kind": "rollback"},
    RunbookAction: {
        "kind": "runbook",
        "runbook": "drift-investigation",
        "parameters": {"window": "1h", "n": 3},
    },
    AlertRuleSpec: {
        "name": "p95-too-slow",
        "monitor": "fraud-watch",
        "series": "drift:amount",
        "op": ">=",
        "threshold": 0.25,
        "for_s": 120.0,
        "severity": "critical",
        "cooldown_s": 60.0,
        "actions": [{"kind": "notify", "webhook": None}, {"kind": "rollback"}],
        "description": "page someone",
        "kind": "alert_rule",
    },
    BlueGreenOptions: {
        "keep_warm_s": 0.0,
        "gate_requests": 0,
        "baseline_window_s": 30.0,
        "require_pass": True,
    },
    ShadowOptions: {
        "duration_s": 600.0,
        "sample_percent": 10.0,
        "tolerance": 0.0,
        "max_disagreement": 0.5,
        "alpha": 0.1,
        "min_pairs": 1,
    },
    RolloutSpec: {
        "endpoint": "fraud-scoring-2",
        "candidate": "models:/fraud-model@challenger",
        "strategy": "canary",
        "steps": [{"weight": 10.0, "min_duration_s": 60.0}, {"weight": 40.0, "min_duration_s": 120.0}],
        "analysis": {
            "checks": [
                {
                    "name": "errors",
                    "kind": "error_rate",
                    "threshold": 0.02,
                    "quantile": None,
                    "tolerance_ms": None,
                    "objective_ms": None,
                    "objective_from_endpoint": None,
                    "lower": None,
                    "upper": None,
                    "higher_is_better": None,
                    "source": None,
                    "min_samples": 300,
                    "alpha": None,
                    "gating": True,
                }
            ],
            "alpha": 0.01,
            "min_samples": 400,
        },
        "tick_s": 2.0,
        "step_timeout_s": 1200.0,
        "rollback_on_inconclusive": True,
        "blue_green": {
            "keep_warm_s": 60.0,
            "gate_requests": 3,
            "baseline_window_s": 120.0,
            "require_pass": True,
        },
        "shadow": {
            "duration_s": 30.0,
            "sample_percent": 50.0,
            "tolerance": 0.01,
            "max_disagreement": 0.02,
            "alpha": 0.02,
            "min_pairs": 50,
        },
    },
    TrafficRoute: {"model": "fraud.model_v2-b", "version": 3, "weight": 12.5},
    ShadowTarget: {"model": "fraud-model", "version": 7, "sample_percent": 2.5},
    BatchingSpec: {"max_batch_size": 256, "max_wait_ms": 0.75},
    AutoscalingSpec: {"min_replicas": 0, "max_replicas": 6, "target_ongoing_requests": 12.5},
    RayResources: {
        "num_cpus": 0.5,
        "num_gpus": 0.25,
        "autoscaling": {"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 8.0},
    },
    EndpointSpec: {
        "name": "fraud-scoring-2",
        "routes": [
            {"model": "fraud-model", "version": 3, "weight": 87.5},
            {"model": "fraud-model", "version": 4, "weight": 12.5},
        ],
        "shadows": [{"model": "fraud-model", "version": 5, "sample_percent": 25.0}],
        "replicas": 3,
        "device": "cuda:1",
        "batching": {"max_batch_size": 32, "max_wait_ms": 5.0},
        "payload_limit_bytes": 65536,
        "latency_objective_ms": 120.0,
        "description": "Scores card payments.\nSecond line: ünïcødé, 'quotes' and: colons.",
        "kind": "endpoint",
    },
    MetricCheck: {
        "name": "accuracy",
        "kind": "custom",
        "threshold": 0.02,
        "quantile": None,
        "tolerance_ms": None,
        "objective_ms": None,
        "objective_from_endpoint": None,
        "lower": -1.0,
        "upper": 2.5,
        "higher_is_better": False,
        "source": "label_abs_error",
        "min_samples": 500,
        "alpha": 0.01,
        "gating": False,
    },
    AnalysisSpec: {
        "checks": [
            {
                "name": "errors",
                "kind": "error_rate",
                "threshold": 0.005,
                "quantile": None,
                "tolerance_ms": None,
                "objective_ms": None,
                "objective_from_endpoint": None,
                "lower": None,
                "upper": None,
                "higher_is_better": None,
                "source": None,
                "min_samples": 1000,
                "alpha": 0.02,
                "gating": None,
            },
            {
                "name": "latency_p99",
                "kind": "latency",
                "threshold": 0.005,
                "quantile": 0.99,
                "tolerance_ms": 2.5,
                "objective_ms": None,
                "objective_from_endpoint": None,
                "lower": None,
                "upper": None,
                "higher_is_better": None,
                "source": None,
                "min_samples": None,
                "alpha": None,
                "gating": None,
            },
            {
                "name": "latency_slo",
                "kind": "latency",
                "threshold": 0.0,
                "quantile": 0.95,
                "tolerance_ms": None,
                "objective_ms": 150.0,
                "objective_from_endpoint": None,
                "lower": None,
                "upper": None,
                "higher_is_better": None,
                "source": None,
                "min_samples": None,
                "alpha": None,
                "gating": True,
            },
            {
                "name": "shift",
                "kind": "prediction_shift",
                "threshold": 0.3,
                "quantile": None,
                "tolerance_ms": None,
                "objective_ms": None,
                "objective_from_endpoint": None,
                "lower": None,
                "upper": None,
                "higher_is_better": None,
                "source": None,
                "min_samples": None,
                "alpha": None,
                "gating": False,
            },
        ],
        "alpha": 0.1,
        "min_samples": 50,
    },
    RunRequest: {
        "runbook": "retrain-and-canary",
        "parameters": {"min_rows": 500, "metric": "auc"},
        "timeout_s": 900,
    },
    ScheduleSpec: {
        "name": "nightly-triage",
        "runbook": "incident-triage",
        "parameters": {"endpoint": "churn"},
        "every_s": 86400,
        "start_at": 1_800_000_000.0,
    },
    Trigger: {"kind": "alert", "rule": "churn-auc-drop", "alert_event": 12, "detail": "auc_drop 0.08 > 0.05"},
    Variant: {"name": "candidate", "model": "churn-classifier", "version": 2, "weight": 50.0},
    Metric: {"name": "converted", "kind": "binary", "better": "higher", "margin": 0.01},
    ExperimentSpec: {
        "name": "checkout",
        "endpoint": "churn",
        "variants": [
            {"name": "control", "model": "churn-classifier", "version": 1, "weight": 50.0},
            {"name": "candidate", "model": "churn-classifier", "version": 2, "weight": 50.0},
        ],
        "unit": "key",
        "primary": {"name": "converted", "kind": "binary", "better": "higher", "margin": 0.0},
        "guardrails": [{"name": "latency-ms", "kind": "continuous", "better": "lower", "margin": 5.0}],
        "covariate": True,
        "alpha": 0.05,
        "correction": "bh",
        "method": "fixed",
        "planned_units": 4000,
        "min_units": 200,
    },
}


def test_discovery_finds_the_known_specs() -> None:
    exported = {getattr(workbench.specs, name) for name in workbench.specs.__all__}
    spec_exports = {cls for cls in exported if inspect.isclass(cls) and issubclass(cls, Spec)}
    assert spec_exports <= set(SPEC_CLASSES)
    assert {TrafficRoute, ShadowTarget, BatchingSpec, EndpointSpec} <= set(SPEC_CLASSES)


@pytest.mark.parametrize("cls", SPEC_CLASSES, ids=lambda cls: cls.__qualname__)
def test_spec_round_trips_through_json_and_yaml(cls: type[Spec]) -> None:
    if cls not in FACTORIES:
        pytest.fail(f"{cls.__module__}.{cls.__qualname__} has no entry in FACTORIES: add a valid example")
    instance = cls.model_validate(FACTORIES[cls])
    from_json = cls.model_validate_json(instance.model_dump_json())
    assert from_json == instance
    text = instance.to_yaml()
    assert isinstance(text, str)
    assert text.strip()
    from_yaml = cls.from_yaml(text)
    assert from_yaml == instance
    assert type(from_yaml) is cls
    assert from_yaml.to_yaml() == text
    for field, value in FACTORIES[cls].items():
        assert from_yaml.model_dump(mode="json")[field] == value, field


@pytest.mark.parametrize("word", ["on", "no", "null", "true", "0x1f", "017", "123", "1e3", "1-0"])
def test_yaml_keeps_strings_that_look_like_other_scalars(word: str) -> None:
    """YAML 1.1 reads bare on/no/null/0x1f as booleans, None or numbers: to_yaml must quote them."""
    spec = EndpointSpec.model_validate(
        {
            "name": word,
            "routes": [_route(1, 50, model=word), _route(1, 50, model="1.5")],
            "description": word,
        }
    )
    assert EndpointSpec.from_yaml(spec.to_yaml()) == spec


# --- EndpointSpec validation -------------------------------------------------------------------------------


def _endpoint(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "fraud",
        "routes": [{"model": "fraud-model", "version": 1, "weight": 100}],
    }
    data.update(overrides)
    return data


def _route(version: int, weight: float, model: str = "fraud-model") -> dict[str, Any]:
    return {"model": model, "version": version, "weight": weight}


def test_minimal_endpoint_defaults() -> None:
    spec = EndpointSpec.model_validate(_endpoint())
    assert spec.shadows == ()
    assert (spec.replicas, spec.device, spec.kind) == (1, "auto", "endpoint")
    assert spec.batching == BatchingSpec()
    assert spec.routes[0].uri == "models:/fraud-model/1"


@pytest.mark.parametrize(
    "routes",
    [
        [_route(1, 60), _route(2, 30)],
        [_route(1, 60), _route(2, 50)],
        [_route(1, 99.99)],
        [_route(1, 0)],
    ],
)
def test_weights_must_sum_to_100(routes: list[dict[str, Any]]) -> None:
    with pytest.raises(pydantic.ValidationError, match="add up to 100"):
        EndpointSpec.model_validate(_endpoint(routes=routes))


def test_weights_that_sum_to_100_are_accepted() -> None:
    routes = [_route(1, 100 / 3), _route(2, 100 / 3), _route(3, 100 / 3)]
    assert len(EndpointSpec.model_validate(_endpoint(routes=routes)).routes) == 3
    assert len(EndpointSpec.model_validate(_endpoint(routes=[_route(1, 0), _route(2, 100)])).routes) == 2


def test_duplicate_versions_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="only once"):
        EndpointSpec.model_validate(_endpoint(routes=[_route(1, 50), _route(1, 50)]))
    other_model = EndpointSpec.model_validate(_endpoint(routes=[_route(1, 50), _route(1, 50, model="other")]))
    assert len(other_model.routes) == 2


def test_version_both_live_and_shadow_refused() -> None:
    shadow = {"model": "fraud-model", "version": 1}
    with pytest.raises(pydantic.ValidationError, match="both live and a shadow"):
        EndpointSpec.model_validate(_endpoint(shadows=[shadow]))
    assert EndpointSpec.model_validate(_endpoint(shadows=[{**shadow, "version": 2}])).shadows[0].version == 2


@pytest.mark.parametrize(
    "name", ["Fraud", "-fraud", "fraud-", "a" * 64, "", "fraud_model", "fraud.v2", "fraud model"]
)
def test_bad_endpoint_names_refused(name: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="invalid endpoint name"):
        EndpointSpec.model_validate(_endpoint(name=name))


@pytest.mark.parametrize("name", ["a", "0", "a" * 63, "fraud-scoring-2", "9lives"])
def test_good_endpoint_names_accepted(name: str) -> None:
    assert EndpointSpec.model_validate(_endpoint(name=name)).name == name


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cuda:", "CPU", "cuda:-1", "cpu,cuda", ""])
def test_bad_devices_refused(device: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="invalid device"):
        EndpointSpec.model_validate(_endpoint(device=device))


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_good_devices_accepted(device: str) -> None:
    assert EndpointSpec.model_validate(_endpoint(device=device)).device == device


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "fraud\n"), ("device", "cpu\n"), ("routes", [_route(1, 100, model="fraud-model\n")])],
)
def test_trailing_newline_refused(field: str, value: Any) -> None:
    """The name patterns end in ``$``, which also matches before a final newline; they must not accept one."""
    with pytest.raises(pydantic.ValidationError):
        EndpointSpec.model_validate(_endpoint(**{field: value}))


INVALID_MODEL_NAMES = ["", "-fraud", "fraud model", "../etc/passwd", "a" * 129]


@pytest.mark.parametrize("model", INVALID_MODEL_NAMES)
def test_invalid_model_names_refused_in_routes(model: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="invalid model name"):
        TrafficRoute.model_validate({"model": model, "version": 1, "weight": 100})


@pytest.mark.parametrize("model", INVALID_MODEL_NAMES)
def test_invalid_model_names_refused_in_shadows(model: str) -> None:
    """A shadow names a model version exactly as a route does, so it is held to the same alphabet."""
    with pytest.raises(pydantic.ValidationError):
        ShadowTarget.model_validate({"model": model, "version": 1})


@pytest.mark.parametrize(
    "overrides",
    [
        {"replicas": 0},
        {"replicas": 33},
        {"kind": "rollout"},
        {"routes": []},
        {"routes": [_route(1, 101)]},
        {"routes": [_route(0, 100)]},
        {"payload_limit_bytes": 10},
        {"shadows": [{"model": "fraud-model", "version": 2, "sample_percent": 0}]},
        {"batching": {"max_batch_size": 0}},
    ],
)
def test_out_of_range_fields_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        EndpointSpec.model_validate(_endpoint(**overrides))


@pytest.mark.parametrize(
    "data",
    [
        _endpoint(colour="red"),
        _endpoint(routes=[{**_route(1, 100), "alias": "champion"}]),
        _endpoint(batching={"max_batch_size": 8, "timeout": 3}),
        _endpoint(shadows=[{"model": "fraud-model", "version": 2, "percent": 5}]),
    ],
)
def test_unknown_fields_refused(data: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError, match="Extra inputs are not permitted"):
        EndpointSpec.model_validate(data)


def test_unknown_fields_refused_from_yaml() -> None:
    text = EndpointSpec.model_validate(_endpoint()).to_yaml() + "replica: 3\n"
    with pytest.raises(pydantic.ValidationError, match="Extra inputs are not permitted"):
        EndpointSpec.from_yaml(text)


@pytest.mark.parametrize("cls", SPEC_CLASSES, ids=lambda cls: cls.__qualname__)
def test_specs_are_frozen(cls: type[Spec]) -> None:
    if cls not in FACTORIES:
        pytest.fail(f"{cls.__module__}.{cls.__qualname__} has no entry in FACTORIES: add a valid example")
    instance = cls.model_validate(FACTORIES[cls])
    field = next(iter(cls.model_fields))
    original = getattr(instance, field)
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        setattr(instance, field, original)
    assert getattr(instance, field) == original


def test_nested_specs_are_frozen() -> None:
    spec = EndpointSpec.model_validate(FACTORIES[EndpointSpec])
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        spec.routes[0].weight = 100  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        spec.batching.max_batch_size = 1  # type: ignore[misc]
    assert spec.routes[0].weight == 87.5
    assert spec.batching.max_batch_size == 32


def test_spec_collections_cannot_be_mutated_after_validation() -> None:
    spec = EndpointSpec.model_validate(_endpoint())
    with pytest.raises(AttributeError):
        spec.routes.append(spec.routes[0])  # type: ignore[attr-defined]
