"""The drift page's objects against a real control plane: a monitor looking at logged requests, the
dashboard feed reading its series, the model and view built from the feed, the distribution read through
the new API, a streamed new look, and a report made through the page's desk.

The control plane runs with serving backend ``none`` (endpoint definitions, no replicas): the requests a
replica would log are written to the endpoint's prediction log directly, and the monitor's looks are
taken by calling its engine, so the test decides when a look happens.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bokeh.document import Document

from workbench.client import Client
from workbench.control_plane import ControlPlane
from workbench.errors import NotFoundError
from workbench.settings import Settings
from workbench.telemetry import PredictionLogWriter
from workbench.ui import feed as feed_module
from workbench.ui.actions import ActionDesk
from workbench.ui.feed import DashboardFeed
from workbench.ui.models.drift import DriftModel
from workbench.ui.views.drift import DriftView


def _log_requests(settings: Settings, writer: str, count: int, shift: float = 0.0) -> None:
    now = time.time()
    with PredictionLogWriter(settings.home / "predictions" / "churn", writer_id=writer) as log:
        for i in range(count):
            log.log(
                {
                    "ts": now - 2 + i * 0.001,
                    "version": 1,
                    "status": 200,
                    "latency_ms": 1.5,
                    "rows": 1,
                    "request_id": f"{writer}-{i}",
                    "inputs": {"a": [float(i % 50) + shift], "b": [float(i % 7)], "c": [i % 3]},
                    "outputs": {"predictions": [[0.3 + 0.4 * (i % 2)]]},
                }
            )


def _look(plane: ControlPlane) -> None:
    plane.monitoring.engine.tick("churn")
    time.sleep(1.05)  # the next look lands in another second of the history


@pytest.fixture
def watched(
    client: Client, plane: ControlPlane, settings: Settings, model_dir: Path, reference_file: Path
) -> None:
    client.register_from_path("churn", model_dir, reference={"path": str(reference_file), "target": "label"})
    client.create_endpoint("churn", "models:/churn/1")
    client.create_monitor(
        {"name": "churn", "endpoint": "churn", "window_s": 1200, "every_s": 600, "drift": {"min_rows": 10}}
    )
    _log_requests(settings, "w1", 60)
    _look(plane)
    _look(plane)


@pytest.fixture
def feed(api_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[DashboardFeed]:
    monkeypatch.setattr(feed_module, "HISTORY_EVERY_S", 0.0)  # the monitor series at every poll
    dashboard = DashboardFeed(lambda: Client(api_url, settings=settings, actor="dashboard"))
    yield dashboard
    dashboard.stop()


@pytest.mark.usefixtures("watched")
def test_the_page_draws_from_the_feed_reads_the_distribution_and_streams_a_new_look(
    api_url: str, settings: Settings, plane: ControlPlane, feed: DashboardFeed
) -> None:
    assert feed.poll_once() is not None
    desk = ActionDesk(lambda actor: Client(api_url, settings=settings, actor=actor), user=lambda: "alice")
    model = DriftModel(feed, desk, live=False, background=False, endpoint="churn")
    assert (model.monitor, model.error) == ("churn", "")
    assert model.columns == ["a", "b", "c"]
    assert len(model.heatmap["time"]) == 2 * 3
    assert all(score >= 0 for score in model.heatmap["score"])
    assert {"drift_share", "dataset_drift"} <= set(model.lines)
    # The first column's distribution, read for this page through the API.
    assert model.column == "a"
    assert model.distribution_error == ""
    answer = model.distribution
    assert (answer["column"], answer["columns"], answer["window"]["rows"]) == ("a", ["a", "b", "c"], 60)
    assert answer["kind"] == "bins"  # fifty distinct values: binned
    assert sum(answer["reference"]) == pytest.approx(1.0)
    assert answer["score"] is not None
    assert model.reports == []
    view = DriftView(model=model)
    view.__panel__().get_root(Document())
    assert view._buffer is not None
    assert len(view._buffer.data) == 6

    # Another feature: one bar per value.
    model.column = "c"
    assert model.distribution["kind"] == "values"
    assert model.distribution["values"] == [0.0, 1.0, 2.0]

    # A new look arrives as a delta: three rows streamed, the lines' new points only.
    _log_requests(settings, "w2", 40, shift=100.0)
    _look(plane)
    update = feed.poll_once()
    assert update is not None
    assert "monitors" in update.changed
    model.apply(update)
    assert len(model.heatmap_delta["time"]) == 3
    assert len(view._buffer.data) == 9
    assert all(len(points["x"]) == 1 for points in model.lines_delta.values())
    assert model.distribution["window"]["rows"] == 100  # read again after the look

    # A report, proposed as no traffic change and made through the desk as the signed-in user.
    model.propose_report()
    assert desk.pending is not None
    assert not desk.pending.preview.changes_traffic
    desk.confirm_now()
    assert not desk.failed, desk.outcome
    assert desk.outcome.startswith("report 1 of churn archived: 100 rows")
    model.apply(feed.poll_once())  # the audit log names the new report: the list is read again
    assert [r["url"] for r in model.reports] == ["./files/report/churn/1"]
    [event] = plane.audit.query(action="monitor.report")
    assert event.actor == "alice"  # the person who asked, not "monitoring"


@pytest.mark.usefixtures("watched")
def test_the_distribution_api_names_what_it_cannot_answer(client: Client) -> None:
    assert client.monitor_distribution("churn")["column"] == "a"  # the first watched column by default
    assert client.monitor_distribution("churn", "b", bins=5)["kind"] == "values"  # seven values: bars
    with pytest.raises(NotFoundError, match="does not watch column 'nope'"):
        client.monitor_distribution("churn", "nope")
    with pytest.raises(NotFoundError, match="prediction"):  # the reference was not scored: no replicas
        client.monitor_distribution("churn", "prediction")
    with pytest.raises(NotFoundError):
        client.monitor_distribution("no-such-monitor")
    # A monitor that has seen no request yet: the reference alone, nothing judged.
    client.create_endpoint("quiet", "models:/churn/1")
    client.create_monitor({"name": "quiet", "endpoint": "quiet", "drift": {"min_rows": 10}})
    for column, bins in (("a", 1), ("c", 30)):
        empty = client.monitor_distribution("quiet", column, bins=bins)
        assert (empty["window"]["rows"], empty["score"], empty["drifted"]) == (0, None, False)
        assert set(empty["current"]) == {0.0}
        assert sum(empty["reference"]) == pytest.approx(1.0)
