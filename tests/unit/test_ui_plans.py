"""What every button's confirmation says will change: routes before → after, computed without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workbench.errors import ConflictError
from workbench.records.endpoints import EndpointRecord
from workbench.records.rollouts import RolloutRecord
from workbench.revisions.model import Revision, RevisionCause
from workbench.rollouts.phases import Phase
from workbench.specs.endpoint import EndpointSpec
from workbench.ui.plans import (
    preview_deploy,
    preview_rollback,
    preview_rollout_action,
    preview_rollout_start,
    split_label,
)

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def spec(*routes: tuple[int, float], name: str = "churn") -> EndpointSpec:
    return EndpointSpec.model_validate(
        {"name": name, "routes": [{"model": "m", "version": v, "weight": w} for v, w in routes]}
    )


def record(*routes: tuple[int, float], revision: int = 3) -> EndpointRecord:
    return EndpointRecord(spec=spec(*routes), revision=revision, created_at=T0, updated_at=T0)


def revision(
    number: int, cause: RevisionCause, *routes: tuple[int, float], restores: int | None = None
) -> Revision:
    return Revision(
        endpoint="churn",
        revision=number,
        at=T0 + timedelta(minutes=number),
        cause=cause,
        spec=spec(*routes),
        actor="someone",
        restores=restores,
    )


def rollout(phase: Phase = Phase.PROGRESSING) -> RolloutRecord:
    return RolloutRecord(
        id="r1",
        endpoint="churn",
        strategy="canary",
        spec={"steps": [{"weight": 10}, {"weight": 50}]},
        phase=phase,
        step_index=0,
        step_started_at=0.0,
        stable_model="m",
        stable_version=1,
        candidate_model="m",
        candidate_version=2,
        actor="alice",
        reason=None,
        revision=4,
        created_at=T0,
        updated_at=T0,
    )


def test_the_split_names_each_model_once_and_biggest_first() -> None:
    assert split_label([("m", 1, 90.0), ("m", 2, 10.0)]) == "m v1 90% / v2 10%"
    assert split_label([("a", 3, 25.0), ("b", 1, 75.0)]) == "b v1 75% / a v3 25%"
    assert split_label([]) == "no traffic"


def test_a_deploy_sends_everything_to_one_version_and_carries_the_revision_it_saw() -> None:
    preview = preview_deploy(record((1, 80), (2, 20), revision=7), "churn", "m", 3)
    assert (preview.routes_before, preview.routes_after) == ("m v1 80% / v2 20%", "m v3 100%")
    assert preview.expected_revision == 7
    assert preview.changes_traffic
    created = preview_deploy(None, "new", "m", 1)
    assert created.routes_before == "(no endpoint)"
    assert created.expected_revision is None
    assert "creates the endpoint" in created.text()


@pytest.mark.parametrize(
    ("strategy", "after"),
    [("canary", "m v1 95% / v2 5%"), ("blue_green", "m v2 100%"), ("shadow", "m v1 100%")],
)
def test_a_rollout_start_shows_its_first_traffic_change(strategy: str, after: str) -> None:
    preview = preview_rollout_start(record((1, 100)), "m", 2, strategy=strategy)
    assert preview.routes_before == "m v1 100%"
    assert preview.routes_after == after
    if strategy == "shadow":
        assert not preview.changes_traffic
        assert "(unchanged)" in preview.text()


def test_canary_steps_chosen_on_the_page_are_the_ones_previewed() -> None:
    preview = preview_rollout_start(record((1, 100)), "m", 2, step_weights=[50])
    assert preview.routes_after == "m v1 50% / v2 50%"
    assert "50% → 100%" in preview.detail


def test_promote_and_abort_end_on_one_version_pause_changes_nothing() -> None:
    current = record((1, 90), (2, 10))
    assert preview_rollout_action(current, rollout(), "promote").routes_after == "m v2 100%"
    assert preview_rollout_action(current, rollout(), "abort").routes_after == "m v1 100%"
    paused = preview_rollout_action(current, rollout(), "pause")
    assert not paused.changes_traffic
    with pytest.raises(ValueError, match="unknown rollout action"):
        preview_rollout_action(current, rollout(), "explode")


def test_a_rollback_previews_exactly_the_planners_target() -> None:
    history = [
        revision(3, RevisionCause.PROMOTE, (2, 100)),
        revision(2, RevisionCause.ROLLOUT_STEP, (1, 90), (2, 10)),
        revision(1, RevisionCause.DEPLOY, (1, 100)),
    ]  # newest first, as the API lists it
    preview = preview_rollback(record((2, 100), revision=3), history, set())
    assert (preview.routes_before, preview.routes_after) == ("m v2 100%", "m v1 100%")
    assert preview.expected_revision == 3
    assert preview.to_revision == 1
    assert "skipped revisions 2" in preview.detail


def test_a_rollback_during_a_rollout_aborts_it() -> None:
    history = [
        revision(2, RevisionCause.ROLLOUT_STEP, (1, 90), (2, 10)),
        revision(1, RevisionCause.DEPLOY, (1, 100)),
    ]
    preview = preview_rollback(record((1, 90), (2, 10), revision=2), history, set(), active_rollout=rollout())
    assert preview.routes_after == "m v1 100%"
    assert "aborts rollout r1" in preview.detail


def test_a_rollback_with_nowhere_to_go_or_onto_a_rejected_version_is_refused_before_confirmation() -> None:
    only = [revision(1, RevisionCause.DEPLOY, (1, 100))]
    with pytest.raises(ConflictError):
        preview_rollback(record((1, 100), revision=1), only, set())
    history = [revision(2, RevisionCause.DEPLOY, (2, 100)), revision(1, RevisionCause.DEPLOY, (3, 100))]
    with pytest.raises(ConflictError, match="rejected"):
        preview_rollback(record((2, 100), revision=2), history, {("m", 3)}, to_revision=1)
