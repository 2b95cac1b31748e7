"""The JupyterLab sidebar given bad circumstances: an endpoint deleted while its action waits for the
confirmation, a Jupyter session that expired, a control plane that is down and comes back. Each gets a
clear message on screen, and nothing changes (checked through the API)."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser import OfflinePage, save_screenshot
from tests.browser._lab import Lab, open_sidebar, toast
from tests.browser._stack import ENDPOINT, MODEL, Stack, routes_of

DOOMED = "doomed"


def test_an_action_on_an_endpoint_deleted_before_its_confirmation_is_refused_and_changes_nothing(
    stack: Stack, lab: Lab, offline_page: OfflinePage
) -> None:
    stack.client.deploy(DOOMED, f"models:/{MODEL}/1", replicas=1)
    page = offline_page.page
    open_sidebar(page, lab)
    card = page.locator(f"[data-testid=wb-endpoint-{DOOMED}]")
    card.get_by_role("button", name="Deploy…").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator("label:has-text('Version') select").select_option(label="v2")
    dialog.get_by_role("button", name="Preview").click()
    expect(page.locator("[data-testid=wb-preview]")).to_contain_text(f"{MODEL} v1 100% → {MODEL} v2 100%")

    stack.client.delete_endpoint(DOOMED, reason="gone while the confirmation was open")
    page.locator(".jp-Dialog").get_by_role("button", name="Confirm").click()
    toast(page, "Refused, nothing changed")
    toast(page, DOOMED)
    expect(card).to_have_count(0)  # the sidebar follows the deletion
    page.wait_for_timeout(800)  # the toast's slide-in, for the screenshot only
    save_screenshot(page, "lab-vanished-endpoint")
    assert DOOMED not in {e.spec.name for e in stack.client.list_endpoints()}  # not re-created by the deploy
    events = stack.client.audit(target=f"endpoint:{DOOMED}", limit=10)
    assert not [e for e in events if e.actor.startswith("jupyter:")], events


def test_an_expired_jupyter_session_is_said_and_the_action_does_not_run(
    stack: Stack, lab: Lab, offline_page: OfflinePage
) -> None:
    page = offline_page.page
    open_sidebar(page, lab)
    churn = page.locator(f"[data-testid=wb-endpoint-{ENDPOINT}]")
    before = routes_of(stack)
    revision = stack.client.get_endpoint(ENDPOINT).revision
    churn.get_by_role("button", name="Deploy…").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator("label:has-text('Version') select").select_option(label="v2")
    dialog.get_by_role("button", name="Preview").click()
    expect(page.locator("[data-testid=wb-preview]")).to_contain_text(f"→ {MODEL} v2 100%")

    page.context.clear_cookies()  # Jupyter's login cookie gone, as when a session expires
    page.locator(".jp-Dialog").get_by_role("button", name="Confirm").click()
    toast(page, "your Jupyter session has expired")
    expect(churn.locator("[data-testid=wb-outcome]")).to_contain_text("your Jupyter session has expired")
    save_screenshot(page, "lab-expired-session")
    expect(churn.get_by_role("button", name="Deploy…")).to_be_enabled()  # not left blocked
    assert routes_of(stack) == before
    assert stack.client.get_endpoint(ENDPOINT).revision == revision

    open_sidebar(page, lab)  # signed in again, the sidebar is live again
    expect(page.locator("[data-testid=wb-status]")).to_contain_text("live")


def test_a_control_plane_that_is_down_is_said_and_the_sidebar_recovers_when_it_returns(
    stack: Stack, lab: Lab, offline_page: OfflinePage
) -> None:
    page = offline_page.page
    open_sidebar(page, lab)
    status = page.locator("[data-testid=wb-status]")
    churn = page.locator(f"[data-testid=wb-endpoint-{ENDPOINT}]")
    expect(status).to_contain_text("live")
    before = routes_of(stack)
    lab.door.down()
    try:
        expect(status).to_contain_text("cannot reach the control plane", timeout=30_000)
        expect(churn).to_contain_text(ENDPOINT)  # the last state known stays, marked as such
        expect(page.locator(".wb-endpoints.wb-stale")).to_have_count(1)
        churn.get_by_role("button", name="Roll back").click()
        toast(page, "cannot reach the control plane")
        expect(churn.locator("[data-testid=wb-outcome]")).to_contain_text("Refused, nothing changed")
        save_screenshot(page, "lab-control-plane-down")
        expect(churn.get_by_role("button", name="Roll back")).to_be_enabled()
    finally:
        lab.door.up()
    expect(status).to_contain_text("live", timeout=30_000)
    expect(page.locator(".wb-endpoints.wb-stale")).to_have_count(0)
    requests = churn.locator("[data-testid=wb-requests]")
    seen = int(requests.inner_text())
    expect(requests).not_to_have_text(str(seen), timeout=20_000)  # live numbers again
    assert routes_of(stack) == before
