"""The served dashboards in real Chromium, against a real control plane serving the churn models under load.

The world they look at is ``tests/browser/_stack.py`` (shared by every browser test). Every check of what
happened is made through the API, not through the page that did it.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser import OfflinePage, save_screenshot
from tests.browser._stack import (
    ENDPOINT,
    MODEL,
    USER,
    Dashboard,
    Stack,
    number_in,
    routes_of,
    select,
    sign_in,
    wait_for,
)


# ------------------------------------------------------------------------------------------ sign-in
def test_every_page_needs_a_sign_in_and_the_token_never_reaches_the_browser(
    stack: Stack, offline_page: OfflinePage
) -> None:
    page = offline_page.page
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(str(payload))))
    for path in ("/overview", "/endpoint?name=churn", "/rollout", "/files/run/abc"):
        page.goto(f"{stack.dashboard}{path}")
        expect(page.locator("#login-submit")).to_be_visible()  # the login page, not the content
    sign_in(page, stack.dashboard, "/overview", password="not-the-token", token=stack.token)
    expect(page.locator("[data-testid=login-error]")).to_be_visible()
    save_screenshot(page, "dashboard-login-refused")
    sign_in(page, stack.dashboard, "/overview", token=stack.token)
    expect(page.locator(f"[data-testid=endpoint-card][data-endpoint={ENDPOINT}]")).to_be_visible()
    page.wait_for_timeout(2500)  # a few live updates over the websocket
    assert frames, "the page received no live updates"
    assert stack.token not in page.content()
    assert not any(stack.token in frame for frame in frames)
    assert not [c for c in page.context.cookies() if stack.token in c["value"]]
    assert not offline_page.blocked, offline_page.blocked  # nothing was asked of the internet


# ----------------------------------------------------------------------------------------- overview
def test_the_overview_lists_the_endpoint_and_its_traffic_moves_while_load_runs(
    stack: Stack, offline_page: OfflinePage
) -> None:
    page = offline_page.page
    sign_in(page, stack.dashboard, "/overview", token=stack.token)
    card = page.locator(f"[data-testid=endpoint-card][data-endpoint={ENDPOINT}]")
    expect(card).to_contain_text(ENDPOINT)
    expect(card.locator("[data-testid=split]")).to_contain_text("v1 100%")
    first = wait_for(lambda: (text := number_in(page, "requests-total")) not in ("0", "") and text)
    later = wait_for(lambda: (text := number_in(page, "requests-total")) != first and text, timeout=15)
    assert int(later.replace(",", "")) > int(first.replace(",", ""))
    p95 = wait_for(lambda: (text := number_in(page, "p95")) != "-" and text, timeout=15)
    assert p95.endswith("ms")
    wait_for(lambda: number_in(page, "p95") != p95, timeout=20)  # the latency is live too
    save_screenshot(page, "dashboard-overview")
    assert not offline_page.blocked, offline_page.blocked
    assert not offline_page.console_errors, offline_page.console_errors


# --------------------------------------------------------------------------- canary, checks, rollback
def test_a_canary_started_from_the_page_moves_traffic_shows_its_checks_and_rolls_back(
    stack: Stack, offline_page: OfflinePage
) -> None:
    page = offline_page.page
    sign_in(page, stack.dashboard, f"/endpoint?name={ENDPOINT}", token=stack.token)
    expect(page.get_by_text("Act on this endpoint")).to_be_visible()
    expect(page.locator("[data-testid=no-traffic]")).to_be_hidden()
    select(page, "Model", MODEL)
    select(page, "Version", "v2")
    select(page, "Strategy", "canary")
    page.locator(".bk-input-group:has(label:text-is('Canary steps (%)')) input").fill("50")
    page.keyboard.press("Tab")
    page.get_by_role("button", name="Start rollout").click()
    confirm = page.locator("[data-testid=confirm]")
    expect(confirm).to_contain_text("churn-classifier v1 100% → churn-classifier v1 50% / v2 50%")
    assert routes_of(stack) == [(1, 100.0)]  # nothing moves before the confirmation
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("[data-testid=outcome]")).to_contain_text("started")
    wait_for(lambda: routes_of(stack) == [(1, 50.0), (2, 50.0)])
    rollout = wait_for(lambda: stack.client.rollouts(endpoint=ENDPOINT, active=True))[0]
    assert rollout.actor == USER

    page.goto(f"{stack.dashboard}/rollout?id={rollout.id}")
    expect(page.locator("[data-testid=rollout-summary]")).to_contain_text("canary of churn-classifier v2")
    checks = page.locator("[data-testid=checks]")
    expect(checks).to_contain_text("latency_p95", timeout=40_000)
    expect(checks).to_contain_text("error_rate")
    save_screenshot(page, "dashboard-rollout-checks", full_page=True)

    page.goto(f"{stack.dashboard}/endpoint?name={ENDPOINT}")
    expect(page.locator("[data-testid=endpoint-summary]")).to_contain_text("rollout")
    save_screenshot(page, "dashboard-endpoint-canary", full_page=True)
    page.get_by_role("button", name="Roll back", exact=True).click()
    expect(confirm).to_contain_text("→ churn-classifier v1 100%")
    expect(confirm).to_contain_text(f"aborts rollout {rollout.id}")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("[data-testid=outcome]")).to_contain_text("aborted rollout")
    assert routes_of(stack) == [(1, 100.0)]
    ended = stack.client.rollouts(endpoint=ENDPOINT)[0]
    assert ended.id == rollout.id
    assert not ended.phase.is_active
    events = stack.client.audit(target=f"endpoint:{ENDPOINT}", actor=USER, limit=20)
    assert {"rollout.start", "rollout.rollback"} <= {e.action for e in events}, [e.action for e in events]
    assert not offline_page.blocked, offline_page.blocked


# ------------------------------------------------------------------------------------------ bad input
def _propose_rollback(page: Page, stack: Stack, endpoint: str) -> None:
    sign_in(page, stack.dashboard, f"/endpoint?name={endpoint}", token=stack.token)
    expect(page.locator("[data-testid=endpoint-summary]")).to_contain_text(endpoint)
    page.get_by_role("button", name="Roll back", exact=True).click()
    expect(page.locator("[data-testid=confirm]")).to_contain_text("→ churn-classifier v1 100%")


def test_confirming_an_action_on_an_endpoint_deleted_meanwhile_says_so_and_changes_nothing(
    stack: Stack, offline_page: OfflinePage
) -> None:
    page = offline_page.page
    stack.client.deploy("gone", f"models:/{MODEL}/1")
    stack.client.deploy("gone", f"models:/{MODEL}/2")
    _propose_rollback(page, stack, "gone")
    stack.client.delete_endpoint("gone")
    page.get_by_role("button", name="Confirm").click()
    outcome = page.locator("[data-testid=outcome]")
    expect(outcome).to_contain_text("nothing changed")
    expect(outcome).to_contain_text("gone")
    save_screenshot(page, "dashboard-deleted-meanwhile")
    assert "gone" not in {e.spec.name for e in stack.client.list_endpoints()}


def test_confirming_against_a_stale_revision_is_refused_and_changes_nothing(
    stack: Stack, offline_page: OfflinePage
) -> None:
    page = offline_page.page
    stack.client.deploy("stale", f"models:/{MODEL}/1")
    stack.client.deploy("stale", f"models:/{MODEL}/2")
    _propose_rollback(page, stack, "stale")
    expect(page.locator("[data-testid=no-traffic]")).to_be_visible()  # nothing served there: said, not blank
    moved = stack.client.update_endpoint(
        "stale",
        [{"model": f"models:/{MODEL}/1", "weight": 30}, {"model": f"models:/{MODEL}/2", "weight": 70}],
    )
    page.get_by_role("button", name="Confirm").click()
    outcome = page.locator("[data-testid=outcome]")
    expect(outcome).to_contain_text("nothing changed")
    expect(outcome).to_contain_text("revision")
    save_screenshot(page, "dashboard-stale-revision")
    after = stack.client.get_endpoint("stale")
    assert after.revision == moved.revision
    assert routes_of(stack, "stale") == [(1, 30.0), (2, 70.0)]
    stack.client.delete_endpoint("stale")


def test_a_sign_in_that_expires_during_a_confirmation_changes_nothing(
    stack: Stack, offline_page: OfflinePage, tmp_path: Path
) -> None:
    short = Dashboard(
        stack.settings, stack.api_url, tmp_path / "short.log", WORKBENCH_DASHBOARD_SESSION_S="4"
    )
    try:
        stack.client.deploy("expiry", f"models:/{MODEL}/1")
        stack.client.deploy("expiry", f"models:/{MODEL}/2")
        before = stack.client.get_endpoint("expiry")
        page = offline_page.page
        sign_in(page, short.url, "/endpoint?name=expiry", token=stack.token)
        expect(page.locator("[data-testid=endpoint-summary]")).to_contain_text("expiry")
        page.get_by_role("button", name="Roll back", exact=True).click()
        expect(page.locator("[data-testid=confirm]")).to_be_visible()
        page.wait_for_timeout(5000)  # the sign-in (4 s) ends while the confirmation is open
        page.get_by_role("button", name="Confirm").click()
        expect(page.locator("[data-testid=outcome]")).to_contain_text("sign-in has expired")
        save_screenshot(page, "dashboard-sign-in-expired")
        assert stack.client.get_endpoint("expiry").revision == before.revision
        page.goto(f"{short.url}/endpoint?name=expiry")
        expect(page.locator("#login-submit")).to_be_visible()  # a new page asks to sign in again
    finally:
        short.stop()
        stack.client.delete_endpoint("expiry")


# ------------------------------------------------------------------------- the other pages, in Chromium
def test_the_drift_and_the_runbooks_and_audit_pages_render_live_data_offline(
    stack: Stack, offline_page: OfflinePage
) -> None:
    page = offline_page.page
    sign_in(page, stack.dashboard, f"/drift?endpoint={ENDPOINT}", token=stack.token)
    expect(page.locator("[data-testid=monitor-summary]")).to_contain_text(ENDPOINT)
    # The first drift scores come once the window holds min_rows (a few seconds of the generated load).
    expect(page.locator("[data-testid=distribution-caption]")).to_contain_text("window", timeout=90_000)
    expect(page.locator("[data-testid=reports]")).to_be_visible()
    save_screenshot(page, "dashboard-drift", full_page=True)

    page.goto(f"{stack.dashboard}/operations")
    audit = page.locator("[data-testid=audit]")
    expect(audit).to_contain_text("endpoint.deploy")  # the stack's own deploy, read from the feed
    expect(page.locator("[data-testid=runbook-about]")).to_be_visible()
    save_screenshot(page, "dashboard-operations", full_page=True)
    assert not offline_page.blocked, offline_page.blocked
    assert not offline_page.console_errors, offline_page.console_errors
