"""The actions every UI offers, checked once: what each refuses before anything is sent, what its
preview says, and (for an A/B experiment's) what is sent when it is confirmed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_ui_plans import T0, record, revision, rollout
from workbench.errors import ConflictError, NotFoundError, ValidationError
from workbench.records.endpoints import EndpointRecord
from workbench.records.experiments import ExperimentRecord, ExperimentState
from workbench.revisions.model import RevisionCause
from workbench.specs.experiment import ExperimentSpec
from workbench.ui import intents
from workbench.ui.intents import EndpointView, ExperimentAction, ExperimentView


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


# --------------------------------------------------------------------------------- A/B experiments
RUNNING, PAUSED = ExperimentState.RUNNING, ExperimentState.PAUSED
CONCLUDED, DRAFT = ExperimentState.CONCLUDED, ExperimentState.DRAFT
SPLIT = ((1, 50.0), (2, 50.0))


def _decision(winner: str | None = None) -> dict[str, Any]:
    if winner:
        return {"verdict": "winner", "reason": "treatment is better on retained", "winner": winner}
    return {"verdict": "continue", "reason": "no variant is established yet", "winner": None}


def _experiment(
    state: ExperimentState = RUNNING, decision: dict[str, Any] | None = None, *, unit: str = "key"
) -> ExperimentRecord:
    spec = ExperimentSpec.model_validate(
        {
            "name": "offer",
            "endpoint": "churn",
            "unit": unit,
            "variants": [
                {"name": "control", "model": "m", "version": 1, "weight": 50},
                {"name": "treatment", "model": "m", "version": 2, "weight": 50},
            ],
            "primary": {"name": "retained", "kind": "binary"},
        }
    )
    return ExperimentRecord(
        name="offer",
        endpoint="churn",
        spec=spec,
        state=state,
        decision=decision,
        actor="alice",
        created_at=T0,
        started_at=None if state == DRAFT else T0,
        ended_at=T0 if state == CONCLUDED else None,
        revision=4,
        baseline=[{"model": "m", "version": 1, "weight": 100.0}],
    )


def _view(
    state: ExperimentState = RUNNING,
    *routes: tuple[int, float],
    winner: str | None = None,
    fresh: bool = False,
) -> ExperimentView:
    decision = _decision(winner)
    return ExperimentView(_experiment(state, decision), record(*(routes or SPLIT)), decision, fresh=fresh)


def _preview(view: ExperimentView, action: str, strategy: str = "canary") -> Any:
    return intents.preview(intents.pin(ExperimentAction("churn", action, strategy=strategy), view), view)


def test_pause_gives_the_routes_it_found_back_and_resume_takes_the_variants_again() -> None:
    pause = _preview(_view(RUNNING), "pause")
    assert (pause.action, pause.endpoint) == ("pause experiment offer", "churn")
    assert (pause.routes_before, pause.routes_after) == ("m v1 50% / v2 50%", "m v1 100%")
    assert "outcomes of assigned units are still joined" in pause.detail
    resume = _preview(_view(PAUSED, (1, 100.0)), "resume")
    assert (resume.routes_before, resume.routes_after) == ("m v1 100%", "m v1 50% / v2 50%")
    assert resume.expected_revision == 4  # the experiment's: a resume is refused if it moved meanwhile
    assert "sticky per routing key" in resume.detail
    by_request = ExperimentView(_experiment(PAUSED, unit="request"), record((1, 100.0)))
    assert "sticky per request" in _preview(by_request, "resume").detail


def test_conclude_ends_it_with_a_last_look_and_a_paused_one_moves_no_traffic() -> None:
    running = _preview(_view(RUNNING), "conclude")
    assert running.routes_after == "m v1 100%"
    assert "the latest: continue: no variant is established yet" in running.detail
    assert "cannot be resumed" in running.detail
    assert not _preview(_view(PAUSED, (1, 100.0)), "conclude").changes_traffic
    before_a_look = ExperimentView(_experiment(RUNNING), record(*SPLIT))
    assert "(the latest: no look yet)" in _preview(before_a_look, "conclude").detail


@pytest.mark.parametrize(
    ("state", "action", "refusal"),
    [
        (PAUSED, "pause", "is paused: only a running one pauses"),
        (RUNNING, "resume", "is running: only a paused one resumes"),
        (CONCLUDED, "conclude", "is concluded: it cannot be concluded"),
        (DRAFT, "promote", "is a draft: it has no results to promote"),
    ],
)
def test_an_action_the_experiments_state_does_not_allow_is_refused_with_why(
    state: ExperimentState, action: str, refusal: str
) -> None:
    with pytest.raises(ConflictError, match=refusal):
        _preview(_view(state), action)


def test_promote_previews_the_winners_canary_or_blue_green_and_pins_the_winner_shown() -> None:
    view = _view(RUNNING, winner="treatment")
    pinned = intents.pin(ExperimentAction("churn", "promote"), view)
    assert pinned == ExperimentAction("churn", "promote", "offer", "treatment")
    assert intents.pin(ExperimentAction("churn", "pause"), view) == ExperimentAction(
        "churn", "pause", "offer"
    )
    canary = intents.preview(pinned, view)
    assert canary.action == "promote treatment of experiment offer (canary)"
    # from the routes the running experiment gives back, the canary's first step
    assert (canary.routes_before, canary.routes_after) == ("m v1 50% / v2 50%", "m v1 95% / v2 5%")
    assert "treatment (m v2) won: treatment is better on retained" in canary.detail
    assert "concludes it (m v1 100%), then starts a canary rollout of it: 5% → 25% → 50% → 100%" in (
        canary.detail
    )
    blue_green = _preview(view, "promote", "blue_green")
    assert blue_green.routes_after == "m v2 100%"
    assert "blue-green switch" in blue_green.detail
    ended = _preview(_view(CONCLUDED, (1, 100.0), winner="treatment"), "promote")
    assert "concludes it" not in ended.detail


def test_a_paused_or_concluded_experiments_winner_is_rolled_out_from_what_the_endpoint_serves() -> None:
    # the baseline (v1) is what the experiment found; since it ended, v3 took a share of the traffic
    ended = _preview(_view(CONCLUDED, (1, 80.0), (3, 20.0), winner="treatment"), "promote")
    assert ended.routes_after == "m v1 76% / v3 19% / v2 5%"


def test_promote_without_a_winner_is_left_to_the_control_plane_unless_the_look_is_fresh_or_final() -> None:
    stale = _preview(_view(RUNNING), "promote")  # a page's latest look: maybe seconds old
    assert not stale.changes_traffic
    assert "no winner (continue: no variant is established yet)" in stale.detail
    assert "the control plane takes a fresh look and refuses unless it finds one" in stale.detail
    assert intents.pin(ExperimentAction("churn", "promote"), _view(RUNNING)).variant is None
    for view in (_view(RUNNING, fresh=True), _view(CONCLUDED)):
        with pytest.raises(ConflictError, match="has no winner to promote") as refused:
            _preview(view, "promote")
        assert "no variant is established yet" in refused.value.message


def test_a_bad_experiment_action_is_refused_before_anything_is_read() -> None:
    view = _view(RUNNING)
    with pytest.raises(ValidationError, match="unknown experiment action"):
        intents.preview(ExperimentAction("churn", "explode", "offer"), view)
    with pytest.raises(ValidationError, match="unknown strategy 'shadow' to promote"):
        intents.preview(ExperimentAction("churn", "promote", "offer", strategy="shadow"), view)
    with pytest.raises(ValidationError, match="runs on 'churn', not on 'shop'"):
        intents.preview(ExperimentAction("shop", "pause"), view)
    with pytest.raises(ValidationError, match="has no variant 'nobody'"):
        intents.preview(ExperimentAction("churn", "promote", "offer", "nobody"), view)
    with pytest.raises(TypeError):
        intents.preview(ExperimentAction("churn", "pause"), EndpointView(record(*SPLIT)))
    with pytest.raises(TypeError):
        intents.preview(intents.RolloutAction("churn", "pause"), view)
    with pytest.raises(ValidationError, match="unknown experiment action"):
        intents.read_experiment_view(_Client(_experiment()), ExperimentAction("churn", "explode"))


class _Client:
    """The calls an experiment action makes, answered from one experiment on one endpoint."""

    def __init__(self, *experiments: ExperimentRecord, fresh: dict[str, Any] | None = None) -> None:
        self.found = list(experiments)  # oldest first, as the API lists them
        self.fresh = fresh if fresh is not None else _decision()
        self.endpoint: EndpointRecord = record(*SPLIT)
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def experiments(self, *, endpoint: str | None = None) -> list[ExperimentRecord]:
        return [e for e in self.found if e.endpoint == endpoint]

    def experiment(self, name: str) -> dict[str, Any]:
        [found] = [e for e in self.found if e.name == name]
        return {"experiment": found.model_dump(mode="json"), "decision": self.fresh}

    def get_endpoint(self, name: str) -> EndpointRecord:
        assert name == "churn"
        return self.endpoint

    def experiment_action(self, name: str, action: str, **sent: Any) -> ExperimentRecord:
        self.calls.append((action, name, sent))
        state = {"pause": PAUSED, "resume": RUNNING, "conclude": CONCLUDED}[action]
        self.endpoint = record((1, 100.0)) if action != "resume" else record(*SPLIT)
        decision = _decision() if action == "conclude" else None
        return self.found[-1].model_copy(update={"state": state, "decision": decision})

    def promote_experiment(self, name: str, **sent: Any) -> dict[str, Any]:
        self.calls.append(("promote", name, sent))
        rollout = {"id": "r9", "candidate_model": "m", "candidate_version": 2, "phase": "pending"}
        return {"experiment": {}, "rollout": rollout}


def _renamed(experiment: ExperimentRecord, name: str) -> ExperimentRecord:
    return experiment.model_copy(update={"name": name})


def test_the_experiment_asked_for_else_the_endpoints_active_one_is_read_with_a_look_taken_now() -> None:
    old = _renamed(_experiment(CONCLUDED, _decision("treatment")), "old")
    live = _experiment(PAUSED)
    client = _Client(old, live)
    view = intents.read_experiment_view(client, ExperimentAction("churn", "resume"))
    assert (view.record.name, view.fresh, view.endpoint) == ("offer", True, client.endpoint)
    assert view.decision == client.fresh
    # a concluded experiment is judged by the decision that ended it, not by a new look
    named = intents.read_experiment_view(client, ExperimentAction("churn", "promote", "old"))
    assert named.decision["winner"] == "treatment"
    # to promote, the newest concluded one is found when none is running or paused
    only_ended = _Client(old)
    assert intents.read_experiment_view(only_ended, ExperimentAction("churn", "promote")).record.name == "old"
    with pytest.raises(ConflictError, match="no running or paused experiment to pause"):
        intents.read_experiment_view(only_ended, ExperimentAction("churn", "pause"))


def test_a_confirmed_action_is_sent_as_previewed_and_says_what_the_endpoint_serves_after() -> None:
    client = _Client(_experiment(PAUSED))
    view = intents.read_experiment_view(client, ExperimentAction("churn", "resume"))
    resume = intents.pin(ExperimentAction("churn", "resume"), view)
    outcome = intents.perform(client, resume, intents.preview(resume, view), reason="from the dashboard")
    assert outcome.message == "resumed experiment offer; churn serves m v1 50% / v2 50%"
    # the resume carries the experiment's revision, so a stale confirmation is refused (409)
    assert client.calls == [("resume", "offer", {"reason": "from the dashboard", "expected_revision": 4})]
    client = _Client(_experiment(RUNNING))
    pause = ExperimentAction("churn", "pause", "offer")
    message = intents.perform(client, pause, _preview(_view(RUNNING), "pause"), reason="r").message
    assert message == "paused experiment offer; churn serves m v1 100%"
    assert client.calls[-1] == ("pause", "offer", {"reason": "r", "expected_revision": None})
    conclude = ExperimentAction("churn", "conclude", "offer")
    message = intents.perform(client, conclude, _preview(_view(RUNNING), "conclude"), reason="r").message
    assert message == "concluded experiment offer (continue); churn serves m v1 100%"
    with pytest.raises(ValidationError, match="names no experiment"):
        intents.perform(client, ExperimentAction("churn", "pause"), _preview(_view(RUNNING), "pause"))


def test_a_confirmed_promote_rolls_out_the_winner_shown_or_leaves_it_to_the_control_plane() -> None:
    view = _view(RUNNING, winner="treatment")
    client = _Client(view.record)
    promote = intents.pin(ExperimentAction("churn", "promote", strategy="blue_green"), view)
    outcome = intents.perform(client, promote, intents.preview(promote, view), reason="from JupyterLab")
    assert outcome.message == (
        "promoted treatment of experiment offer: blue-green rollout r9 of m v2 started on churn (pending)"
    )
    [(_, name, sent)] = client.calls
    assert (name, sent["strategy"], sent["variant"]) == ("offer", "blue_green", "treatment")
    assert sent["reason"] == "from JupyterLab: promoting treatment, the winner of experiment offer"
    stale = _view(RUNNING)
    unnamed = intents.pin(ExperimentAction("churn", "promote"), stale)
    message = intents.perform(client, unnamed, intents.preview(unnamed, stale), reason="r").message
    assert message.startswith("promoted the winner of experiment offer: canary rollout r9")
    assert client.calls[-1][2] == {
        "strategy": "canary",
        "variant": None,  # the control plane's fresh look decides, and refuses without a winner
        "reason": "r: promoting the winner of experiment offer",
    }
