"""The actions every UI offers, checked once: what each refuses before anything is sent."""

from __future__ import annotations

import pytest

from tests.unit.test_ui_plans import record, revision, rollout
from workbench.errors import ConflictError, NotFoundError, ValidationError
from workbench.revisions.model import RevisionCause
from workbench.ui import intents
from workbench.ui.intents import EndpointView


def test_steps_are_parsed_and_bad_ones_refused_with_what_to_type() -> None:
    assert intents.parse_steps("5, 25; 50") == (5.0, 25.0, 50.0)
    for bad in ("", "5, x", "50, 25", "0, 10", "10, 100"):
        with pytest.raises(ValidationError, match="canary steps"):
            intents.parse_steps(bad)


def test_a_rollout_preview_follows_its_steps_and_refuses_a_second_rollout() -> None:
    view = EndpointView(record((1, 100.0)))
    preview = intents.preview(intents.StartRollout("churn", "m", 2, steps=(10.0, 40.0)), view)
    assert preview.routes_after == "m v1 90% / v2 10%"
    assert "10% → 40% → 100%" in preview.detail
    assert preview.expected_revision == 3
    busy = EndpointView(record((1, 100.0)), rollout=rollout())
    with pytest.raises(ConflictError, match="already has an active rollout"):
        intents.preview(intents.StartRollout("churn", "m", 2), busy)


def test_bad_rollout_input_is_refused_before_a_preview() -> None:
    view = EndpointView(record((1, 100.0)))
    with pytest.raises(ValidationError, match="unknown strategy"):
        intents.preview(intents.StartRollout("churn", "m", 2, strategy="big-bang"), view)
    with pytest.raises(ValidationError, match="invalid rollout"):
        intents.preview(intents.StartRollout("churn", "m", 2, options={"tick_s": -1}), view)


def test_actions_on_a_missing_endpoint_or_rollout_say_so() -> None:
    gone = EndpointView(record=None)
    for intent in (
        intents.StartRollout("churn", "m", 2),
        intents.RolloutAction("churn", "pause"),
        intents.Rollback("churn"),
    ):
        with pytest.raises(NotFoundError, match="does not exist"):
            intents.preview(intent, gone)
    # a deploy creates the endpoint
    assert intents.preview(intents.Deploy("churn", "m", 1), gone).routes_before == "(no endpoint)"
    with pytest.raises(ConflictError, match="no active rollout to pause"):
        intents.preview(intents.RolloutAction("churn", "pause"), EndpointView(record((1, 100.0))))
    with pytest.raises(ValidationError, match="unknown rollout action"):
        intents.preview(
            intents.RolloutAction("churn", "explode"), EndpointView(record((1, 100.0)), rollout())
        )


def test_a_rollback_is_previewed_by_the_control_planes_planner() -> None:
    history = [
        revision(2, RevisionCause.DEPLOY, (2, 100.0)),
        revision(1, RevisionCause.DEPLOY, (1, 100.0)),
    ]
    view = EndpointView(record((2, 100.0), revision=2), history=history)
    preview = intents.preview(intents.Rollback("churn"), view)
    assert (preview.routes_before, preview.routes_after) == ("m v2 100%", "m v1 100%")
    with pytest.raises(ConflictError):  # v1 was rejected on this endpoint: refused without force
        intents.preview(
            intents.Rollback("churn"), EndpointView(view.record, history=history, rejected={("m", 1)})
        )
