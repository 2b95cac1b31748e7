"""An A/B experiment in the JupyterLab sidebar, in real Chromium: started on the served world while the
sidebar is open, simulated customers (sticky by their routing key) and their outcomes, looks taken by the
engine, all pushed to the card without a reload; paused from the card (audited as the Jupyter user, the
baseline's routes back), a promotion without a winner refused with the reason, the experiment's
dashboard tab. What happened is checked through the API; each new look's event-to-screen time is
measured in the page and printed."""

from __future__ import annotations

import random
import re
import statistics
import time

from playwright.sync_api import Page, expect

from tests.browser import OfflinePage, save_screenshot
from tests.browser._lab import Lab, open_sidebar, toast
from tests.browser._stack import MODEL, Stack, routes_of, wait_for
from tests.browser.test_jupyterlab_keyboard import from_palette
from workbench.demo.dataset import generate_churn
from workbench.demo.experiment import Customers, experiment_spec, wait_for_assignment

AB = "offers"  # after "churn": the other tests' endpoint choosers keep churn first
NAME = "sidebar-offer"
CUSTOMERS = 240
BATCHES = 4
MINUS = "\u2212"  # as the card writes a difference

# Notes in window.__wbSeen when the card's sparkline first shows ``looks`` looks (checked every frame).
WATCH = """([endpoint, looks]) => {
  window.__wbSeen = null;
  const check = () => {
    const spark = document.querySelector(
      `[data-testid=wb-endpoint-${endpoint}] [data-testid=wb-experiment-spark]`);
    if (spark && spark.dataset.looks === String(looks)) { window.__wbSeen = Date.now(); return; }
    requestAnimationFrame(check);
  };
  check();
}"""


def _look_on_screen(page: Page, stack: Stack, looks: int, phase: random.Random) -> float:
    """Take a look (the engine's own call) and return the ms from its commit to the card showing it.

    The look waits a random part of the watcher's poll second first: right after the previous look was
    seen, it would always just miss a poll, which a look of the engine's own loop does not."""
    page.evaluate(WATCH, [AB, looks])
    time.sleep(phase.uniform(0.0, 1.0))
    stack.plane.experiments.look_now(NAME)
    committed = time.time() * 1000
    wait_for(lambda: page.evaluate("() => window.__wbSeen !== null"), timeout=15, every=0.05)
    return float(page.evaluate("() => window.__wbSeen")) - committed


