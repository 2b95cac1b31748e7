"""Canary rollouts end to end: real router and replicas under generated concurrent load; the
controller ticks with the real clock and the real analysis of the prediction log."""

from __future__ import annotations

import threading
import time

import httpx
import orjson
import pytest

from tests.serving.conftest import World, oip_columns, wait_until
from workbench.errors import ConflictError
from workbench.records.rollouts import RolloutAnalysis
from workbench.rollouts.phases import Phase
from workbench.specs.analysis import AnalysisSpec, MetricCheck
from workbench.specs.rollout import CanaryStep, RolloutSpec

ANALYSIS = AnalysisSpec(
    checks=(
        MetricCheck(name="errors", kind="error_rate", threshold=0.05),
        MetricCheck(name="latency_p95", kind="latency", threshold=0.25, quantile=0.95),
    ),
    min_samples=100,
)


class Load:
    """Concurrent clients sending requests until stopped (cycling through ``body`` when it is a list);
    records each answer's status and the version that gave it.

    Paced at ``rate`` requests a second in all (None: as fast as answers come). Unpaced, four clients
    kept the machine's two cores busy with requests no check needed (a third of a pytest worker's CPU was
    httpx alone, and the router and replicas spent as much again): the analyses need a few hundred
    requests per version, and the switches a steady stream, not a saturated one."""

    def __init__(
        self, url: str, body: bytes | list[bytes], workers: int = 4, rate: float | None = 300.0
    ) -> None:
        self.url = url
        self.bodies = body if isinstance(body, list) else [body]
        self.answers: list[tuple[int, str | None]] = []
        self.interval = workers / rate if rate else 0.0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(offset,), daemon=True) for offset in range(workers)
        ]

    def _run(self, offset: int) -> None:
        sent = offset
        due = time.monotonic() + self.interval * offset / len(self._threads)  # the clients interleave
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                if self.interval:
                    # Never a burst to catch up: a slow answer only delays the next request.
                    wait = due - time.monotonic()
                    if wait > 0 and self._stop.wait(wait):
                        break
                    due = max(due, time.monotonic()) + self.interval
                body = self.bodies[sent % len(self.bodies)]
                sent += len(self._threads)
                version = None
                try:
                    response = client.post(
                        self.url, content=body, headers={"content-type": "application/json"}
                    )
                    status, version = response.status_code, response.headers.get("x-workbench-model-version")
                except httpx.HTTPError:
                    status = -1
                self.answers.append((status, version))

    @property
    def statuses(self) -> list[int]:
        return [status for status, _ in self.answers]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def _run_to_the_end(world: World, rollout_id: str, timeout: float = 120) -> Phase:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = world.plane.rollouts.advance(rollout_id)
        if record.phase.is_terminal:
            return record.phase
        time.sleep(0.5)
    raise AssertionError(f"rollout {rollout_id} did not finish: {world.plane.rollouts.get(rollout_id).phase}")


def _spec(endpoint: str, candidate: str) -> RolloutSpec:
    return RolloutSpec(
        endpoint=endpoint,
        candidate=candidate,
        steps=(CanaryStep(weight=30, min_duration_s=1), CanaryStep(weight=60, min_duration_s=1)),
        analysis=ANALYSIS,
        step_timeout_s=90,
        tick_s=0.5,
    )


