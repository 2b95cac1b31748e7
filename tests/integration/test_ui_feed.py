"""One dashboard feed per process: its load on the control plane does not depend on how many pages follow
it, every page gets every update, and a change made elsewhere reaches them through the audit cursor."""

from __future__ import annotations

import time
from pathlib import Path

from workbench.client import Client
from workbench.settings import Settings
from workbench.ui.actions import ActionDesk
from workbench.ui.feed import DashboardFeed, Update
from workbench.ui.models.endpoint import EndpointModel


def _feed(api_url: str, settings: Settings) -> DashboardFeed:
    return DashboardFeed(lambda: Client(api_url, settings=settings, actor="dashboard"), refresh_s=3600)


def test_twenty_followers_cost_the_control_plane_what_one_does(
    api_url: str, settings: Settings, client: Client, model_dir: Path
) -> None:
    client.register_from_path("churn", model_dir, aliases=["champion"])
    client.create_endpoint("churn-api", "models:/churn@champion")
    feed = _feed(api_url, settings)
    first = feed.poll_once()
    assert first is not None
    assert "state" in first.changed
    assert [e.spec.name for e in feed.snapshot.endpoints] == ["churn-api"]

    def calls_for(polls: int) -> int:
        before = feed.requests
        for _ in range(polls):
            feed.poll_once()
        return feed.requests - before

    received: list[list[Update]] = [[]]
    unsubscribe = [feed.subscribe(received[0].append)]
    with_one = calls_for(5)
    for _ in range(19):
        inbox: list[Update] = []
        received.append(inbox)
        unsubscribe.append(feed.subscribe(inbox.append))
    with_twenty = calls_for(5)
    assert with_twenty == with_one
    assert feed.subscribers == 20
    assert all(len(inbox) == 5 for inbox in received[1:])  # every follower got every update

    client.update_endpoint("churn-api", "models:/churn/1", reason="a change made elsewhere")
    update = feed.poll_once()
    assert update is not None
    assert {"audit", "state"} <= update.changed
    assert any(e.action == "endpoint.update" for e in update.audit)
    assert all(inbox[-1] is update for inbox in received)
    for stop in unsubscribe:
        stop()
    assert feed.subscribers == 0
    feed.stop()


def test_an_unreachable_control_plane_is_reported_to_pages_and_the_feed_recovers(
    api_url: str, settings: Settings
) -> None:
    url = ["http://127.0.0.1:9"]  # nothing listens there; then the real control plane comes back
    feed = DashboardFeed(lambda: Client(url[0], settings=settings), refresh_s=3600)
    seen: list[Update] = []
    feed.subscribe(seen.append)
    try:
        assert feed.poll_once() is None
        assert seen
        assert "error" in seen[-1].changed
        assert "cannot reach the control plane" in (feed.snapshot.error or "")
        feed.stop()  # closes the client: the next poll makes a new one
        url[0] = api_url
        recovered = feed.poll_once()
        assert recovered is not None
        assert recovered.snapshot.error is None
    finally:
        feed.stop()


def test_with_no_page_open_the_feed_polls_ten_times_less_and_a_new_page_wakes_it(
    api_url: str, settings: Settings
) -> None:
    feed = _feed(api_url, settings)
    assert feed.interval == feed.idle_every_s == 10.0
    feed._wake.clear()
    unsubscribe = feed.subscribe(lambda update: None)
    assert feed._wake.is_set(), "a page that subscribes must not wait up to idle_every_s for its first poll"
    assert feed.interval == feed.every_s == 1.0
    unsubscribe()
    assert feed.interval == 10.0
    never_slower = DashboardFeed(lambda: Client(api_url, settings=settings), every_s=30.0)
    assert never_slower.interval == 30.0


def test_the_first_page_after_an_idle_spell_draws_the_state_as_it_is_now(
    api_url: str, settings: Settings, client: Client, model_dir: Path
) -> None:
    if "churn" not in {m.name for m in client.list_models()}:
        client.register_from_path("churn", model_dir, aliases=["champion"])
    feed = _feed(api_url, settings)
    feed.start()
    try:
        assert feed.ready.wait(30)
        time.sleep(feed.every_s + 0.2)  # idle: the next poll is up to idle_every_s away
        client.create_endpoint("deployed-while-idle", "models:/churn@champion")
        assert "deployed-while-idle" not in {e.spec.name for e in feed.snapshot.endpoints}
        assert feed.fresh(timeout=30)
        assert "deployed-while-idle" in {e.spec.name for e in feed.snapshot.endpoints}
        assert feed.fresh(timeout=0), "a poll that just happened is fresh: no wait"
    finally:
        feed.stop()
        client.delete_endpoint("deployed-while-idle")


def test_a_page_asked_for_an_endpoint_made_since_the_last_poll_began_shows_that_endpoint(
    api_url: str, settings: Settings, client: Client, model_dir: Path
) -> None:
    if "churn" not in {m.name for m in client.list_models()}:
        client.register_from_path("churn", model_dir, aliases=["champion"])
    client.create_endpoint("shown-first", "models:/churn@champion")
    # Polls 30 s apart unless woken: the one that began just before the endpoint was made still counts as
    # fresh (within every_s), as a poll a second old does for a live page's feed.
    feed = DashboardFeed(lambda: Client(api_url, settings=settings), every_s=30.0, refresh_s=3600)
    feed.start()
    desk = ActionDesk(lambda actor: Client(api_url, settings=settings), user=lambda: "alice")
    try:
        assert feed.ready.wait(30)
        assert feed.fresh(timeout=30, newer=True)
        client.create_endpoint("made-just-now", "models:/churn@champion")
        assert feed.fresh(timeout=0)
        assert "made-just-now" not in {e.spec.name for e in feed.snapshot.endpoints}
        model = EndpointModel(feed, desk, endpoint="made-just-now")
        try:
            assert model.endpoint == "made-just-now"
            assert model.record is not None
            assert model.record.spec.name == "made-just-now"
        finally:
            model.close()
    finally:
        feed.stop()
        client.delete_endpoint("made-just-now")
        client.delete_endpoint("shown-first")
