"""Monitoring end to end: real router and replicas, the real prediction log, the engine ticking with the
real clock; drift alerts, an alert that rolls back, feedback, reports and bad input."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pandas as pd
import pytest

from tests.serving.conftest import FlakyNet, World, oip_columns, wait_until
from workbench.demo.dataset import FEATURES, generate_churn
from workbench.errors import ConflictError, NotFoundError, ValidationError
from workbench.specs.monitor import (
    AlertRuleSpec,
    DriftOptions,
    MonitorSpec,
    NotifyAction,
    RollbackAction,
    Severity,
)

WINDOW_S, EVERY_S = 1.0, 0.25


class RowTraffic:
    """Clients sending multi-row requests drawn from ``frame`` (swappable while running)."""

    def __init__(self, url: str, frame: pd.DataFrame, rows_per_request: int = 25, workers: int = 2) -> None:
        self.url = url
        self.rows_per_request = rows_per_request
        self.bodies = self._bodies(frame)
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]

    def _bodies(self, frame: pd.DataFrame) -> list[bytes]:
        n = self.rows_per_request
        return [orjson.dumps(oip_columns(frame.iloc[i : i + n])) for i in range(0, len(frame) - n, n)]

    def switch(self, frame: pd.DataFrame) -> None:
        self.bodies = self._bodies(frame)

    def _run(self) -> None:
        sent = 0
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                bodies = self.bodies
                body = bodies[sent % len(bodies)]
                sent += 1
                try:
                    status = client.post(self.url, content=body).status_code
                except httpx.HTTPError:
                    status = -1
                self.statuses.append(status)
                self._stop.wait(0.02)

    def __enter__(self) -> RowTraffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def _webhook(received: list[dict[str, Any]]) -> str:
    """A real HTTP receiver on a free port that records every JSON body POSTed to it."""

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/alerts"


def _monitor(name: str, endpoint: str, **drift: Any) -> MonitorSpec:
    return MonitorSpec(
        name=name,
        endpoint=endpoint,
        window_s=WINDOW_S,
        every_s=EVERY_S,
        drift=DriftOptions(min_rows=1000, **drift),
    )


def _firing(world: World, rule: str) -> list[Any]:
    return [e for e in world.plane.monitoring.alerts(rule=rule) if e.kind == "firing"]


@pytest.fixture(scope="module")
def watched(world: World) -> str:
    world.client.deploy("watched", "models:/churn/1")
    world.plane.monitoring.create_monitor(_monitor("watched", "watched"), actor="tester")
    return "watched"


def test_covariate_drift_is_flagged_within_two_windows_and_clean_traffic_never(
    world: World, watched: str
) -> None:
    covariate_drift_is_flagged(world, watched, rows_per_request=50, judged_share=0.9)


def covariate_drift_is_flagged(
    world: World, watched: str, *, rows_per_request: int, judged_share: float
) -> None:
    """``rows_per_request`` lets a backend with a dearer request path (Ray's: about 7 ms a hop) still fill
    each one-second window with the monitor's 1,000 rows on a busy machine; ``judged_share`` is how many
    looks must find the window full enough to judge."""
    world.client.create_alert_rule(
        AlertRuleSpec(
            name="drifting", monitor=watched, series="drift_share", op=">=", threshold=0.25, cooldown_s=0
        )
    )
    engine = world.plane.monitoring.engine
    clean = generate_churn(6000, seed=21)
    drifted = generate_churn(6000, seed=22, covariate_drift=1.0)
    with RowTraffic(
        f"{world.router}/v2/models/{watched}/infer", clean, rows_per_request=rows_per_request
    ) as traffic:
        wait_until(lambda: (engine.tick(watched)["rows"] or 0) >= 1000, timeout=30)
        started = time.monotonic()
        judged, shares = 0, []
        while time.monotonic() - started < 30 * WINDOW_S:  # 30 windows of undrifted traffic
            values = engine.tick(watched)
            judged += values["drift"] is not None
            shares.append(values["drift_share"] or 0.0)
            time.sleep(EVERY_S)
        # Judged at (nearly) every look; how many looks fit in 30 s depends on the machine, not on this.
        assert len(shares) >= 30, f"only {len(shares)} looks in 30 windows"
        assert judged >= judged_share * len(shares), (
            f"drift was judged in only {judged} of {len(shares)} looks"
        )
        assert max(shares) < 0.25, f"undrifted windows reached a drifted share of {max(shares)}"
        assert _firing(world, "drifting") == [], "undrifted traffic raised a drift alert"
        traffic.switch(drifted)
        switched = time.monotonic()
        while not _firing(world, "drifting") and time.monotonic() - switched < 10 * WINDOW_S:
            engine.tick(watched)
            time.sleep(EVERY_S)
        flagged_after = time.monotonic() - switched
    assert _firing(world, "drifting"), "covariate drift was never flagged"
    assert flagged_after <= 2 * WINDOW_S + 2 * EVERY_S, f"drift flagged only after {flagged_after:.2f}s"
    assert set(traffic.statuses) == {200}
    detail = world.client.monitor(watched)
    drifted_columns = {c["column"] for c in detail["values"]["drift"]["columns"] if c["drifted"]}
    assert {"monthly_charges", "sessions_30d"} <= drifted_columns
    audit = world.client.audit(target=f"endpoint:{watched}", action="alert.firing")
    assert audit
    assert audit[0].actor == "alert:drifting"


def test_between_looks_the_loop_folds_the_log_so_a_look_never_reads_a_backlog(
    world: World, watched: str
) -> None:
    engine = world.plane.monitoring.engine
    spec = MonitorSpec(name="slow-looks", endpoint=watched, window_s=3600, every_s=3600)
    world.plane.monitoring.create_monitor(spec, actor="tester")
    try:
        engine.tick("slow-looks")  # the first look; the next is an hour away
        live = engine._live["slow-looks"]
        looked, before = live.last_tick, live.window.feature_histogram().rows
        with RowTraffic(f"{world.router}/v2/models/{watched}/infer", world.frame, workers=1):
            wait_until(lambda: world.client.endpoint_status(watched)["replicas"], timeout=5)
            time.sleep(1.5)
        # The loop's turns (every 0.25 s) fold what the replicas wrote: no look was due, none was taken.
        wait_until(
            lambda: engine._tick_due(time.time()) or live.window.feature_histogram().rows >= before + 100,
            timeout=30,
        )
        assert live.last_tick == looked
        assert engine._live["slow-looks"] is live
    finally:
        world.plane.monitoring.delete_monitor("slow-looks", actor="tester")


def test_an_alert_rule_with_a_rollback_action_rolls_the_endpoint_back(world: World) -> None:
    flaky = world.client.register_model(
        "churn",
        FlakyNet(world.modules[2]),
        input_example=world.frame[list(FEATURES)].head(2),
        reference_data=world.frame,
    )
    world.client.deploy("guarded", "models:/churn/1")
    world.client.deploy("guarded", flaky.uri, reason="a bad release")
    world.plane.monitoring.create_monitor(_monitor("guarded", "guarded"), actor="tester")
    received: list[dict[str, Any]] = []
    hook = _webhook(received)
    world.client.create_alert_rule(
        AlertRuleSpec(
            name="errors-roll-back",
            monitor="guarded",
            series="error_rate",
            op=">",
            threshold=0.1,
            severity=Severity.CRITICAL,
            actions=(NotifyAction(webhook=hook), RollbackAction()),
        )
    )
    engine = world.plane.monitoring.engine
    with RowTraffic(f"{world.router}/v2/models/guarded/infer", world.frame, rows_per_request=1):
        wait_until(
            lambda: engine.tick("guarded") and _firing(world, "errors-roll-back"), timeout=30, every=EVERY_S
        )
        assert engine.wait_actions(timeout=60), "the alert's actions did not finish"
        routes = world.client.get_endpoint("guarded").spec.routes
    assert [(r.version, r.weight) for r in routes] == [(1, 100.0)]
    events = world.plane.monitoring.alerts(rule="errors-roll-back")
    action = next(e for e in events if e.kind == "action.rollback")
    assert action.details["ok"] is True
    rollback = world.client.audit(target="endpoint:guarded", action="endpoint.rollback")[0]
    assert rollback.actor == "alert:errors-roll-back"
    assert "error_rate" in (rollback.reason or "")
    (alert,) = received  # the webhook got the alert once, as JSON
    assert (alert["alert"], alert["severity"], alert["series"]) == (
        "errors-roll-back",
        "critical",
        "error_rate",
    )
    assert alert["value"] > 0.1
    notified = next(e for e in events if e.kind == "action.notify")
    assert notified.details == {"action": "notify", "ok": True, "webhook": hook, "status": 204}
    # The monitor follows the version now serving, judged by its own reference.
    assert world.client.monitor("guarded")["reference"]["version"] == 1
    # Its history spans the switch: the bad version's errors, per version, stay on record.
    history = world.client.monitor_history("guarded", series="error_rate", start=time.time() - 600)
    per_version = history["monitors"]["guarded"]["series"]["error_rate"]
    assert {"all", str(flaky.version)} <= set(per_version)
    assert max(per_version[str(flaky.version)]["max"]) > 0.1


def test_feedback_is_joined_by_request_id_and_never_counted_twice(world: World, watched: str) -> None:
    engine = world.plane.monitoring.engine
    engine.feed_index_limit = 10  # the memory keeps the last 10 ids: the other 30 are found in the store
    world.client.create_monitor({"name": "labelled", "endpoint": watched, "window_s": 120, "every_s": 1})
    rows = world.frame.head(40)
    ids: dict[str, int] = {}
    for i in range(len(rows)):
        request_id = f"fb-{time.time_ns()}-{i}"
        response = httpx.post(
            f"{world.router}/v2/models/{watched}/infer",
            json=oip_columns(rows.iloc[[i]]),
            headers={"x-request-id": request_id},
        )
        assert response.status_code == 200
        assert response.headers["x-request-id"] == request_id
        ids[request_id] = int(rows.iloc[i]["churned"])
    accepted = world.client.feedback(watched, ids)
    assert accepted == {"endpoint": watched, "accepted": 40}
    first = next(iter(ids))
    assert engine.feed(watched).cached(first) is None, "the oldest labelled request was still in memory"
    with pytest.raises(ConflictError, match="never counted twice") as duplicate:
        world.client.feedback(watched, {first: 1.0})
    assert duplicate.value.details["duplicates"] == [first]
    with pytest.raises(NotFoundError, match="not in the prediction log") as unknown:
        world.client.feedback(watched, {"no-such-request": 1.0, first: 0.0})
    assert unknown.value.details["unknown"] == ["no-such-request"]
    with pytest.raises(ValidationError, match="more than once"):
        world.client.feedback(watched, [("x", 1.0), ("x", 0.0)])
    values = world.client.monitor("labelled")["values"]
    assert values["labelled"] == 40
    assert values["accuracy"] is not None
    assert 0.5 <= values["accuracy"] <= 1.0
    assert values["estimated_accuracy"] is not None


def test_bad_monitors_and_rules_are_refused_at_creation(world: World, watched: str) -> None:
    with pytest.raises(ValidationError, match="unknown series"):
        world.client.create_alert_rule(
            {"name": "x", "monitor": watched, "series": "p95", "op": ">", "threshold": 1}
        )
    with pytest.raises(ValidationError, match="shorter than the scrape interval"):
        world.client.create_monitor({"name": "short", "endpoint": watched, "window_s": 1, "every_s": 5})
    with pytest.raises(ValidationError, match="lacks column"):
        world.client.create_monitor({"name": "cols", "endpoint": watched, "drift": {"columns": ["nope"]}})
    with pytest.raises(ValidationError, match="does not watch column"):
        world.client.create_alert_rule(
            {"name": "y", "monitor": watched, "series": "drift:nope", "op": ">", "threshold": 0.1}
        )
    with pytest.raises(NotFoundError):
        world.client.create_monitor({"name": "ghost", "endpoint": "no-such-endpoint"})
    world.client.deploy("unreferenced", "models:/churn/3")  # registered without a reference dataset
    with pytest.raises(ValidationError, match="no reference dataset"):
        world.client.create_monitor({"name": "noref", "endpoint": "unreferenced"})
    with pytest.raises(ConflictError, match="already exists"):
        world.client.create_monitor({"name": watched, "endpoint": watched})
    assert {m.spec.name for m in world.client.monitors()} >= {watched}
    assert "noref" not in {m.spec.name for m in world.client.monitors()}


def test_an_evidently_report_is_archived_and_agrees_with_the_live_scores(world: World, watched: str) -> None:
    with RowTraffic(f"{world.router}/v2/models/{watched}/infer", generate_churn(4000, seed=31)):
        # min_rows (1000): this test's own looks score drift, whatever the tests before it left
        wait_until(lambda: (world.plane.monitoring.engine.tick(watched)["rows"] or 0) >= 1000, timeout=30)
        time.sleep(3.0)  # traffic throughout both report windows below
        record = world.client.drift_report(watched, window_s=2.0)
        earlier = world.client.drift_report(watched, window_s=2.0, until=record.window_end.timestamp() - 1.0)
    assert record.summary["rows"] >= 400
    assert earlier.window_end < record.window_end
    with pytest.raises(ValidationError, match="future"):
        world.client.drift_report(watched, until=time.time() + 3600)
    for column in record.summary["columns"]:
        assert column["drifted"] == column["live_drifted"], column
    html = httpx.get(
        f"{world.api_url}/api/v1/monitors/{watched}/reports/{record.id}/html",
        headers={"Authorization": f"Bearer {world.settings.read_token()}"},
    )
    assert html.status_code == 200
    assert "<html" in html.text[:2000].lower()
    assert {r.id for r in world.client.drift_reports(watched)} >= {record.id, earlier.id}
    series = world.client.series(watched, window_s=30, step_s=5)
    assert series["series"]["1"][-1]["requests"] + series["series"]["1"][-2]["requests"] > 0
    assert series["series"]["all"][-1]["latency_p95_ms"] is not None
    with pytest.raises(ValidationError):
        world.client.series(watched, window_s=100_000, step_s=0.001)
    with pytest.raises(ValidationError, match="step_s"):
        world.client.series(watched, window_s=100, step_s=5e-324)

    # What the looks above computed is in the history: per column, per version, per step.
    # (the recorder writes looks in batches each second: the last ones may still be on their way)
    def persisted_with_drift() -> dict[str, Any] | None:
        history = world.client.monitor_history(
            watched, series=["drift", "latency_p95_ms"], start=time.time() - 600
        )
        found: dict[str, Any] = history["monitors"][watched]
        return found if "drift" in found["series"] else None

    persisted = wait_until(persisted_with_drift, timeout=30, every=1.0)
    assert persisted["endpoint"] == watched
    assert set(persisted["series"]["drift"]) == set(world.client.monitor(watched)["reference"]["columns"])
    assert {"all", "1"} <= set(persisted["series"]["latency_p95_ms"])
    points = persisted["series"]["latency_p95_ms"]["1"]
    assert len(points["ts"]) == len(points["mean"]) == len(points["count"]) > 0
    assert all(
        low <= mid <= high
        for low, mid, high in zip(points["min"], points["mean"], points["max"], strict=True)
    )
    assert sum(points["count"]) >= len(points["ts"])
    for bad in ({"step_s": 5e-324}, {"start": time.time(), "end": time.time() - 60}, {"step_s": 0.001}):
        with pytest.raises(ValidationError):
            world.client.monitor_history(watched, **bad)  # type: ignore[arg-type]
    metrics = httpx.get(f"{world.api_url}/api/v1/metrics").text
    assert 'workbench_drift_score{column="monthly_charges"' in metrics
    assert "workbench_monitor_value" in metrics


def test_reports_run_on_their_schedule(world: World, watched: str) -> None:
    world.client.create_monitor(
        {"name": "scheduled", "endpoint": watched, "window_s": 5, "every_s": 1, "reports": {"every_s": 60}}
    )
    engine = world.plane.monitoring.engine
    with RowTraffic(f"{world.router}/v2/models/{watched}/infer", generate_churn(3000, seed=41)):
        wait_until(lambda: (engine.tick("watched")["rows"] or 0) >= 600, timeout=30)
        engine.tick("scheduled")  # the first look is due: a report of its window, on the action pool
        engine.tick("scheduled")  # within the schedule's minute: none
        assert engine.wait_actions(timeout=120), "the scheduled report did not finish"
    reports = world.client.drift_reports("scheduled")
    assert [r.trigger for r in reports] == ["schedule"]
    assert reports[0].summary["rows"] >= 400
    audit = world.client.audit(target=f"endpoint:{watched}", action="monitor.report")
    assert audit[0].actor == "monitor:scheduled"


def _held_webhook(arrived: threading.Event, release: threading.Event, answered: threading.Event) -> str:
    """A real receiver that holds each POST open until the test releases it."""

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            arrived.set()
            release.wait(timeout=120)
            self.send_response(204)
            self.end_headers()
            answered.set()

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/alerts"


def test_a_hanging_webhook_holds_no_lock_other_monitors_looks_and_reads_go_on(
    world: World, watched: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench.monitoring import actions

    monkeypatch.setattr(actions, "WEBHOOK_TIMEOUT_S", 120.0)  # the receiver, not the client, decides
    arrived, release, answered = threading.Event(), threading.Event(), threading.Event()
    hook = _held_webhook(arrived, release, answered)
    for name in ("held", "free"):
        world.client.create_monitor({"name": name, "endpoint": watched, "window_s": 5, "every_s": 1})
    world.client.create_alert_rule(  # holds at once: its first look fires it
        {
            "name": "held-hook",
            "monitor": "held",
            "series": "requests_per_s",
            "op": ">=",
            "threshold": 0,
            "actions": [{"kind": "notify", "webhook": hook}],
        }
    )
    engine = world.plane.monitoring.engine
    try:
        engine.tick("held")  # fires; the webhook goes to the action pool
        assert arrived.wait(timeout=60), "the webhook was never called"
        # While the receiver holds the webhook open, everything else proceeds:
        free = engine.tick("free")  # another monitor's look
        assert free["ts"] > 0
        again = engine.tick("held")  # the same monitor's next look
        assert again["ts"] > 0
        assert world.client.monitor("free")["values"]["ts"] > 0  # a status read
        history = world.client.monitor_history(["held", "free"], start=time.time() - 60)
        assert set(history["monitors"]) == {"held", "free"}
        assert history["monitors"]["held"]["series"]["requests_per_s"]["all"]["count"]
        states = world.client.monitor_history("held", series="alert_state", start=time.time() - 60)
        assert states["monitors"]["held"]["series"]["alert_state"]["held-hook"]["max"][-1] == 2.0  # firing
        assert not answered.is_set(), "the webhook was answered before the other work finished"
    finally:
        release.set()
    assert engine.wait_actions(timeout=60)
    assert answered.is_set()
    notified = next(e for e in world.plane.monitoring.alerts(rule="held-hook") if e.kind == "action.notify")
    assert notified.details["ok"] is True  # it was one call, held open throughout, not a timeout
    assert len(_firing(world, "held-hook")) == 1  # two looks at a firing rule: one firing