@pytest.mark.parametrize(
    ("endpoint", "candidate", "expected"),
    [
        ("canary-good", "models:/churn/2", Phase.SUCCEEDED),
        ("canary-errors", "models:/churn/4", Phase.ROLLED_BACK),
        ("canary-slow", "models:/churn/5", Phase.ROLLED_BACK),
    ],
)
def test_canary_promotes_a_good_candidate_and_rolls_back_bad_ones(
    world: World, endpoint: str, candidate: str, expected: Phase
) -> None:
    world.client.deploy(endpoint, "models:/churn/1")
    body = orjson.dumps(oip_columns(world.frame.head(1)))
    with Load(f"{world.router}/v2/models/{endpoint}/infer", body) as load:
        record = world.plane.rollouts.start(_spec(endpoint, candidate), actor="tester", reason="test")
        assert record.phase == Phase.PROGRESSING
        with pytest.raises(ConflictError, match="already has an active rollout"):
            world.plane.rollouts.start(_spec(endpoint, candidate), actor="tester")
        phase = _run_to_the_end(world, record.id)
    assert phase == expected
    routes = world.client.get_endpoint(endpoint).spec.routes
    events = world.plane.rollouts.events(record.id)
    audit = [e.action for e in world.client.audit(target=f"endpoint:{endpoint}", oldest_first=True)]
    if expected == Phase.SUCCEEDED:
        assert set(load.statuses) == {200}, "a request failed while routes changed"
        assert [(r.version, r.weight) for r in routes] == [(2, 100.0)]
        assert world.client.resolve("models:/churn@champion").version == 2
        assert "rollout.promote" in audit
    else:
        assert [(r.version, r.weight) for r in routes] == [(1, 100.0)]
        failing = events[-1]
        assert failing.phase == Phase.ROLLED_BACK
        metric = "errors" if endpoint == "canary-errors" else "latency_p95"
        assert metric in failing.message
        rollback = world.client.audit(target=f"endpoint:{endpoint}", action="rollout.rollback")[0]
        assert metric in (rollback.reason or "")
        assert rollback.link == f"rollout:{record.id}"
    assert [e.phase for e in events][:2] == [Phase.PENDING, Phase.PROGRESSING]
    world.client.set_alias("churn", "champion", 1, reason="reset for the next test")


def test_every_tick_is_recorded_for_charts_of_the_estimates_and_bounds(world: World) -> None:
    """A page opened mid-canary reads every tick's analysis so far, then polls for newer ones only."""
    from workbench.errors import NotFoundError

    world.client.deploy("canary-ticks", "models:/churn/1")
    spec = RolloutSpec(
        endpoint="canary-ticks",
        candidate="models:/churn/2",
        steps=(CanaryStep(weight=30, min_duration_s=300),),  # it waits at 30 % for as long as the test runs
        analysis=ANALYSIS,
        step_timeout_s=600,
        tick_s=0.5,
    )
    body = orjson.dumps(oip_columns(world.frame.head(1)))

    def measured() -> list[RolloutAnalysis]:
        world.plane.rollouts.advance(record.id)
        rows = world.client.rollout_analyses(record.id)
        bounded = [a for a in rows if all(m["estimate"] is not None for m in a.evidence["metrics"])]
        return rows if len(bounded) >= 2 else []

    with Load(f"{world.router}/v2/models/canary-ticks/infer", body):
        record = world.plane.rollouts.start(spec, actor="tester", reason="ticks")
        rows = wait_until(measured, timeout=60, every=0.3)
        newer = world.client.rollout_analyses(record.id, after_id=rows[-1].id)
        assert newer == []
        world.plane.rollouts.advance(record.id)
        newer = world.client.rollout_analyses(record.id, after_id=rows[-1].id)
    world.client.rollout_action(record.id, "abort", reason="seen enough")
    assert [a.id for a in rows] == sorted(a.id for a in rows)
    assert len(newer) == 1  # only the tick after the cursor
    assert newer[0].id > rows[-1].id
    assert world.client.rollout_analyses(record.id, limit=2) == rows[:2]
    last = newer[0]
    assert (last.rollout_id, last.step_index, last.weight, last.decision) == (record.id, 0, 30.0, "wait")
    assert last.at >= rows[-1].at
    assert {m["name"] for m in last.evidence["metrics"]} == {"errors", "latency_p95"}
    for check in last.evidence["metrics"]:
        assert check["estimate"] is not None, check
        assert check["low"] <= check["high"], check
        assert min(check["samples"]) > 0, check
    # Ticks are not events: the history still has its transitions only.
    assert [e.phase for e in world.plane.rollouts.events(record.id)] == [
        Phase.PENDING,
        Phase.PROGRESSING,
        Phase.ROLLED_BACK,
    ]
    with pytest.raises(NotFoundError):
        world.client.rollout_analyses("no-such-rollout")


