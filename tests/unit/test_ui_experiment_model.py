"""The Experiments page's pure parts: which experiment is shown, the list's rows, units per variant and
the sample-ratio check, the comparisons as read, the chart's rows look by look (streamable after the
last drawn), which actions apply, and what each action's confirmation says it will do."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from workbench.errors import ValidationError
from workbench.experiments.decide import decide, decision_dict
from workbench.experiments.statistics import SRM_ALPHA, Moments
from workbench.records.endpoints import EndpointRecord
from workbench.records.experiments import ExperimentRecord, ExperimentState
from workbench.specs.endpoint import EndpointSpec
from workbench.specs.experiment import ExperimentSpec
from workbench.ui import intents
from workbench.ui.feed import Snapshot
from workbench.ui.intents import ExperimentAction, ExperimentView
from workbench.ui.models.experiment import (
    ACTIONS,
    SRM_ALARM_BELOW,
    action_states,
    chart_scale,
    choose_experiment,
    comparison_rows,
    confidence_label,
    experiment_intent,
    experiment_rows,
    format_interval,
    format_p,
    format_value,
    latest_decision,
    look_rows,
    sample_ratio_check,
    unit_counts,
)

T0 = 1_800_000_000.0
NOW = datetime(2027, 1, 15, 12, 0, tzinfo=UTC)


def _spec(name: str = "offer", endpoint: str = "shop", **changes: Any) -> ExperimentSpec:
    spec: dict[str, Any] = {
        "name": name,
        "endpoint": endpoint,
        "variants": [
            {"name": "control", "model": "churn", "version": 1, "weight": 50},
            {"name": "treatment", "model": "churn", "version": 2, "weight": 50},
        ],
        "primary": {"name": "retained", "kind": "binary"},
        "guardrails": [{"name": "latency", "kind": "continuous", "better": "lower", "margin": 5}],
        "min_units": 50,
    }
    spec.update(changes)
    return ExperimentSpec.model_validate(spec)


def _record(
    spec: ExperimentSpec | None = None,
    state: ExperimentState = ExperimentState.RUNNING,
    decision: dict[str, Any] | None = None,
    **fields: Any,
) -> ExperimentRecord:
    spec = spec or _spec()
    values: dict[str, Any] = {
        "name": spec.name,
        "endpoint": spec.endpoint,
        "spec": spec,
        "state": state,
        "decision": decision,
        "actor": "alice",
        "created_at": NOW,
        "started_at": NOW if state != ExperimentState.DRAFT else None,
        "ended_at": NOW if state == ExperimentState.CONCLUDED else None,
        "revision": 2,
        "baseline": [{"model": "churn", "version": 1, "weight": 100.0}],
    }
    values.update(fields)
    return ExperimentRecord(**values)


def _decision(
    spec: ExperimentSpec, control: list[float], treated: list[float], assigned: dict[str, int], at: float = T0
) -> dict[str, Any]:
    """A real decision (decide + decision_dict), as the control plane stores and serves it."""
    rng = np.random.default_rng(3)
    latency = {
        "control": Moments.of(rng.normal(20, 2, len(control))),
        "treatment": Moments.of(rng.normal(21, 2, len(treated))),
    }
    outcomes = {
        spec.primary.name: {"control": Moments.of(control), "treatment": Moments.of(treated)},
        "latency": latency,
    }
    return decision_dict(decide(spec, assigned, outcomes), at=at)


def _winning(spec: ExperimentSpec) -> dict[str, Any]:
    return _decision(spec, [0.0, 1.0] * 150, [1.0] * 280 + [0.0] * 20, {"control": 300, "treatment": 300})


def _even(spec: ExperimentSpec, n: int = 100) -> dict[str, Any]:
    return _decision(spec, [0.0, 1.0] * (n // 2), [1.0, 0.0] * (n // 2), {"control": n, "treatment": n + 3})


def _endpoint(name: str = "shop", **routes: float) -> EndpointRecord:
    spec = EndpointSpec.model_validate(
        {
            "name": name,
            "routes": [
                {"model": "churn", "version": int(v.removeprefix("v")), "weight": w}
                for v, w in routes.items()
            ],
        }
    )
    return EndpointRecord(spec=spec, revision=7, created_at=NOW, updated_at=NOW)


# -------------------------------------------------------------------------------------- which one
def test_the_named_experiment_else_the_endpoints_active_else_the_newest_active_else_the_newest() -> None:
    old = _record(_spec("old", "shop"), ExperimentState.CONCLUDED)
    live = _record(_spec("live", "shop"), ExperimentState.PAUSED)
    other = _record(_spec("other", "cart"), ExperimentState.CONCLUDED)
    snapshot = Snapshot(experiments=(other, live, old))  # newest first
    assert choose_experiment(snapshot, "old", "cart") is old
    assert choose_experiment(snapshot, "missing", None) is None  # asked for: never another one
    assert choose_experiment(snapshot, None, "shop") is live
    assert choose_experiment(snapshot, None, "cart") is other
    assert choose_experiment(snapshot, None, "nowhere") is None
    assert choose_experiment(snapshot, None, None) is live
    assert choose_experiment(Snapshot(experiments=(other, old)), None, None) is other
    assert choose_experiment(Snapshot(), None, None) is None


def test_the_list_has_each_experiments_endpoint_state_variants_verdict_and_units() -> None:
    spec = _spec()
    winning = _record(spec, ExperimentState.CONCLUDED, _winning(spec))
    draft = _record(_spec("later", "cart"), ExperimentState.DRAFT)
    [first, second] = experiment_rows(Snapshot(experiments=(winning, draft)))
    assert (first.name, first.endpoint, first.state) == ("offer", "shop", "concluded")
    assert first.variants == "control churn v1 50% · treatment churn v2 50%"
    assert (first.verdict, first.winner, first.units) == ("winner", "treatment", 600)
    assert (second.verdict, second.winner, second.units) == (None, None, 0)


def test_without_a_saved_decision_the_last_kept_look_speaks() -> None:
    spec = _spec()
    record = _record(spec, decision=None)
    looks = ({"ts": T0, "units": 203, "decision": _even(spec)},)
    assert latest_decision(record, looks)["verdict"] == "continue"
    assert latest_decision(record) == {}
    assert unit_counts(record, {}) == {"control": 0, "treatment": 0}


# ------------------------------------------------------------------------------------ sample ratio
def test_units_per_variant_come_from_the_latest_looks_counts_with_their_shares_and_the_plan() -> None:
    spec = _spec()
    record = _record(spec, decision=_even(spec))
    check = sample_ratio_check(record, _even(spec))
    assert [(u.variant, u.version, u.units) for u in check.units] == [
        ("control", 1, 100),
        ("treatment", 2, 103),
    ]
    assert check.units[1].share == pytest.approx(103 / 203)
    assert check.units[0].planned == 0.5
    assert not check.alarm
    assert check.text.startswith("no mismatch: sequential test p = ")
    assert "alarm below 0.001" in check.text
    assert SRM_ALARM_BELOW == SRM_ALPHA  # the page states the engine's threshold
    assert sample_ratio_check(record, {}).text == "not checked yet: no look so far"


def test_a_sample_ratio_mismatch_says_no_comparison_can_be_trusted() -> None:
    spec = _spec()
    skewed = _decision(spec, [1.0, 0.0] * 100, [1.0, 0.0] * 100, {"control": 3000, "treatment": 1000})
    assert skewed["verdict"] == "srm"
    check = sample_ratio_check(_record(spec, decision=skewed), skewed)
    assert check.alarm
    assert "mismatch" in check.text
    assert "no comparison can be trusted" in check.text
    assert [u.units for u in check.units] == [3000, 1000]


# ------------------------------------------------------------------------------------- comparisons
def test_comparisons_read_as_rates_and_percentage_points_for_binary_metrics_primary_first() -> None:
    spec = _spec()
    decision = _winning(spec)
    [retained, latency] = comparison_rows(spec, decision)
    assert (retained.role, retained.metric, retained.variant, retained.kind) == (
        "primary",
        "retained",
        "treatment",
        "binary",
    )
    assert (retained.control_mean, retained.variant_mean) == ("50.00%", "93.33%")
    assert retained.difference == "+43.33 pp"
    assert retained.relative == "+86.7%"
    low, high = decision["primary"][0]["lower"], decision["primary"][0]["upper"]
    assert retained.interval == f"[{low * 100:+.2f} pp, {high * 100:+.2f} pp]"
    assert retained.adjusted_p == "< 0.001"
    assert retained.direction == "better"
    assert (retained.n_control, retained.n_variant) == (300, 300)
    assert (latency.role, latency.kind, latency.better) == ("guardrail", "continuous", "lower")
    assert latency.difference.startswith("+")
    assert not latency.difference.endswith("pp")


def test_numbers_that_are_not_there_are_dashes_and_unbounded_ends_infinite() -> None:
    assert format_value(None, "binary") == "-"
    assert format_value(float("nan"), "continuous") == "-"
    assert format_value(0.1234, "binary") == "12.34%"
    assert format_value(-0.5, "continuous", difference=True) == "-0.5"
    assert format_interval(None, 0.02, "binary") == "[-∞, +2.00 pp]"
    assert format_interval(-1.5, None, "continuous") == "[-1.5, +∞]"
    assert format_p(0.0004) == "< 0.001"
    assert format_p(0.04567) == "0.046"
    assert format_p(None) == "-"


def test_the_interval_level_is_bonferroni_over_the_primary_comparisons() -> None:
    assert confidence_label(_spec()) == "always-valid 95% confidence sequence"
    three = _spec(
        variants=[
            {"name": "a", "model": "churn", "version": 1, "weight": 40},
            {"name": "b", "model": "churn", "version": 2, "weight": 30},
            {"name": "c", "model": "churn", "version": 3, "weight": 30},
        ]
    )
    assert confidence_label(three) == "always-valid 97.5% confidence sequence"
    fixed = _spec(method="fixed", planned_units=100)
    assert confidence_label(fixed) == "fixed-horizon 95% confidence interval"


# ------------------------------------------------------------------------------------------ charts
def test_chart_rows_are_one_per_look_in_percentage_points_with_gaps_where_not_compared() -> None:
    spec = _spec()
    first = {"ts": T0, "units": 3, "decision": _decision(spec, [1.0], [0.0], {"control": 2, "treatment": 1})}
    second = {"ts": T0 + 5, "units": 203, "decision": _even(spec)}
    third = {"ts": T0 + 10, "units": 600, "decision": _winning(spec)}
    rows = look_rows(spec, [first, second, third])
    assert list(rows) == ["treatment"]  # the control is what each variant is compared with
    column = rows["treatment"]
    assert column["time"] == [T0 * 1000, (T0 + 5) * 1000, (T0 + 10) * 1000]
    assert column["units"] == [3.0, 203.0, 600.0]
    assert math.isnan(column["estimate"][0])  # too few units to compare at the first look: a gap
    assert math.isnan(column["lower"][0])
    assert column["estimate"][2] == pytest.approx(_winning(spec)["primary"][0]["estimate"] * 100)
    assert column["lower"][2] < column["estimate"][2] < column["upper"][2]
    assert column["lower"][2] > 0  # the winner's band has left zero
    assert column["n_variant"][2] == 300.0
    assert chart_scale(spec) == 100.0
    assert chart_scale(_spec(primary={"name": "revenue", "kind": "continuous"})) == 1.0


def test_a_binary_metrics_early_bounds_are_drawn_within_100_percentage_points() -> None:
    spec = _spec()
    wide = {
        "variant": "treatment",
        "estimate": 0.2,
        "lower": -2.5,
        "upper": 1.7,
        "n_control": 3,
        "n_variant": 2,
    }
    look = {"ts": T0, "units": 5, "decision": {"primary": [wide]}}
    column = look_rows(spec, [look])["treatment"]
    assert (column["lower"], column["estimate"], column["upper"]) == ([-100.0], [20.0], [100.0])
    revenue = _spec(primary={"name": "revenue", "kind": "continuous"})
    assert look_rows(revenue, [look])["treatment"]["lower"] == [-2.5]


def test_only_the_looks_after_the_last_drawn_are_streamed() -> None:
    spec = _spec()
    looks = [{"ts": T0 + i, "units": 10 * i, "decision": _even(spec)} for i in range(4)]
    delta = look_rows(spec, looks, after=T0 + 2)
    assert delta["treatment"]["time"] == [(T0 + 3) * 1000]
    assert look_rows(spec, looks, after=T0 + 3)["treatment"]["time"] == []


# ----------------------------------------------------------------------------------------- actions
@pytest.mark.parametrize(
    ("state", "winner", "enabled"),
    [
        (ExperimentState.DRAFT, False, set()),
        (ExperimentState.RUNNING, False, {"pause", "conclude", "promote_canary", "promote_blue_green"}),
        (ExperimentState.PAUSED, False, {"resume", "conclude", "promote_canary", "promote_blue_green"}),
        (ExperimentState.CONCLUDED, False, set()),
        (ExperimentState.CONCLUDED, True, {"promote_canary", "promote_blue_green"}),
    ],
)
def test_each_action_applies_only_in_its_states(
    state: ExperimentState, winner: bool, enabled: set[str]
) -> None:
    spec = _spec()
    decision = _winning(spec) if winner else _even(spec)
    states = action_states(_record(spec, state, decision), decision)
    assert {a for a in ACTIONS if states[a].enabled} == enabled
    assert not any(s.enabled for s in action_states(None, {}).values())


def test_each_button_is_the_shared_intent_on_the_experiment_shown() -> None:
    record = _record(_spec())
    assert experiment_intent(record, "pause") == ExperimentAction("shop", "pause", "offer")
    assert experiment_intent(record, "promote_canary") == ExperimentAction("shop", "promote", "offer")
    blue_green = experiment_intent(record, "promote_blue_green")
    assert (blue_green.action, blue_green.strategy) == ("promote", "blue_green")
    with pytest.raises(ValidationError, match="unknown experiment action"):
        experiment_intent(record, "explode")


def test_the_pages_buttons_preview_from_what_it_shows() -> None:
    spec = _spec()
    won = _winning(spec)
    view = ExperimentView(_record(spec, ExperimentState.RUNNING, won), _endpoint(v1=50, v2=50), won)
    pause = intents.preview(experiment_intent(view.record, "pause"), view)
    assert (pause.routes_before, pause.routes_after) == ("churn v1 50% / v2 50%", "churn v1 100%")
    intent = intents.pin(experiment_intent(view.record, "promote_canary"), view)
    assert intent.variant == "treatment"  # the winner the page shows is what a confirmation rolls out
    assert intents.preview(intent, view).routes_after == "churn v1 95% / v2 5%"
    even = _even(spec)
    stale = ExperimentView(_record(spec, ExperimentState.RUNNING, even), _endpoint(v1=50, v2=50), even)
    nothing = intents.preview(intents.pin(experiment_intent(stale.record, "promote_canary"), stale), stale)
    assert not nothing.changes_traffic  # the control plane takes a fresh look, and refuses without a winner
    assert "refuses" in nothing.detail
