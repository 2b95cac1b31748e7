"""A/B experiments end to end (issue 13): a real control plane, router and replica processes, users
sticky by id through the router, assignment read from the real prediction log, outcomes fed back by
unit and by request id, the decision taken by the engine, and the winner promoted through a rollout."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.serving.conftest import World, oip_columns, wait_until
from workbench.demo.dataset import generate_churn
from workbench.demo.experiment import OFFER_MARGIN, Customers, experiment_spec, wait_for_assignment
from workbench.errors import BadRequestError, ConflictError, NotFoundError, ValidationError
from workbench.rollouts.phases import Phase

CUSTOMERS = 3000


def _spec(name: str, endpoint: str, **changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "endpoint": endpoint,
        "variants": [
            {"name": "control", "model": "churn", "version": 1, "weight": 50},
            {"name": "treatment", "model": "churn", "version": 2, "weight": 50},
        ],
        "unit": "key",
        "primary": {"name": "converted", "kind": "binary"},
        "guardrails": [{"name": "latency-ms", "kind": "continuous", "better": "lower", "margin": 50}],
        "min_units": 200,
    }
    spec.update(changes)
    return spec


def _routes(world: World, endpoint: str) -> list[tuple[int, float]]:
    return [(r.version, r.weight) for r in world.client.get_endpoint(endpoint).spec.routes if r.weight > 0]


def _assigned(world: World, name: str) -> int:
    return sum(world.client.experiment(name)["assigned"].values())


def test_sticky_customers_and_their_outcomes_find_the_better_model_which_is_promoted_through_a_rollout(
    world: World,
) -> None:
    """The demo's experiment (workbench.demo.experiment): customers scored above 0.5 get a retention offer,
    which keeps a leaving customer with probability 0.8. v2 finds more of the leavers than v1 (recall
    0.52 against 0.20 on this world), so it keeps more customers; nothing tells the experiment so."""
    client = world.client
    client.deploy("shop", "models:/churn/1")
    started = client.create_experiment(
        experiment_spec("checkout", "shop", "churn", 1, 2), start=True, reason="does v2 keep more customers?"
    )
    assert started.state.value == "running"
    assert _routes(world, "shop") == [(1, 50.0), (2, 50.0)]
    assert client.get_endpoint("shop").spec.sticky_salt == "experiment:checkout"

    customers = Customers(world.router, "shop", generate_churn(CUSTOMERS, seed=11))
    customers.visit(revisit_every=5)
    assert customers.switched == 0  # a second visit saw the same version: sticky by customer id
    treated = customers.shares()[2]
    assert 0.45 * CUSTOMERS < treated < 0.55 * CUSTOMERS  # half of the customers, not of the requests

    # Assignment comes from the prediction log: every customer, once, with the variant that served them.
    assigned = wait_for_assignment(world.client, "checkout", CUSTOMERS)
    assert assigned == {"control": CUSTOMERS - treated, "treatment": treated}
    # Requests that assign nobody are counted, not lost: two without a routing key.
    for _ in range(2):
        httpx.post(f"{world.router}/v2/models/shop/infer", json=oip_columns(world.frame.head(1)), timeout=30)
    wait_until(
        lambda: client.experiment("checkout")["unassigned_requests"] == {"without_key": 2, "elsewhere": 0}
    )
    assert sum(client.experiment("checkout")["assigned"].values()) == CUSTOMERS

    outcomes = customers.outcomes()  # half by customer id, half by the request id that exposed them
    joined = client.outcomes("checkout", outcomes)
    assert (joined["joined"], joined["repeated"], joined["unassigned"]) == (2 * CUSTOMERS, 0, 0)
    # A retried webhook is joined once; a unit the experiment never saw is named, not counted.
    again = client.outcomes(
        "checkout", [*outcomes[:40], {"unit": "nobody", "metric": "retained", "value": 1.0}]
    )
    assert (again["joined"], again["repeated"], again["unassigned_units"]) == (0, 40, ["nobody"])

    # The engine's look: a winner, with its evidence; auto_stop concludes it and gives v1 its traffic back.
    decision = world.plane.experiments.look_now("checkout")
    assert (decision["verdict"], decision["winner"]) == ("winner", "treatment"), decision["reason"]
    (retained,) = decision["primary"]
    assert retained["lower"] > 0
    assert retained["n_variant"] == treated
    (offered,) = decision["guardrails"]
    assert 0 < offered["estimate"] < OFFER_MARGIN  # v2 offers more, within what the guardrail tolerates
    assert decision["sample_ratio"]["alarm"] is False
    concluded = client.experiment("checkout")["experiment"]
    assert concluded["state"] == "concluded"
    assert concluded["decision"]["winner"] == "treatment"
    assert _routes(world, "shop") == [(1, 100.0)]
    assert client.get_endpoint("shop").spec.sticky_salt is None
    looks = client.experiment_looks("checkout")
    assert looks[-1]["decision"]["verdict"] == "winner"
    assert looks[-1]["units"] == CUSTOMERS

    # Promote: one call starts a blue-green of the winner, which switches and completes.
    promoted = client.promote_experiment(
        "checkout",
        strategy="blue_green",
        rollout={"blue_green": {"keep_warm_s": 0, "baseline_window_s": 120}, "tick_s": 0.5},
    )
    rollout = promoted["rollout"]
    assert (rollout["strategy"], rollout["candidate_version"]) == ("blue_green", 2)
    deadline = time.monotonic() + 120
    record = world.plane.rollouts.advance(rollout["id"])
    while not record.phase.is_terminal and time.monotonic() < deadline:
        time.sleep(0.5)
        record = world.plane.rollouts.advance(rollout["id"])
    assert record.phase == Phase.SUCCEEDED, record.phase
    assert _routes(world, "shop") == [(2, 100.0)]

    # The audit log tells the story in order.
    story = [
        e.action
        for e in reversed(client.audit(limit=500))
        if e.target in ("experiment:checkout", "endpoint:shop", f"rollout:{rollout['id']}")
    ]
    milestones = [
        "experiment.create",
        "experiment.start",
        "experiment.outcomes",
        "experiment.decision",
        "experiment.conclude",
        "rollout.start",
        "experiment.promote",
        "rollout.promote",
    ]
    positions = [story.index(action) for action in milestones]
    assert positions == sorted(positions), story
    decided = client.audit(action="experiment.decision", target="experiment:checkout")
    assert decided[0].actor == "experiment-engine"
    assert decided[0].after["winner"] == "treatment"


def test_the_lifecycle_owns_the_traffic_and_bad_input_is_refused(world: World) -> None:
    client = world.client
    client.deploy("life", "models:/churn/1")

    # Bad definitions: an unknown endpoint, a version that is not registered.
    with pytest.raises(NotFoundError, match="nowhere"):
        client.create_experiment(_spec("lost", "nowhere"))
    bad = _spec("ghost", "life")
    bad["variants"][1]["version"] = 99
    with pytest.raises(ValidationError, match="treatment"):
        client.create_experiment(bad)

    client.create_experiment(_spec("life-a", "life", unit="request"))
    assert _routes(world, "life") == [(1, 100.0)]  # a draft has no traffic
    with pytest.raises(ConflictError, match="has not started"):
        client.outcomes("life-a", [{"unit": "u", "metric": "converted", "value": 1}])
    client.experiment_action("life-a", "start")
    assert _routes(world, "life") == [(1, 50.0), (2, 50.0)]

    # One experiment at a time per endpoint, and no rollout under it.
    client.create_experiment(_spec("life-b", "life"))
    with pytest.raises(ConflictError, match="life-a"):
        client.experiment_action("life-b", "start")
    with pytest.raises(ConflictError, match="life-a"):
        client.start_rollout({"endpoint": "life", "candidate": "models:/churn/2"})

    # Bad outcomes: an unknown metric, a request never made, both references at once.
    with pytest.raises(ValidationError, match="revenue"):
        client.outcomes("life-a", [{"unit": "u", "metric": "revenue", "value": 1}])
    with pytest.raises(NotFoundError, match="prediction log"):
        client.outcomes("life-a", [{"request_id": "never-made", "metric": "converted", "value": 1}])
    with pytest.raises(ValidationError):
        client.outcomes("life-a", [{"unit": "u", "request_id": "r", "metric": "converted", "value": 1}])
    with pytest.raises(ValidationError, match="covariate"):
        client.outcomes("life-a", [{"unit": "u", "metric": "converted", "value": 1, "covariate": 3.0}])
    # The feedback API takes outcomes too (joined to the endpoint's experiment); labels stay as they were.
    answer = httpx.post(
        f"{world.router}/v2/models/life/infer", json=oip_columns(world.frame.head(1)), timeout=30
    )
    request_id = answer.headers["x-request-id"]
    wait_until(lambda: _assigned(world, "life-a") >= 1, timeout=30)
    fed = client.feedback("life", outcomes=[{"request_id": request_id, "metric": "converted", "value": 1}])
    assert fed["outcomes"]["joined"] == 1
    # A routing key longer than a unit can be is refused by the router.
    too_long = httpx.post(
        f"{world.router}/v2/models/life/infer",
        json=oip_columns(world.frame.head(1)),
        headers={"x-workbench-routing-key": "k" * 201},
        timeout=30,
    )
    assert too_long.status_code == 400
    assert "routing-key" in too_long.json()["error"]  # OIP errors are {"error": message}

    # Pause gives the baseline its routes back; resume takes them again.
    assert client.experiment_action("life-a", "pause", reason="checking").state.value == "paused"
    assert _routes(world, "life") == [(1, 100.0)]
    client.experiment_action("life-a", "resume")
    assert _routes(world, "life") == [(1, 50.0), (2, 50.0)]

    # A rollback during the experiment pauses it and restores the baseline.
    client.rollback("life", reason="latency alert")
    assert client.experiment("life-a")["experiment"]["state"] == "paused"
    assert _routes(world, "life") == [(1, 100.0)]

    # Traffic changed outside the experiment: the engine pauses it and leaves the routes alone.
    client.experiment_action("life-a", "resume")
    client.update_endpoint("life", "models:/churn/2", reason="by hand")
    world.plane.experiments.tick(time.monotonic() + 3600)
    state = client.experiment("life-a")["experiment"]["state"]
    assert state == "paused"
    assert _routes(world, "life") == [(2, 100.0)]
    paused_by = client.audit(action="experiment.pause", target="experiment:life-a")[0]
    assert paused_by.actor == "experiment-engine"
    assert "outside the experiment" in (paused_by.reason or "")

    # Ending: conclude once; no winner means nothing to promote; a concluded one does not restart.
    client.experiment_action("life-a", "conclude")
    with pytest.raises(ConflictError, match="already concluded"):
        client.experiment_action("life-a", "conclude")
    with pytest.raises(ConflictError, match="no winner"):
        client.promote_experiment("life-a")
    with pytest.raises(ConflictError, match="concluded"):
        client.experiment_action("life-a", "start")
    with pytest.raises(NotFoundError, match="unknown experiment action"):
        client.experiment_action("life-b", "explode")
    with pytest.raises((BadRequestError, ValidationError, NotFoundError)):
        client.experiment("Not A Name")
    # Deleting the endpoint concludes what was left on it (here the draft), audited with the reason.
    client.delete_endpoint("life", reason="done")
    assert client.experiment("life-b")["experiment"]["state"] == "concluded"
    ended = client.audit(action="experiment.conclude", target="experiment:life-b")[0]
    assert "was deleted" in (ended.reason or "")
