"""The JupyterLab sidebar from the keyboard alone: shown from the command palette, a canary started from
its card with Tab and Enter, the focus kept in the card as it is rebuilt, and aborted from the palette.
No mouse event is sent; what happened is checked through the API."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser import OfflinePage, save_screenshot
from tests.browser._lab import Lab, sign_in
from tests.browser._stack import ENDPOINT, MODEL, Stack, routes_of, wait_for

FOCUSED = """() => {
  const active = document.activeElement;
  if (!active || active === document.body) return '';
  const label = active.closest('label');
  return active.getAttribute('aria-label') || label?.querySelector('span')?.textContent || active.textContent.trim();
}"""


def focused(page: Page) -> str:
    return str(page.evaluate(FOCUSED))


def tab_to(page: Page, name: str, limit: int = 60) -> None:
    """Press Tab until the control named ``name`` has the focus."""
    seen = []
    for _ in range(limit):
        if focused(page) == name:
            return
        seen.append(focused(page))
        page.keyboard.press("Tab")
    raise AssertionError(f"{name!r} is not reachable with Tab; the focus went through {seen}")


def from_palette(page: Page, label: str) -> None:
    """Open the command palette, type ``label``, run its entry. The palette closes, and forgets what was
    typed, whenever something else takes the focus (a document finishing loading): then, as a person
    would, open it and type again."""
    search = page.locator(".lm-CommandPalette-input")
    active = page.locator(".lm-CommandPalette-item.lm-mod-active")
    seen: list[str] = []
    for _ in range(3):
        page.keyboard.press("Control+Shift+C")
        if not wait_for(
            lambda: search.is_visible() and search.evaluate("e => e === document.activeElement"),
            5,
            fail=False,
        ):
            seen.append("the palette did not open")  # JupyterLab binds its keys once it is restored
            continue
        page.keyboard.type(label)
        # all_inner_texts does not wait: the palette may close between a look and a read, and a waiting
        # read would then block for the locator's whole timeout instead of letting this loop try again.
        if wait_for(lambda: any(label in text for text in active.all_inner_texts()), 5, fail=False):
            page.keyboard.press("Enter")
            return
        seen.append(
            f"search {search.input_value()!r}, items {page.locator('.lm-CommandPalette-item').all_inner_texts()[:5]}"
        )
        page.keyboard.press("Escape")
    raise AssertionError(f"{label!r} could not be run from the palette: {seen}")


def test_a_canary_is_started_and_aborted_with_the_keyboard_alone(
    stack: Stack, lab: Lab, offline_page: OfflinePage
) -> None:
    if routes_of(stack) != [(1, 100.0)]:  # whatever the tests before left
        stack.client.deploy(ENDPOINT, f"models:/{MODEL}/1", reason="the keyboard test starts from v1")
    page = offline_page.page
    sign_in(page, lab)
    page.goto(f"{lab.url}/lab?reset")  # a fresh layout: no document of an earlier test taking the focus
    expect(page.locator("#jupyterlab-splash")).to_have_count(0)
    expect(page.locator(f"[data-testid=wb-endpoint-{ENDPOINT}]")).to_be_attached()

    from_palette(page, "Workbench: Show the Sidebar")
    expect(page.locator("#workbench-sidebar")).to_be_visible()
    wait_for(lambda: page.evaluate("() => !!document.activeElement.closest('#workbench-sidebar')"), 10)
    tab_to(page, f"Rollout… ({ENDPOINT})")
    page.keyboard.press("Enter")

    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text("Canary steps")
    tab_to(page, "Version")
    page.keyboard.type("v2")
    expect(dialog.locator("label:has-text('Version') select")).to_have_value("2")
    tab_to(page, "Canary steps (%)")
    page.keyboard.press("Control+A")
    page.keyboard.type("50")
    page.keyboard.press("Enter")  # the form's default button: Preview
    expect(page.locator("[data-testid=wb-preview]")).to_contain_text(
        f"{MODEL} v1 100% → {MODEL} v1 50% / v2 50%"
    )
    save_screenshot(page, "lab-keyboard-preview")
    assert routes_of(stack) == [(1, 100.0)]
    page.keyboard.press("Enter")  # the confirmation's default button: Confirm
    wait_for(lambda: routes_of(stack) == [(1, 50.0), (2, 50.0)])
    # The card was rebuilt (busy, then the rollout): the focus is back in it, not lost on the page.
    wait_for(lambda: focused(page).endswith(f"({ENDPOINT})"), 10)

    from_palette(page, "Workbench: Abort the Rollout")
    chooser = page.locator(".jp-Dialog")
    expect(chooser).to_contain_text("Which endpoint?")
    page.keyboard.press("Enter")
    expect(page.locator("[data-testid=wb-preview]")).to_contain_text(f"→ {MODEL} v1 100%")
    page.keyboard.press("Enter")
    wait_for(lambda: routes_of(stack) == [(1, 100.0)])
    expect(page.locator(f"[data-testid=wb-endpoint-{ENDPOINT}] [data-testid=wb-rollout]")).to_have_count(0)
    save_screenshot(page, "lab-keyboard-aborted")
    events = stack.client.audit(target=f"endpoint:{ENDPOINT}", limit=10)
    assert any(e.action == "rollout.rollback" and e.actor.startswith("jupyter:") for e in events), events
    assert not offline_page.blocked, offline_page.blocked
