"""The notebook widgets driven in-process, as a person would (choose values, click), against a real
control plane with real replicas: what they preview, what they change through the API, what they
say when the control plane refuses."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.serving.conftest import World, wait_until
from workbench.client import Client
from workbench.demo.dataset import FEATURES
from workbench.errors import NotFoundError
from workbench.rollouts.phases import Phase
from workbench.ui.widgets import DeployWidget, EndpointCard, RolloutControl
from workbench.ui.widgets._render import sparkline, split_bar
from workbench.ui.widgets.rollout import TARGETS, allowed

ACTOR = "widget-user"
SHORT_CANARY = {"steps": [{"weight": 50, "min_duration_s": 60}], "tick_s": 0.5, "step_timeout_s": 120}


@pytest.fixture
def client(world: World) -> Iterator[Client]:
    """A client of its own, with an actor nobody else uses: the audit log must name it."""
    with Client(world.api_url, settings=world.settings, actor=ACTOR) as c:
        yield c


def routes(world: World, endpoint: str) -> list[tuple[int, float]]:
    return [(r.version, r.weight) for r in world.client.get_endpoint(endpoint).spec.routes]


def choose(widget: DeployWidget, model: str, version: str, endpoint: str, strategy: str = "deploy") -> None:
    widget.model.value = model
    widget.version.value = version
    widget.endpoint.value = endpoint
    widget.strategy.value = strategy


def test_deploy_widget_previews_then_deploys_as_the_clients_actor(world: World, client: Client) -> None:
    widget = DeployWidget(client)
    assert "churn" in widget.model.options
    assert "scorer" in widget.model.options
    choose(widget, "churn", "1", "wid-deploy")
    assert widget.version.value == "1"
    assert "@champion" not in [value for _, value in widget.version.options]  # nothing is champion yet

    widget.start_button.click()
    preview = widget.confirmation.pending
    assert preview is not None
    assert "(no endpoint) → churn v1 100%" in widget.confirmation.preview_html.value
    assert "creates the endpoint" in widget.confirmation.preview_html.value
    with pytest.raises(NotFoundError):  # a preview changes nothing
        world.client.get_endpoint("wid-deploy")

    disabled: list[bool] = []
    widget.start_button.observe(lambda change: disabled.append(change.new), names="disabled")
    widget.confirmation.confirm_button.click()
    assert disabled == [True, False], "Start must be blocked while the deploy runs"
    assert "deployed models:/churn/1 on wid-deploy" in widget.confirmation.outcome.value
    assert widget.confirmation.pending is None
    assert routes(world, "wid-deploy") == [(1, 100.0)]
    assert "wid-deploy" in widget.endpoint.options
    event = world.client.audit(target="endpoint:wid-deploy", action="endpoint.deploy")[0]
    assert event.actor == ACTOR

    # The next version on the same endpoint: previewed from the revision just read, and cancellable.
    choose(widget, "churn", "2", "wid-deploy")
    preview = widget.start()
    assert preview is not None
    assert preview.expected_revision == 1
    assert "churn v1 100% → churn v2 100%" in widget.confirmation.preview_html.value
    widget.confirmation.cancel_button.click()
    assert "nothing was changed" in widget.confirmation.outcome.value
    assert routes(world, "wid-deploy") == [(1, 100.0)]
    widget.close()


def test_a_canary_from_the_deploy_widget_is_steered_by_rollout_control(world: World, client: Client) -> None:
    world.client.deploy("wid-canary", "models:/churn/1")
    control = RolloutControl(client, "wid-canary")
    assert "no active rollout" in control.status.value
    assert all(control.buttons[a].disabled for a in ("promote", "pause", "resume", "abort"))
    assert not control.buttons["rollback"].disabled
    control.buttons["rollback"].click()  # one revision only: nowhere to roll back to, and it says so
    assert control.confirmation.pending is None
    assert "Conflict (409)" in control.confirmation.outcome.value

    deploy = DeployWidget(client, "wid-canary", rollout_options=SHORT_CANARY)
    deploy.on_change(lambda _: control.refresh())
    choose(deploy, "churn", "2", "wid-canary", "canary")
    deploy.start_button.click()
    assert "churn v1 100% → churn v1 50% / v2 50%" in deploy.confirmation.preview_html.value
    assert "canary steps 50% → 100%" in deploy.confirmation.preview_html.value
    deploy.confirmation.confirm_button.click()
    assert "started canary rollout" in deploy.confirmation.outcome.value, deploy.confirmation.outcome.value
    assert routes(world, "wid-canary") == [(1, 50.0), (2, 50.0)]

    # RolloutControl saw it through the listener, without a refresh of its own.
    assert control.active is not None
    assert control.active.phase == Phase.PROGRESSING
    assert "step 1/2" in control.status.value
    assert "churn v1 50% / v2 50%" in control.status.value
    assert (control.progress.value, control.progress.max) == (1, 2)
    enabled = {a for a, b in control.buttons.items() if not b.disabled}
    assert enabled == {"promote", "pause", "abort", "rollback"}

    # A change made elsewhere (the API) shows up by itself while auto-refresh runs.
    control.auto_refresh(0.1)
    world.client.rollout_action(control.active.id, "pause", reason="someone else")
    wait_until(lambda: control.rollout is not None and control.rollout.phase == Phase.PAUSED, timeout=10)
    wait_until(lambda: not control.buttons["resume"].disabled, timeout=10)
    assert control.buttons["pause"].disabled
    control.stop()
    assert not control.refreshing

    control.reason.value = "v2 is not ready"
    control.buttons["rollback"].click()
    text = control.confirmation.preview_html.value
    assert "roll back on wid-canary" in text
    assert "churn v1 50% / v2 50% → churn v1 100%" in text
    assert "aborts rollout" in text
    assert routes(world, "wid-canary") == [(1, 50.0), (2, 50.0)]  # not before Confirm
    control.confirmation.confirm_button.click()
    assert "aborted rollout" in control.confirmation.outcome.value, control.confirmation.outcome.value
    assert routes(world, "wid-canary") == [(1, 100.0)]
    assert control.active is None
    assert control.rollout is not None
    assert control.rollout.phase == Phase.ROLLED_BACK
    assert "no active rollout; the last one" in control.status.value
    assert all(control.buttons[a].disabled for a in ("promote", "pause", "resume", "abort"))
    rollback = world.client.audit(target="endpoint:wid-canary", action="rollout.rollback")[0]
    assert rollback.actor == ACTOR
    assert "v2 is not ready" in (rollback.reason or "")
    control.close()
    deploy.close()


def test_abort_from_rollout_control(world: World, client: Client) -> None:
    world.client.deploy("wid-abort", "models:/churn/1")
    world.client.start_rollout({"endpoint": "wid-abort", "candidate": "models:/churn/2", **SHORT_CANARY})
    control = RolloutControl(client, "wid-abort")
    preview = control.ask("abort")
    assert preview is not None
    assert preview.routes_after == "churn v1 100%"
    control.confirmation.confirm_button.click()
    assert not control.confirmation.failed
    assert control.confirmation.last_outcome.endswith("is now rolled back")
    assert routes(world, "wid-abort") == [(1, 100.0)]
    assert world.client.audit(target="endpoint:wid-abort", action="rollout.rollback")[0].actor == ACTOR
    control.close()


def test_a_stale_confirmation_is_refused_with_a_message_and_changes_nothing(
    world: World, client: Client
) -> None:
    world.client.deploy("wid-stale", "models:/churn/1")
    widget = DeployWidget(client, rollout_options=SHORT_CANARY)

    # Moved on meanwhile: someone else changed the endpoint between the preview and Confirm.
    choose(widget, "churn", "2", "wid-stale")
    assert widget.start() is not None
    moved = world.client.deploy("wid-stale", "models:/churn/1", latency_objective_ms=250)
    widget.confirmation.confirm_button.click()
    outcome = widget.confirmation.outcome.value
    assert "Conflict (409)" in outcome
    assert "changed meanwhile" in outcome
    assert "#b00020" in outcome
    assert "Traceback" not in outcome
    assert world.client.get_endpoint("wid-stale").revision == moved.revision
    assert routes(world, "wid-stale") == [(1, 100.0)]

    # The same for a rollout, whose API takes no expected revision: the widget checks it itself.
    choose(widget, "churn", "2", "wid-stale", "canary")
    assert widget.start() is not None
    moved = world.client.deploy("wid-stale", "models:/churn/1", latency_objective_ms=300)
    widget.confirmation.confirm_button.click()
    assert "Conflict (409)" in widget.confirmation.outcome.value
    assert world.client.rollouts(endpoint="wid-stale") == []

    # Deleted meanwhile: a deploy confirmed against it must not create it again.
    choose(widget, "churn", "2", "wid-stale")
    assert widget.start() is not None
    world.client.delete_endpoint("wid-stale")
    widget.confirmation.confirm_button.click()
    assert "Not found (404)" in widget.confirmation.outcome.value
    assert widget.confirmation.failed
    with pytest.raises(NotFoundError):
        world.client.get_endpoint("wid-stale")

    # A refresh keeps what is chosen (new options would reset a dropdown to its first entry).
    widget.model.value = "scorer"
    widget.refresh()
    assert widget.model.value == "scorer"
    assert widget.version.value == "1"
    assert "wid-stale" not in widget.endpoint.options

    # Refused before any preview: a rollout needs an endpoint; a name must be valid.
    choose(widget, "churn", "2", "wid-stale", "canary")
    assert widget.start() is None
    assert "deploy first" in widget.confirmation.outcome.value
    choose(widget, "churn", "2", "Not A Name")
    assert widget.start() is None
    assert "Invalid (422)" in widget.confirmation.outcome.value
    assert widget.confirmation.pending is None
    widget.close()


def test_endpoint_card_shows_split_health_and_a_latency_sparkline(world: World, client: Client) -> None:
    world.client.deploy("wid-card", "models:/churn/1")
    card = EndpointCard(client, "wid-card", window_s=60, step_s=1)
    assert "v1 100%" in card.routes.value
    assert "healthy" in card.health.value
    assert "v1: 1 ready" in card.health.value
    assert "no live traffic" in card.latency.value

    for _ in range(3):  # live traffic (not probes, which the prediction log leaves out) over 3 steps
        world.client.predict("wid-card", world.frame[list(FEATURES)].head(20), probe=False)
        time.sleep(1.05)

    def drawn() -> bool:
        card.refresh()
        return len([v for v in card.latency_p95_ms if v is not None]) >= 2

    wait_until(drawn, timeout=15, every=0.5)
    assert "<polyline" in card.latency.value
    assert "ms" in card.latency.value
    assert card.requests_per_s is not None
    assert "req/s" in card.latency.value
    card.close()

    missing = EndpointCard(client, "wid-none")
    assert "Not found (404)" in missing.routes.value
    missing.close()


def test_auto_refresh_leaks_no_thread(client: Client) -> None:
    before = set(threading.enumerate())
    control = RolloutControl(client, "wid-nothing")
    assert "does not exist" in control.status.value
    control.auto_refresh(0.01)
    control.auto_refresh(0.01)  # restarting replaces the thread, never adds one
    assert control.refreshing
    assert len(set(threading.enumerate()) - before) == 1
    control.close()
    assert not control.refreshing
    assert set(threading.enumerate()) - before == set()


def test_pictures_are_escaped_and_drawn_from_the_data() -> None:
    bar = split_bar([("<churn>", 1, 70.0), ("<churn>", 2, 30.0)])
    assert "<churn>" not in bar
    assert "&lt;churn&gt;" in bar
    assert "width:70%" in bar
    assert "width:30%" in bar
    svg = sparkline([1.0, 2.0, None, 3.0])
    assert svg.count("<polyline") == 1
    assert svg.count("<circle") == 1
    assert sparkline([None, None]) == ""


def test_rollout_buttons_follow_the_state_machine() -> None:
    enabled = {phase: [a for a in TARGETS if allowed(a, phase)] for phase in Phase}
    assert enabled[Phase.PROGRESSING] == ["promote", "pause", "abort"]
    assert enabled[Phase.PAUSED] == enabled[Phase.INCONCLUSIVE] == ["promote", "resume", "abort"]
    assert enabled[Phase.PROMOTING] == ["abort"]
    assert all(not enabled[phase] for phase in Phase if phase.is_terminal)
