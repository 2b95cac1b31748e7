"""The dashboards of an endpoint called with an entity id (issue 14), in real Chromium: its page says how it
is called and what it fetches, and its drift page draws the oldest feature served and the lookup's p95.

A world of its own (the shared ``stack`` serves its models with features inline): a real Feast repository
(SQLite online store) with the demo's customers applied and materialised, the churn model served by
``by-id`` with the ``churn_features`` service, a monitor looking every two seconds, and customers asked
for by id through the real router all along. The dashboard server runs as ``workbench up`` starts it.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests._servers import run_server
from tests.browser import OfflinePage, save_screenshot
from tests.browser._stack import Dashboard, sign_in, wait_for
from workbench.api import create_app
from workbench.client import Client
from workbench.control_plane import ControlPlane
from workbench.demo.dataset import FEATURES, generate_churn, split_frame
from workbench.demo.features import JOIN_KEY, SERVICE, write_demo_features
from workbench.demo.training import train_version
from workbench.settings import Settings
from workbench.ui.views.drift import FEATURES_TITLE

ENDPOINT = "by-id"
PLAIN = "inline"  # the same model, called with its features inline: no feature-store chart
CUSTOMERS = 300

#: What the browser holds of the feature-store chart: whether it is shown, and the points of its two
#: lines (from the browser's own Bokeh documents: what is on screen, not what the server meant).
FEATURE_CHART = """(title) => {
  const out = {shown: null, age: 0, lookup: 0};
  for (const doc of (window.Bokeh?.documents ?? [])) {
    for (const model of doc.all_models) {
      const name = model.name ?? "";
      if (name === "monitor-feature_age_max_s") out.age = model.data.y.length;
      if (name === "monitor-feature_lookup_p95_ms") out.lookup = model.data.y.length;
      if (model.title?.text === title && model.visible !== undefined) out.shown = model.visible;
    }
  }
  return out;
}"""


@dataclass
class FeatureWorld:
    settings: Settings
    client: Client
    dashboard: str
    token: str
    errors: list[str]


def _ask_by_id(router: str, stop: threading.Event, errors: list[str]) -> None:
    """About 20 customers a second, each by id only; the replica fetches their features."""
    customer = 0
    with httpx.Client(timeout=30) as http:
        while not stop.is_set():
            customer = customer % CUSTOMERS + 1
            body = {"dataframe_split": {"columns": [JOIN_KEY], "data": [[customer]]}}
            try:
                answer = http.post(f"{router}/endpoints/{ENDPOINT}/invocations", json=body)
                if answer.status_code != 200:
                    errors.append(f"{answer.status_code}: {answer.text[:200]}")
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            stop.wait(0.05)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Iterator[FeatureWorld]:
    root = tmp_path_factory.mktemp("features-ui")
    home = root / "home"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    settings = Settings.for_home(
        home, allowed_roots=(root,), api_port=0, router_port=0, serving_backend="local"
    )
    write_demo_features(settings.feature_repo_path, rows=CUSTOMERS, seed=1)
    train, holdout = split_frame(generate_churn(3000, seed=3), holdout_fraction=0.25, seed=3)
    plane = ControlPlane(settings)
    plane.start_serving()
    plane.monitoring.engine.start_loop()
    stop = threading.Event()
    errors: list[str] = []
    dashboard: Dashboard | None = None
    try:
        with (
            run_server(create_app(settings, plane)) as url,
            Client(url, settings=settings, actor="setup") as client,
        ):
            client.apply_features()
            client.materialize_features()
            trained = train_version(1, train, holdout, seed=3)
            client.register_model(
                "churn", trained.module, input_example=holdout[list(FEATURES)].head(2), reference_data=holdout
            )
            client.deploy(
                ENDPOINT, "models:/churn/1", features={"entity": JOIN_KEY, "service": SERVICE}, reason="by id"
            )
            client.deploy(PLAIN, "models:/churn/1", reason="features inline")
            for name in (ENDPOINT, PLAIN):
                client.create_monitor(
                    {"name": name, "endpoint": name, "window_s": 30, "every_s": 2, "drift": {"min_rows": 50}}
                )
            router = str(plane.serving.status()["router_url"])
            asker = threading.Thread(target=_ask_by_id, args=(router, stop, errors), daemon=True)
            asker.start()
            dashboard = Dashboard(settings, url, root / "dashboard.log", WORKBENCH_DASHBOARD_SESSION_S="3600")
            try:
                yield FeatureWorld(settings, client, dashboard.url, settings.read_token() or "", errors)
            finally:
                stop.set()
                asker.join(timeout=10)
    finally:
        if dashboard is not None:
            dashboard.stop()
        plane.close()


def _chart(page: Page) -> dict[str, int | bool | None]:
    answer: dict[str, int | bool | None] = page.evaluate(FEATURE_CHART, FEATURES_TITLE)
    return answer


def test_an_endpoint_called_by_id_says_so_and_its_drift_page_draws_feature_age_and_lookup_time(
    world: FeatureWorld, offline_page: OfflinePage
) -> None:
    page = offline_page.page
    sign_in(page, world.dashboard, f"/endpoint?name={ENDPOINT}", token=world.token)
    lookup = page.locator("[data-testid=feature-lookup]")
    expect(lookup).to_contain_text(
        f"called with {JOIN_KEY}, features from feature service {SERVICE}, missing: refuse"
    )
    expect(page.locator("[data-testid=no-traffic]")).to_be_hidden(timeout=30_000)  # served by id
    save_screenshot(page, "dashboard-endpoint-feature-lookup")

    # The summary links to the monitor's drift page, where the feature store's series are drawn.
    lookup.locator("[data-testid=feature-store-link]").click()
    expect(page.locator("[data-testid=monitor-summary]")).to_contain_text(f"watches {ENDPOINT}")
    drawn = wait_for(lambda: (c := _chart(page))["shown"] and c["age"] and c["lookup"] and c, timeout=60)
    assert drawn["shown"] is True
    # Looks keep coming (one every 2 s): the window's oldest feature (materialised five minutes before the
    # world started) and the lookup's p95, each a line the page keeps adding to.
    wait_for(lambda: _chart(page)["age"] >= max(10, drawn["age"] + 1), timeout=60)
    expect(page.locator("[data-testid=feature-store-note]")).to_have_count(0)
    ages = world.client.monitor_history(ENDPOINT, series="feature_age_max_s")["monitors"][ENDPOINT]
    assert min(ages["series"]["feature_age_max_s"]["all"]["mean"]) >= 290  # 5 minutes old, and older
    page.wait_for_timeout(1000)  # the figures settle after the last streamed points
    save_screenshot(page, "dashboard-drift-feature-store", full_page=True)

    # The same model called with its features inline: its drift page is as it was, no empty chart.
    page.goto(f"{world.dashboard}/drift?monitor={PLAIN}")
    expect(page.locator("[data-testid=monitor-summary]")).to_contain_text(f"watches {PLAIN}")
    expect(page.locator("[data-testid=reports]")).to_be_visible()
    hidden = wait_for(lambda: (c := _chart(page))["shown"] is not None and c)
    assert hidden == {"shown": False, "age": 0, "lookup": 0}
    assert not world.errors, world.errors[:5]
    assert not offline_page.blocked, offline_page.blocked
    assert not offline_page.console_errors, offline_page.console_errors
