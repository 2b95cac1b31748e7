"""The Experiments page in real Chromium: an A/B experiment on the served churn models, its units and
verdict, the confidence-sequence chart, a look pushed by the feed onto the open page, and the actions
(a promote without a winner refused, a pause audited as the signed-in user that gives the routes back).

Customers visit through the real router with their id as the routing key (``workbench.demo.experiment``),
so units are assigned from the real prediction log; outcomes are fed with ``Client.outcomes``; each look
is the engine's own (``ExperimentService.look_now``, what its loop calls), taken when the test wants one.
Every check of what happened is made through the API, not through the page that did it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser import OfflinePage, save_screenshot
from tests.browser._stack import MODEL, USER, Stack, number_in, routes_of, sign_in, wait_for
from workbench.demo.experiment import Customers, experiment_spec, wait_for_assignment
from workbench.errors import WorkbenchError

EXPERIMENT = "page-offer"
AB_ENDPOINT = "ab-page"
CUSTOMERS = 120
LOOKS = 4  # kept before the page opens

#: Points drawn by the experiment chart's estimate, per Bokeh source that holds one (the line and the
#: dots), read from the browser's own documents: what is on screen, not what the server meant to send.
CHART_POINTS = """() => {
  const counts = [];
  for (const doc of (window.Bokeh?.documents ?? [])) {
    for (const model of doc.all_models) {
      const data = model.data;
      if (data && data.estimate !== undefined && data.n_variant !== undefined) {
        counts.push(Array.from(data.estimate).filter((v) => Number.isFinite(v)).length);
      }
    }
  }
  return counts;
}"""


def _outcomes(customers: Customers) -> list[dict[str, Any]]:
    """The same outcomes for both variants (every other customer retained, every fourth offered):
    the experiment has nothing to find, so its verdict stays ``continue``."""
    found = []
    for index, customer in enumerate(customers.visits):
        found.append({"unit": customer, "metric": "retained", "value": float(index % 2)})
        found.append({"unit": customer, "metric": "offered", "value": float(index % 4 == 0)})
    return found


@pytest.fixture
def experiment(stack: Stack) -> Iterator[dict[str, int]]:
    """A running experiment on its own endpoint with assigned units, outcomes and one look; its units
    per variant as the control plane counts them. Concluded and its endpoint deleted afterwards."""
    client = stack.client
    client.deploy(AB_ENDPOINT, f"models:/{MODEL}/1")
    spec = {**experiment_spec(EXPERIMENT, AB_ENDPOINT, MODEL, 1, 2, min_units=10), "auto_stop": False}
    try:
        client.create_experiment(spec, start=True, reason="browser test of the experiments page")
        router = client.endpoint_status(AB_ENDPOINT)["router_url"]
        customers = Customers(router, AB_ENDPOINT, stack.rows.head(CUSTOMERS))
        customers.visit(revisit_every=10)
        assert customers.switched == 0
        assigned = wait_for_assignment(client, EXPERIMENT, CUSTOMERS)
        assert sum(assigned.values()) == CUSTOMERS, assigned
        # Outcomes arrive over time, a look after each batch: the chart opens with the band narrowing.
        outcomes = _outcomes(customers)
        for start in range(0, len(outcomes), len(outcomes) // LOOKS):
            joined = client.outcomes(EXPERIMENT, outcomes[start : start + len(outcomes) // LOOKS])
            assert joined["joined"] == len(outcomes) // LOOKS
            stack.plane.experiments.look_now(EXPERIMENT)
            time.sleep(0.5)
        yield assigned
    finally:
        try:
            if client.experiment(EXPERIMENT)["experiment"]["state"] != "concluded":
                client.experiment_action(EXPERIMENT, "conclude", reason="end of the browser test")
        except WorkbenchError:
            pass
        client.delete_endpoint(AB_ENDPOINT)


def _points(page: Page) -> int:
    counts = page.evaluate(CHART_POINTS)
    return max(counts) if counts else 0


def test_the_experiment_page_shows_units_verdict_and_chart_follows_looks_live_and_acts_as_the_user(
    stack: Stack, offline_page: OfflinePage, experiment: dict[str, int]
) -> None:
    page = offline_page.page
    sign_in(page, stack.dashboard, "/overview", token=stack.token)
    expect(page.locator("[data-testid=endpoint-card]").first).to_be_visible()
    nav = page.locator("a[data-page=experiments]")
    expect(nav).to_have_attribute("href", "./experiments")

    # Time to first data: from asking for the page to the experiment's units, then to the drawn chart.
    asked = time.monotonic()
    page.goto(f"{stack.dashboard}/experiments?name={EXPERIMENT}")
    summary = page.locator("[data-testid=experiment-summary]")
    expect(summary.locator("[data-testid=units-total]")).to_have_text(f"{CUSTOMERS:,}")
    first_data_s = time.monotonic() - asked
    wait_for(lambda: _points(page) >= 1, timeout=20, every=0.05)
    first_chart_s = time.monotonic() - asked

    # Units per variant (the latest look's counts) and the verdict, as the control plane has them. (The
    # fixture's last look may reach the page just after it opened: every kept look is awaited first.)
    expect(page.locator("[data-testid=looks]")).to_have_text(str(LOOKS))
    for variant, units in experiment.items():
        expect(page.locator(f"[data-testid=units-{variant}]")).to_have_text(f"{units:,}")
    expect(page.locator("[data-testid=state]")).to_have_text("running")
    expect(page.locator("[data-testid=verdict]")).to_have_text("continue")
    expect(page.locator("[data-testid=decision]")).to_contain_text("no variant is established")
    expect(page.locator("[data-testid=srm]")).to_contain_text("no mismatch")
    comparisons = page.locator("[data-testid=comparisons]")
    expect(comparisons).to_contain_text("retained")
    expect(comparisons).to_contain_text("offered")
    expect(comparisons).to_contain_text("treatment")
    expect(page.locator(f"[data-testid=experiments] tr[data-experiment={EXPERIMENT}]")).to_contain_text(
        AB_ENDPOINT
    )
    wait_for(lambda: _points(page) == LOOKS, timeout=15, every=0.05)

    # A new look, taken by the engine, reaches the open page through the feed: no reload, no polling.
    before = page.evaluate("() => performance.getEntriesByType('navigation').length")
    stack.plane.experiments.look_now(EXPERIMENT)
    looked = time.monotonic()
    wait_for(lambda: number_in(page, "looks") == str(LOOKS + 1), timeout=15, every=0.05)
    look_to_screen_s = time.monotonic() - looked
    wait_for(lambda: _points(page) == LOOKS + 1, timeout=15, every=0.05)
    look_to_chart_s = time.monotonic() - looked
    assert page.evaluate("() => performance.getEntriesByType('navigation').length") == before
    save_screenshot(page, "dashboard-experiment", full_page=True)

    # A promote without a winner: previewed as such, refused by the control plane, nothing changed.
    page.get_by_role("button", name="Promote (canary)").click()
    confirm = page.locator("[data-testid=confirm]")
    expect(confirm).to_contain_text("no winner")
    page.get_by_role("button", name="Confirm").click()
    outcome = page.locator("[data-testid=outcome]")
    expect(outcome).to_contain_text("Refused, nothing changed")
    expect(outcome).to_contain_text("has no winner")
    save_screenshot(page, "dashboard-experiment-refused")
    assert stack.client.experiment(EXPERIMENT)["experiment"]["state"] == "running"
    assert routes_of(stack, AB_ENDPOINT) == [(1, 50.0), (2, 50.0)]
    assert not stack.client.rollouts(endpoint=AB_ENDPOINT)

    # Pause: confirmed with the routes it gives back, audited as the signed-in user, routes restored.
    pause = page.get_by_role("button", name="Pause")
    expect(pause).to_be_enabled()
    expect(page.get_by_role("button", name="Resume")).to_be_disabled()
    pause.click()
    expect(confirm).to_contain_text(f"{MODEL} v1 50% / v2 50% → {MODEL} v1 100%")
    page.get_by_role("button", name="Confirm").click()
    expect(outcome).to_contain_text(f"paused experiment {EXPERIMENT}")
    assert routes_of(stack, AB_ENDPOINT) == [(1, 100.0)]
    events = stack.client.audit(target=f"experiment:{EXPERIMENT}", action="experiment.pause")
    assert [e.actor for e in events] == [USER]
    expect(page.locator("[data-testid=state]")).to_have_text("paused")  # pushed back by the feed
    expect(page.get_by_role("button", name="Resume")).to_be_enabled()
    expect(pause).to_be_disabled()

    # The endpoint's page links to its (paused, so still active) experiment.
    page.goto(f"{stack.dashboard}/endpoint?name={AB_ENDPOINT}")
    link = page.locator("[data-testid=experiment-link]")
    expect(link).to_be_visible()
    link.click()
    expect(page.locator("[data-testid=state]")).to_have_text("paused")
    assert page.url.endswith(f"/experiments?name={EXPERIMENT}")

    assert not offline_page.blocked, offline_page.blocked
    assert not offline_page.console_errors, offline_page.console_errors
    print(
        f"\nexperiments page: first data {first_data_s:.2f} s, chart drawn {first_chart_s:.2f} s; "
        f"a new look on screen {look_to_screen_s:.2f} s, in the chart {look_to_chart_s:.2f} s"
    )
