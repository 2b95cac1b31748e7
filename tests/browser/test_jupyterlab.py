"""The JupyterLab extension in real Chromium: a real ``jupyter lab`` with the built extension, talking to
the shared served world (``_stack.py``) under load. What happened is checked through the API."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser import OfflinePage, save_screenshot
from tests.browser._lab import Lab, open_sidebar
from tests.browser._stack import ENDPOINT, MODEL, Stack, routes_of, wait_for


def test_the_sidebar_shows_the_endpoint_live_and_acts_through_previews(
    stack: Stack, lab: Lab, offline_page: OfflinePage
) -> None:
    page = offline_page.page
    open_sidebar(page, lab)
    churn = page.locator(f"[data-testid=wb-endpoint-{ENDPOINT}]")
    expect(churn).to_contain_text(ENDPOINT)
    expect(churn.locator("[data-testid=wb-split]")).to_have_text(f"{MODEL} v1 100%")
    requests = churn.locator("[data-testid=wb-requests]")
    before = int(wait_for(lambda: requests.inner_text().strip().isdigit() and requests.inner_text()))
    wait_for(lambda: int(requests.inner_text()) > before, timeout=20)  # live, under the load
    save_screenshot(page, "lab-sidebar")

    # A canary from the sidebar: the form, the preview, the confirmation.
    churn.get_by_role("button", name="Rollout…").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator("label:has-text('Version') select").select_option(label="v2")
    dialog.locator("label:has-text('How') select").select_option(value="canary")
    dialog.locator("label:has-text('Canary steps') input").fill("50")
    dialog.get_by_role("button", name="Preview").click()
    preview = page.locator("[data-testid=wb-preview]")
    expect(preview).to_contain_text(f"{MODEL} v1 100% → {MODEL} v1 50% / v2 50%")
    assert routes_of(stack) == [(1, 100.0)]  # nothing moved before the confirmation
    page.locator(".jp-Dialog").get_by_role("button", name="Confirm").click()
    expect(page.locator(".jp-Dialog")).to_have_count(0)
    wait_for(lambda: routes_of(stack) == [(1, 50.0), (2, 50.0)])
    rollout = churn.locator("[data-testid=wb-rollout]")
    expect(rollout).to_contain_text("canary of churn-classifier v2")
    expect(rollout).to_contain_text("progressing", timeout=30_000)  # pending → progressing
    expect(churn.locator("[data-testid=wb-split]")).to_contain_text("v2 50%")
    save_screenshot(page, "lab-sidebar-canary")
    started = stack.client.rollouts(endpoint=ENDPOINT, active=True)[0]
    assert started.actor.startswith("jupyter:")

    # Roll back: the rollout is aborted and v1 takes all traffic, seen in the sidebar.
    churn.get_by_role("button", name="Roll back").click()
    expect(page.locator("[data-testid=wb-preview]")).to_contain_text(f"→ {MODEL} v1 100%")
    page.locator(".jp-Dialog").get_by_role("button", name="Confirm").click()
    expect(page.locator(".jp-Dialog")).to_have_count(0)
    expect(churn.locator("[data-testid=wb-split]")).to_have_text(f"{MODEL} v1 100%")
    expect(churn.locator("[data-testid=wb-rollout]")).to_have_count(0)
    expect(churn.locator("[data-testid=wb-outcome]")).to_contain_text("✓")  # the outcome, on the card
    assert routes_of(stack) == [(1, 100.0)]
    events = stack.client.audit(target=f"endpoint:{ENDPOINT}", limit=10)
    assert any(e.action == "rollout.rollback" and e.actor.startswith("jupyter:") for e in events)

    # The endpoint's dashboard in a main-area tab, through Jupyter.
    churn.get_by_role("button", name="Dashboard").click()
    frame = page.frame_locator(".jp-MainAreaWidget iframe").last
    expect(frame.locator("[data-testid=endpoint-summary]")).to_contain_text(ENDPOINT, timeout=90_000)
    save_screenshot(page, "lab-dashboard-tab")
    assert not offline_page.blocked, offline_page.blocked


def test_a_runbook_is_launched_from_its_form_and_its_executed_notebook_opens(
    stack: Stack, lab: Lab, offline_page: OfflinePage
) -> None:
    page = offline_page.page
    open_sidebar(page, lab)
    page.locator("[data-testid=wb-run-runbook]").click()
    page.locator(".jp-Dialog select").select_option("greet")
    page.locator(".jp-Dialog").get_by_role("button", name="OK").click()
    form = page.locator(".jp-Dialog")
    expect(form).to_contain_text("who")
    form.locator("input[name=who]").fill("lab")
    form.locator("input[name=times]").fill("2")
    form.get_by_role("button", name="Run").click()
    # The executed notebook opens as a document once the run has ended.
    notebook = page.locator(".jp-NotebookPanel")
    expect(notebook).to_contain_text("hello lab hello lab", timeout=120_000)
    runs = stack.client.runbook_runs(runbook="greet", limit=5)
    assert runs[0].status.value == "succeeded"
    assert runs[0].actor.startswith("jupyter:")
    assert (lab.root / "workbench-runs" / f"{runs[0].id}.ipynb").exists()
    save_screenshot(page, "lab-runbook-notebook")
    assert not offline_page.blocked, offline_page.blocked
