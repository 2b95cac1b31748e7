"""The endpoint page's variants table in real Chromium: an optimisation asked through the API shows up
beside the version it was made from, with the figures measured for both, without reloading the page."""

from __future__ import annotations

import time

from playwright.sync_api import expect

from tests.browser import OfflinePage, save_screenshot
from tests.browser._stack import ENDPOINT, MODEL, Stack, sign_in
from workbench.records.optimizations import OptimizationStatus


def test_an_optimised_variant_appears_beside_the_version_the_endpoint_serves(
    stack: Stack, offline_page: OfflinePage
) -> None:
    page = offline_page.page
    sign_in(page, stack.dashboard, f"/endpoint?name={ENDPOINT}", token=stack.token)
    expect(page.locator("[data-testid=endpoint-summary]")).to_contain_text(ENDPOINT)
    served = stack.client.get_endpoint(ENDPOINT).spec.routes[0]
    record = stack.client.optimize(f"models:/{served.model}/{served.version}", "onnx", reason="browser test")
    assert record.status is OptimizationStatus.REGISTERED, record.error or record.verdict
    finished = time.monotonic()
    table = page.locator(f"[data-testid=variants][data-parent='models:/{MODEL}/{served.version}']")
    expect(table).to_be_visible(timeout=30_000)
    shown_after_s = time.monotonic() - finished
    parent_row = table.locator("tr[data-status=parent]")
    variant_row = table.locator("tr[data-status=registered]")
    expect(parent_row).to_contain_text("(parent)")
    expect(parent_row).to_contain_text("AUC")
    expect(variant_row).to_contain_text(f"models:/{MODEL}/{record.variant_version}")
    expect(variant_row).to_contain_text("onnx")
    assert record.verdict is not None
    expect(variant_row).to_contain_text(f"{record.verdict['speedup']:.2f}\N{MULTIPLICATION SIGN}")
    table.scroll_into_view_if_needed()
    save_screenshot(page, "dashboard-endpoint-variants")
    print(f"variants table on screen {shown_after_s:.2f} s after the optimisation finished")
    assert not offline_page.blocked, offline_page.blocked
    assert not offline_page.console_errors, offline_page.console_errors
