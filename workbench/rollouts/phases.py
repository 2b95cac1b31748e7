"""Rollout phases and the transitions between them: explicit, checked, each one recorded.

Kept apart from failure as Argo Rollouts does: ``inconclusive`` (the analysis could not decide within the
rollout's time) waits for a person, ``error`` (Workbench could not apply a step) is not a verdict on the
model, and ``failed`` (the candidate never became ready) changed no traffic.
"""

from __future__ import annotations

from enum import StrEnum

from workbench.errors import ConflictError


class Phase(StrEnum):
    PENDING = "pending"
    PROGRESSING = "progressing"
    PAUSED = "paused"
    INCONCLUSIVE = "inconclusive"
    PROMOTING = "promoting"
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    ERROR = "error"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def is_settled(self) -> bool:
        """Ended, or waiting for a person (paused, inconclusive): no controller tick will move it."""
        return self.is_terminal or self in (Phase.PAUSED, Phase.INCONCLUSIVE)

    @property
    def is_active(self) -> bool:
        """Holds the endpoint: a second rollout of it is refused while one is active."""
        return not self.is_terminal


_TERMINAL = frozenset({Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.FAILED, Phase.ERROR})

TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.PENDING: frozenset(
        {Phase.PROGRESSING, Phase.PROMOTING, Phase.FAILED, Phase.ROLLED_BACK, Phase.ERROR}
    ),
    # PROGRESSING -> SUCCEEDED is a shadow rollout that passed: nothing to promote, live traffic unchanged.
    Phase.PROGRESSING: frozenset(
        {
            Phase.PROGRESSING,
            Phase.PAUSED,
            Phase.INCONCLUSIVE,
            Phase.PROMOTING,
            Phase.SUCCEEDED,
            Phase.ROLLED_BACK,
            Phase.ERROR,
        }
    ),
    Phase.PAUSED: frozenset({Phase.PROGRESSING, Phase.PROMOTING, Phase.ROLLED_BACK, Phase.ERROR}),
    Phase.INCONCLUSIVE: frozenset({Phase.PROGRESSING, Phase.PROMOTING, Phase.ROLLED_BACK, Phase.ERROR}),
    Phase.PROMOTING: frozenset({Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.ERROR}),
    Phase.SUCCEEDED: frozenset(),
    Phase.ROLLED_BACK: frozenset(),
    Phase.FAILED: frozenset(),
    Phase.ERROR: frozenset(),
}


def check_transition(current: Phase, target: Phase) -> None:
    """Refuse a transition the state machine does not allow, naming what is allowed."""
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(p.value for p in TRANSITIONS[current])) or "nothing (terminal)"
        raise ConflictError(
            f"a rollout in phase {current.value!r} cannot go to {target.value!r}; allowed: {allowed}",
            phase=current.value,
            requested=target.value,
        )