def test_an_experiment_is_shown_live_on_its_card_paused_from_it_and_a_winnerless_promotion_refused(
    stack: Stack, lab: Lab, offline_page: OfflinePage
) -> None:
    client = stack.client
    page = offline_page.page
    client.deploy(AB, f"models:/{MODEL}/1", replicas=1, reason="the sidebar's experiment test")
    try:
        open_sidebar(page, lab)
        card = page.locator(f"[data-testid=wb-endpoint-{AB}]")
        expect(card).to_contain_text(AB)
        expect(card.locator("[data-testid=wb-experiment]")).to_have_count(0)

        # Started while the sidebar is open: the card shows it without a reload.
        spec = experiment_spec(NAME, AB, MODEL, 1, 2, min_units=CUSTOMERS)
        client.create_experiment(spec, start=True, reason="does v2 keep more customers?")
        experiment = card.locator("[data-testid=wb-experiment]")
        expect(experiment).to_contain_text(NAME)
        expect(experiment.locator("[data-testid=wb-experiment-state]")).to_have_text("running")
        expect(card.locator("[data-testid=wb-split]")).to_have_text(f"{MODEL} v1 50% / {MODEL} v2 50%")
        expect(experiment.locator("[data-testid=wb-experiment-verdict]")).to_have_text("no look yet")

        # Customers visit with their id as the routing key; their outcomes come in batches, a look after
        # each: the card follows the looks (units per variant, verdict, interval, sparkline).
        router = client.endpoint_status(AB)["router_url"]
        customers = Customers(router, AB, generate_churn(CUSTOMERS, seed=23))
        customers.visit(revisit_every=6)
        assert customers.switched == 0
        assigned = wait_for_assignment(client, NAME, CUSTOMERS)
        assert sum(assigned.values()) == CUSTOMERS, assigned
        outcomes = customers.outcomes()
        step = len(outcomes) // BATCHES
        latencies = []
        phase = random.Random(7)
        for batch in range(BATCHES):
            joined = client.outcomes(NAME, outcomes[batch * step : (batch + 1) * step])
            assert joined["joined"] == step
            latencies.append(_look_on_screen(page, stack, batch + 1, phase))
        for looks in range(BATCHES + 1, BATCHES + 7):  # more looks, for the latency figures
            latencies.append(_look_on_screen(page, stack, looks, phase))
        units = experiment.locator("[data-testid=wb-experiment-units]")
        expect(units).to_have_text(f"control {assigned['control']} · treatment {assigned['treatment']} units")
        verdict = experiment.locator("[data-testid=wb-experiment-verdict]")
        expect(verdict).to_have_text("continue")  # fewer outcomes than min_units per variant
        estimate = experiment.locator("[data-testid=wb-experiment-estimate]")
        expect(estimate).to_contain_text(f"retained (higher is better): treatment {MINUS} control")
        expect(estimate).to_contain_text("95% always-valid")
        decision = client.experiment(NAME)["decision"]
        [primary] = decision["primary"]
        interval = estimate.locator("[data-testid=wb-experiment-interval]").inner_text()
        shown = [float(x) for x in re.findall(r"[-+]?\d+\.\d", interval.replace(MINUS, "-"))]
        expected = [primary["lower"] * 100, primary["upper"] * 100]  # percentage points, as shown
        assert len(shown) == 2, interval
        assert all(abs(a - b) < 0.06 for a, b in zip(shown, expected, strict=True)), (interval, primary)
        expect(experiment.locator("[data-testid=wb-experiment-reason]")).to_contain_text(
            "units with outcomes in the smallest variant; no decision is made before"
        )
        spark = experiment.locator("[data-testid=wb-experiment-spark]")
        expect(spark.locator("polygon.wb-spark-band")).to_have_count(1)
        expect(spark.locator("[data-testid=wb-experiment-looks]")).to_have_text(
            f"{BATCHES + 6} looks · {CUSTOMERS} units"
        )
        promote = experiment.get_by_role("button", name=f"Promote winner ({AB})")
        expect(promote).to_be_disabled()
        expect(promote).to_have_attribute("title", "no winner yet: nothing to promote")
        expect(card.get_by_role("button", name=f"Rollout… ({AB})")).to_be_disabled()  # the A/B holds it
        page.wait_for_timeout(300)  # the sidebar's last paint, for the screenshot only
        shot = save_screenshot(page, "lab-sidebar-experiment")
        median, worst = statistics.median(latencies), max(latencies)
        print(
            f"\nexperiment look → sidebar: median {median:.0f} ms, max {worst:.0f} ms over "
            f"{len(latencies)} looks ({', '.join(f'{x:.0f}' for x in latencies)}); screenshot {shot}"
        )
        assert worst < 5_000, latencies  # pushed within the watcher's poll, not on a reload

        # Pause from the card: the preview, the confirmation, the baseline's routes back, audited.
        experiment.get_by_role("button", name=f"Pause A/B ({AB})").click()
        preview = page.locator("[data-testid=wb-preview]")
        expect(preview).to_contain_text(f"{MODEL} v1 50% / v2 50% → {MODEL} v1 100%")
        expect(page.locator(".jp-Dialog")).to_contain_text(f"pause experiment {NAME} on {AB}")
        assert routes_of(stack, AB) == [(1, 50.0), (2, 50.0)]  # nothing moved before the confirmation
        page.locator(".jp-Dialog").get_by_role("button", name="Confirm").click()
        expect(page.locator(".jp-Dialog")).to_have_count(0)
        wait_for(lambda: routes_of(stack, AB) == [(1, 100.0)])
        expect(experiment.locator("[data-testid=wb-experiment-state]")).to_have_text("paused")
        expect(experiment.get_by_role("button", name=f"Resume A/B ({AB})")).to_be_enabled()
        expect(card.locator("[data-testid=wb-split]")).to_have_text(f"{MODEL} v1 100%")
        expect(card.locator("[data-testid=wb-outcome]")).to_contain_text(
            f"paused experiment {NAME}; {AB} serves"
        )
        assert client.experiment(NAME)["experiment"]["state"] == "paused"
        [paused] = client.audit(action="experiment.pause", target=f"experiment:{NAME}", limit=5)
        assert paused.actor.startswith("jupyter:"), paused.actor
        assert paused.reason == "from JupyterLab"

        # Promoting without a winner: refused with the reason, on the card and in a toast.
        from_palette(page, "Workbench: Promote the A/B Experiment")
        chooser = page.locator(".jp-Dialog")
        if wait_for(lambda: chooser.count() > 0, timeout=2, fail=False):  # other experiments: choose
            chooser.locator("select").select_option(AB)
            chooser.get_by_role("button", name="OK").click()
        toast(page, f"experiment '{NAME}' has no winner to promote")
        outcome = card.locator("[data-testid=wb-outcome]")
        expect(outcome).to_contain_text("Refused, nothing changed")
        expect(outcome).to_contain_text("no decision is made before")  # the reason, said
        page.wait_for_timeout(800)  # the toast's slide-in, for the screenshot only
        save_screenshot(page, "lab-sidebar-experiment-refused")
        assert not client.rollouts(endpoint=AB)  # nothing started
        assert client.experiment(NAME)["experiment"]["state"] == "paused"

        # The experiment's dashboard in a main-area tab, through Jupyter.
        experiment.get_by_role("button", name=f"Experiment ({AB})").click()
        tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab").filter(has_text=f"Experiment: {NAME}")
        expect(tab).to_be_visible()
        frame = page.locator(".jp-MainAreaWidget iframe").last
        expect(frame).to_have_attribute(
            "src", re.compile(rf"/workbench/dashboards/experiments\?name={NAME}$")
        )
        assert not offline_page.blocked, offline_page.blocked
    finally:
        for record in client.experiments(endpoint=AB):
            if record.state.value in ("running", "paused"):
                client.experiment_action(record.name, "conclude", reason="the test is over")
        client.delete_endpoint(AB, reason="the sidebar's experiment test is over")