def test_manual_control_through_the_api(world: World) -> None:
    from workbench.errors import NotFoundError, ValidationError

    world.client.deploy("canary-manual", "models:/churn/1")
    spec = _spec("canary-manual", "models:/churn/2")
    record = world.client.start_rollout(spec, reason="manual")
    assert [(r.version, r.weight) for r in world.client.get_endpoint("canary-manual").spec.routes] == [
        (1, 70.0),
        (2, 30.0),
    ]
    assert world.client.resolve("models:/churn@challenger").version == 2
    paused = world.client.rollout_action(record.id, "pause")
    assert paused.phase == Phase.PAUSED
    assert world.plane.rollouts.advance(record.id).phase == Phase.PAUSED  # a paused canary does not move
    with pytest.raises(ConflictError, match="cannot go to 'paused'"):
        world.client.rollout_action(record.id, "pause")
    assert world.client.rollout_action(record.id, "resume").phase == Phase.PROGRESSING
    aborted = world.client.rollout_action(record.id, "abort", reason="changed my mind")
    assert aborted.phase == Phase.ROLLED_BACK
    assert [(r.version, r.weight) for r in world.client.get_endpoint("canary-manual").spec.routes] == [
        (1, 100.0)
    ]
    with pytest.raises(NotFoundError):
        world.client.resolve("models:/churn@challenger")
    for action in ("abort", "promote"):  # an ended rollout changes no traffic any more
        with pytest.raises(ConflictError, match="has ended"):
            world.client.rollout_action(record.id, action)
    assert [(r.version, r.weight) for r in world.client.get_endpoint("canary-manual").spec.routes] == [
        (1, 100.0)
    ]
    detail = world.client.rollout(record.id)
    assert [e["phase"] for e in detail["events"]] == [
        "pending",
        "progressing",
        "paused",
        "progressing",
        "rolled_back",
    ]
    with pytest.raises(NotFoundError, match="unknown rollout action"):
        world.client.rollout_action(record.id, "explode")
    with pytest.raises(ValidationError):
        world.client.start_rollout({"endpoint": "canary-manual", "candidate": "models:/churn/2", "steps": []})
    with pytest.raises(NotFoundError):
        world.client.start_rollout({"endpoint": "nope", "candidate": "models:/churn/2"})


def test_one_command_rollback_after_a_deploy_and_after_a_completed_rollout(world: World) -> None:
    from workbench.errors import ConflictError as Conflict

    world.client.deploy("undo", "models:/churn/1")
    with pytest.raises(Conflict, match="no earlier revision"):
        world.client.rollback("undo")
    world.client.deploy("undo", "models:/churn/2")
    restored = world.client.rollback("undo", reason="v2 misbehaves")
    assert [(r.version, r.weight) for r in restored.endpoint.spec.routes] == [(1, 100.0)]
    body = oip_columns(world.frame.head(1))
    assert (
        httpx.post(f"{world.router}/v2/models/undo/infer", json=body).headers["x-workbench-model-version"]
        == "1"
    )

    # A completed rollout is undone as a whole: back to its stable version, champion included.
    record = world.plane.rollouts.start(_spec("undo", "models:/churn/2"), actor="tester")
    world.plane.rollouts.promote(record.id, actor="tester", reason="looks fine")
    assert world.client.resolve("models:/churn@champion").version == 2
    restored = world.client.rollback("undo", reason="after all, no")
    assert [(r.version, r.weight) for r in restored.endpoint.spec.routes] == [(1, 100.0)]
    assert world.client.resolve("models:/churn@champion").version == 1
    rollback = world.client.audit(target="endpoint:undo", action="endpoint.rollback")[0]
    assert rollback.reason == "after all, no"
    assert rollback.after["routes"] == [{"model": "churn", "version": 1, "weight": 100.0}]
    causes = [r.cause.value for r in world.client.history("undo")]
    assert causes[0] == "manual_rollback"
    assert "promote" in causes
