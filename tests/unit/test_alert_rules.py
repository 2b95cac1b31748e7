"""The alert-rule state machine with a fake clock: for-duration, cooldown, resolution, missing data."""

from __future__ import annotations

from workbench.monitoring.rules import AlertState, RuleState, Transition, evaluate
from workbench.specs.monitor import AlertRuleSpec


def _rule(**fields: object) -> AlertRuleSpec:
    return AlertRuleSpec.model_validate(
        {"name": "r", "monitor": "m", "series": "error_rate", "op": ">", "threshold": 0.1, **fields}
    )


def test_fires_at_once_without_a_for_duration_and_resolves() -> None:
    rule = _rule(for_s=0)
    state, transition = evaluate(rule, RuleState(), 0.2, now=100.0)
    assert (state.state, transition) == (AlertState.FIRING, Transition.FIRING)
    state, transition = evaluate(rule, state, 0.3, now=101.0)
    assert (state.state, transition) == (AlertState.FIRING, None)  # fires once, not every tick
    state, transition = evaluate(rule, state, 0.05, now=102.0)
    assert (state.state, transition) == (AlertState.OK, Transition.RESOLVED)


def test_a_for_duration_needs_the_condition_to_hold_throughout() -> None:
    rule = _rule(for_s=30)
    state, _ = evaluate(rule, RuleState(), 0.2, now=0.0)
    assert state.state == AlertState.PENDING
    state, transition = evaluate(rule, state, 0.2, now=29.0)
    assert (state.state, transition) == (AlertState.PENDING, None)
    state, _ = evaluate(rule, state, 0.01, now=29.5)  # a dip resets the clock
    assert state.state == AlertState.OK
    state, _ = evaluate(rule, state, 0.2, now=30.0)
    state, transition = evaluate(rule, state, 0.2, now=59.0)
    assert transition is None
    state, transition = evaluate(rule, state, 0.2, now=60.0)
    assert (state.state, transition) == (AlertState.FIRING, Transition.FIRING)


def test_cooldown_keeps_a_flapping_condition_from_firing_again() -> None:
    rule = _rule(for_s=0, cooldown_s=300)
    state, _ = evaluate(rule, RuleState(), 0.2, now=0.0)
    state, _ = evaluate(rule, state, 0.0, now=10.0)
    state, transition = evaluate(rule, state, 0.2, now=20.0)
    assert (state.state, transition) == (AlertState.PENDING, None)
    state, transition = evaluate(rule, state, 0.2, now=301.0)
    assert (state.state, transition) == (AlertState.FIRING, Transition.FIRING)


def test_missing_data_changes_nothing() -> None:
    rule = _rule(op="<", threshold=0.8, series="accuracy")
    firing, _ = evaluate(rule, RuleState(), 0.5, now=0.0)
    assert firing.state == AlertState.FIRING
    assert evaluate(rule, firing, None, now=10.0) == (firing, None)
    assert evaluate(rule, RuleState(), None, now=10.0) == (RuleState(), None)
