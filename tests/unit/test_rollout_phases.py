"""The rollout state machine: terminal phases, allowed and refused transitions."""

from __future__ import annotations

import pytest

from workbench.errors import ConflictError
from workbench.rollouts.phases import TRANSITIONS, Phase, check_transition


def test_every_phase_has_a_transition_entry_and_terminal_ones_lead_nowhere() -> None:
    assert set(TRANSITIONS) == set(Phase)
    for phase in Phase:
        assert phase.is_terminal == (not TRANSITIONS[phase])
        assert phase.is_active == (not phase.is_terminal)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (Phase.PENDING, Phase.PROGRESSING),
        (Phase.PROGRESSING, Phase.PROGRESSING),
        (Phase.PROGRESSING, Phase.PAUSED),
        (Phase.PAUSED, Phase.PROGRESSING),
        (Phase.PROGRESSING, Phase.ROLLED_BACK),
        (Phase.INCONCLUSIVE, Phase.PROMOTING),
        (Phase.PROMOTING, Phase.SUCCEEDED),
    ],
)
def test_allowed_transitions(current: Phase, target: Phase) -> None:
    check_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (Phase.SUCCEEDED, Phase.PROGRESSING),
        (Phase.ROLLED_BACK, Phase.PROMOTING),
        (Phase.PAUSED, Phase.SUCCEEDED),
        (Phase.PENDING, Phase.SUCCEEDED),
        (Phase.FAILED, Phase.ROLLED_BACK),
    ],
)
def test_refused_transitions_say_what_is_allowed(current: Phase, target: Phase) -> None:
    with pytest.raises(ConflictError, match="allowed"):
        check_transition(current, target)


def test_settled_phases_are_the_ones_no_tick_moves() -> None:
    settled = {p for p in Phase if p.is_settled}
    assert settled == {p for p in Phase if p.is_terminal} | {Phase.PAUSED, Phase.INCONCLUSIVE}
