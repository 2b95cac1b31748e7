"""Alert rules as a pure state machine: (rule, state, value, now) → new state and what happened.

``ok`` → ``pending`` when the condition starts to hold, → ``firing`` once it has held for ``for_s``
(at once when ``for_s`` is 0) and the rule is out of its cooldown; ``firing`` → ``ok`` (resolved) when
it stops holding. A missing value (no data in the window) changes nothing: silence is not recovery, and
it is not a breach either. The engine applies the transitions: record, audit, act.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from workbench.specs.monitor import AlertRuleSpec

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


class AlertState(StrEnum):
    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"


class Transition(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class RuleState:
    state: AlertState = AlertState.OK
    since: float | None = None  # when the condition started to hold
    last_fired_at: float | None = None
    value: float | None = None


def holds(rule: AlertRuleSpec, value: float) -> bool:
    return _OPS[rule.op](value, rule.threshold)


def evaluate(
    rule: AlertRuleSpec, state: RuleState, value: float | None, now: float
) -> tuple[RuleState, Transition | None]:
    if value is None:
        return state, None
    state = replace(state, value=value)
    if not holds(rule, value):
        if state.state == AlertState.FIRING:
            return replace(state, state=AlertState.OK, since=None), Transition.RESOLVED
        return replace(state, state=AlertState.OK, since=None), None
    if state.state == AlertState.FIRING:
        return state, None
    since = state.since if state.state == AlertState.PENDING and state.since is not None else now
    cooled = state.last_fired_at is None or now - state.last_fired_at >= rule.cooldown_s
    if now - since >= rule.for_s and cooled:
        return replace(state, state=AlertState.FIRING, since=since, last_fired_at=now), Transition.FIRING
    return replace(state, state=AlertState.PENDING, since=since), None
