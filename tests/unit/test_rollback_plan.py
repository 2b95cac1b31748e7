"""The rollback target as a pure function of revision histories, driven by tables of histories."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from workbench.errors import ConflictError, NotFoundError
from workbench.revisions import Revision, RevisionCause, plan_rollback
from workbench.revisions.plan import revision_before_rollout
from workbench.specs.endpoint import EndpointSpec

C = RevisionCause


def rev(
    number: int,
    cause: RevisionCause,
    split: dict[int, float],
    *,
    rollout: str | None = None,
    restores: int | None = None,
    alert: str | None = None,
) -> Revision:
    """A revision of endpoint churn serving model churn at ``split`` ({version: weight})."""
    routes = [{"model": "churn", "version": v, "weight": w} for v, w in split.items()]
    return Revision(
        endpoint="churn",
        revision=number,
        at=datetime.fromtimestamp(1_700_000_000 + number, tz=UTC),
        cause=cause,
        spec=EndpointSpec.model_validate({"name": "churn", "routes": routes}),
        actor="test",
        rollout_id=rollout,
        restores=restores,
        alert=alert,
    )


# The demo: v1 deployed, v2 canaried and promoted, v3 canaried and rolled back by the analysis.
DEMO = [
    rev(1, C.DEPLOY, {1: 100}),
    rev(2, C.ROLLOUT_STEP, {1: 80, 2: 20}, rollout="a"),
    rev(3, C.ROLLOUT_STEP, {1: 50, 2: 50}, rollout="a"),
    rev(4, C.PROMOTE, {2: 100}, rollout="a"),
    rev(5, C.ROLLOUT_STEP, {2: 80, 3: 20}, rollout="b"),
    rev(6, C.AUTOMATIC_ROLLBACK, {2: 100}, rollout="b", restores=4),
]
REJECTED_V3 = {("churn", 3)}


def served(plan_target: Revision | None) -> dict[int, float]:
    assert plan_target is not None
    return {version: weight for _, version, weight in plan_target.routes}


@pytest.mark.parametrize(
    ("history", "rejected", "expected_revision"),
    [
        # After a promotion: the revision before the rollout that promoted (never a half-way step).
        (DEMO[:4], set(), 1),
        # After an automatic rollback: below what it restored, never the rejected v3.
        (DEMO, REJECTED_V3, 1),
        # A plain deploy after another deploy: the one before.
        ([rev(1, C.DEPLOY, {1: 100}), rev(2, C.DEPLOY, {2: 100})], set(), 1),
        # An edit of options (same traffic) is passed over: the change before it that routed differently.
        (
            [rev(1, C.DEPLOY, {1: 100}), rev(2, C.DEPLOY, {2: 100}), rev(3, C.EDIT, {2: 100})],
            set(),
            1,
        ),
        # A deploy of a rejected version is never a target, even when it is the newest settled one.
        (
            [rev(1, C.DEPLOY, {1: 100}), rev(2, C.DEPLOY, {3: 100}), rev(3, C.DEPLOY, {2: 100})],
            REJECTED_V3,
            1,
        ),
    ],
    ids=[
        "after-promotion",
        "after-automatic-rollback",
        "after-deploy",
        "skips-options-edit",
        "skips-rejected",
    ],
)
def test_default_target(
    history: list[Revision], rejected: set[tuple[str, int]], expected_revision: int
) -> None:
    plan = plan_rollback(history, rejected)
    assert plan.target is not None
    assert plan.target.revision == expected_revision
    assert plan.from_revision == history[-1].revision
    assert not rejected & {(m, v) for m, v, _ in plan.target.routes}


def test_the_demo_scenario_never_routes_to_the_rejected_version_and_says_what_it_skipped() -> None:
    plan = plan_rollback(DEMO, REJECTED_V3)
    assert served(plan.target) == {1: 100.0}
    assert "revision 1 (churn v1 100%)" in plan.message
    assert "undoing revision 4 (promote)" in plan.message
    assert "2-3 (rollout steps)" in plan.message
    # Without the rejection recorded the answer is the same: rollout steps are never targets.
    assert plan_rollback(DEMO, set()).target == plan.target


def test_repeated_rollbacks_step_further_back_and_never_oscillate() -> None:
    history = [
        rev(1, C.DEPLOY, {1: 100}),
        rev(2, C.DEPLOY, {2: 100}),
        rev(3, C.DEPLOY, {3: 100}),
    ]
    first = plan_rollback(history, set())
    assert served(first.target) == {2: 100.0}
    history.append(rev(4, C.MANUAL_ROLLBACK, {2: 100}, restores=2))
    second = plan_rollback(history, set())
    assert served(second.target) == {1: 100.0}
    assert second.target is not None
    assert second.target.revision == 1
    history.append(rev(5, C.MANUAL_ROLLBACK, {1: 100}, restores=1))
    with pytest.raises(ConflictError, match="no earlier revision"):
        plan_rollback(history, set())


def test_repeated_rollbacks_after_the_demo_never_reach_v3() -> None:
    history = list(DEMO)
    seen: list[dict[int, float]] = []
    for number in range(7, 12):
        try:
            plan = plan_rollback(history, REJECTED_V3)
        except ConflictError:
            break
        assert plan.target is not None
        seen.append(served(plan.target))
        history.append(rev(number, C.MANUAL_ROLLBACK, served(plan.target), restores=plan.target.revision))
    assert seen == [{1: 100.0}]
    assert all(3 not in split for split in seen)


def test_explicit_revision_is_taken_as_asked() -> None:
    plan = plan_rollback(DEMO, REJECTED_V3, to_revision=1)
    assert served(plan.target) == {1: 100.0}
    assert "as asked" in plan.message


def test_explicit_revision_onto_a_rejected_version_needs_force() -> None:
    with pytest.raises(ConflictError, match=r"routes to churn v3, rejected") as refused:
        plan_rollback(DEMO, REJECTED_V3, to_revision=5)
    assert refused.value.details["rejected"] == ["churn v3"]
    forced = plan_rollback(DEMO, REJECTED_V3, to_revision=5, force=True)
    assert served(forced.target) == {2: 80.0, 3: 20.0}
    assert "forced onto a rejected version" in forced.message


def test_explicit_revision_that_does_not_exist_is_a_clear_404() -> None:
    with pytest.raises(NotFoundError, match=r"has no revision 99 \(its revisions are 1-6\)"):
        plan_rollback(DEMO, REJECTED_V3, to_revision=99)


def test_explicit_revision_serving_what_serves_now_changes_nothing() -> None:
    plan = plan_rollback(DEMO, REJECTED_V3, to_revision=4)
    assert plan.target is None
    assert not plan.changes_traffic
    assert "nothing to do" in plan.message


def test_an_alerts_repeated_rollback_is_idempotent() -> None:
    history = [
        rev(1, C.DEPLOY, {1: 100}),
        rev(2, C.DEPLOY, {2: 100}),
        rev(3, C.AUTOMATIC_ROLLBACK, {1: 100}, restores=1, alert="churn-latency"),
    ]
    again = plan_rollback(history, set(), alert="churn-latency")
    assert again.target is None
    assert "already rolled back by alert churn-latency" in again.message
    # Another rule, or a person, still rolls back (further).
    with pytest.raises(ConflictError):
        plan_rollback(history, set(), alert="other-rule")


def test_nothing_to_return_to_is_a_conflict_naming_the_endpoint() -> None:
    with pytest.raises(ConflictError, match="'churn' has no earlier revision"):
        plan_rollback([rev(1, C.DEPLOY, {1: 100})], set())
    with pytest.raises(ConflictError, match="no recorded revisions"):
        plan_rollback([], set())


def test_revision_before_a_rollout_is_what_undoing_it_restores() -> None:
    assert revision_before_rollout(DEMO, "a") == 1
    assert revision_before_rollout(DEMO, "b") == 4
    assert revision_before_rollout(DEMO, "missing") is None
    assert revision_before_rollout([rev(1, C.ROLLOUT_STEP, {1: 100}, rollout="x")], "x") is None


def test_history_order_does_not_matter() -> None:
    assert plan_rollback(list(reversed(DEMO)), REJECTED_V3) == plan_rollback(DEMO, REJECTED_V3)
