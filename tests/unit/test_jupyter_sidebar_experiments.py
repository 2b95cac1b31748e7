"""The sidebar's A/B experiments, without a server: what a card shows of an endpoint's experiment (units
per variant, verdict, the primary metric's always-valid interval and its course over the looks), which
experiment it shows, the small message a new look sends, and the previews of the experiment's actions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workbench.errors import ConflictError, ValidationError
from workbench.jupyter import sidebar
from workbench.jupyter.hub import LiveHub
from workbench.jupyter.proposals import (
    ExperimentAction,
    parse_ask,
    perform_experiment_action,
    preview_experiment_action,
)
from workbench.jupyter.sidebar import (
    SPARK_POINTS,
    experiment_delta,
    experiment_entry,
    experiments_by_endpoint,
    shown_experiment,
    sidebar_state,
)
from workbench.records.endpoints import EndpointRecord
from workbench.records.experiments import ExperimentRecord, ExperimentState
from workbench.records.rollouts import RolloutRecord
from workbench.revisions.model import Revision, RevisionCause
from workbench.rollouts.phases import Phase
from workbench.specs.endpoint import EndpointSpec
from workbench.specs.experiment import ExperimentSpec
from workbench.ui.snapshot import Snapshot, Update

T0 = datetime(2026, 12, 1, tzinfo=UTC)
BASELINE = [{"model": "m", "version": 1, "weight": 100.0}]


def _spec(name: str = "offer", endpoint: str = "churn") -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "name": name,
            "endpoint": endpoint,
            "variants": [
                {"name": "control", "model": "m", "version": 1, "weight": 50},
                {"name": "treatment", "model": "m", "version": 2, "weight": 50},
            ],
            "primary": {"name": "retained", "kind": "binary"},
        }
    )


def _decision(
    at: float,
    counts: tuple[int, int] = (812, 790),
    interval: tuple[float | None, float | None] = (-0.0123456, 0.0745678),
    verdict: str = "continue",
    winner: str | None = None,
) -> dict[str, Any]:
    lower, upper = interval
    return {
        "at": at,
        "verdict": verdict,
        "reason": "no variant is established better or worse on retained yet",
        "winner": winner,
        "sample_ratio": {
            "counts": list(counts),
            "expected_shares": [0.5, 0.5],
            "p_value": 0.58,
            "sequential_p_value": 1.0,
            "alarm": False,
        },
        "primary": [
            {
                "variant": "treatment",
                "metric": "retained",
                "n_control": counts[0] - 100,
                "n_variant": counts[1] - 100,
                "control_mean": 0.71234567,
                "variant_mean": 0.74345678,
                "estimate": 0.0311111,
                "lower": lower,
                "upper": upper,
                "relative": 0.0437,
                "p_value": 0.2,
                "adjusted_p": 0.2,
                "direction": "better" if winner else None,
            }
        ],
        "guardrails": [],
        "cuped_theta": {},
    }


def _looks(count: int, start: float = 1_000.0) -> tuple[dict[str, Any], ...]:
    """Looks every 10 s whose interval narrows; the first two are not bounded yet (None)."""
    looks = []
    for i in range(count):
        half = 1.0 / (i + 1)
        interval = (None, None) if i < 2 else (0.03 - half, 0.03 + half)
        looks.append(
            {
                "ts": start + 10 * i,
                "units": 20 * (i + 1),
                "decision": _decision(start + 10 * i, interval=interval),
            }
        )
    return tuple(looks)


def _experiment(
    state: ExperimentState = ExperimentState.RUNNING,
    *,
    name: str = "offer",
    decision: dict[str, Any] | None = None,
    ended: datetime | None = None,
) -> ExperimentRecord:
    return ExperimentRecord(
        name=name,
        endpoint="churn",
        spec=_spec(name),
        state=state,
        decision=decision if decision is not None else _decision(1_100.0),
        actor="alice",
        created_at=T0,
        started_at=T0,
        ended_at=ended,
        revision=4,
        baseline=BASELINE,
        running_since=T0 if state == ExperimentState.RUNNING else None,
    )


def _endpoint(*routes: tuple[int, float], name: str = "churn") -> EndpointRecord:
    spec = EndpointSpec.model_validate(
        {"name": name, "routes": [{"model": "m", "version": v, "weight": w} for v, w in routes]}
    )
    return EndpointRecord(spec=spec, revision=7, created_at=T0, updated_at=T0)


def _revision(at: datetime) -> Revision:
    return Revision(
        endpoint="churn",
        revision=7,
        at=at,
        cause=RevisionCause.EXPERIMENT,
        spec=_endpoint((1, 100.0)).spec,
        actor="alice",
    )


def _snapshot(*experiments: ExperimentRecord, looks: int = 12, **changes: Any) -> Snapshot:
    snapshot = Snapshot(
        at=2_000.0,
        endpoints=(_endpoint((1, 50.0), (2, 50.0)), _endpoint((1, 100.0), name="quiet")),
        experiments=experiments,
        experiment_looks={e.name: _looks(looks) for e in experiments},
    )
    return replace(snapshot, **changes)


# ------------------------------------------------------------------------------------------ the card
def test_a_running_experiment_is_on_its_endpoints_card_with_units_verdict_and_interval() -> None:
    state = sidebar_state(_snapshot(_experiment()), {}, {})
    churn, quiet = state["endpoints"]
    assert quiet["experiment"] is None
    entry = churn["experiment"]
    assert (entry["name"], entry["state"], entry["control"]) == ("offer", "running", "control")
    assert [(v["name"], v["version"], v["units"]) for v in entry["variants"]] == [
        ("control", 1, 812),
        ("treatment", 2, 790),
    ]
    assert (entry["verdict"], entry["winner"], entry["srm"]) == ("continue", None, False)
    assert entry["reason"].startswith("no variant is established")
    assert entry["metric"] == {"name": "retained", "kind": "binary", "better": "higher"}
    assert entry["level"] == 0.95  # one treatment at alpha 0.05
    [primary] = entry["primary"]
    # Four significant figures are plenty for a card and keep the message short.
    assert (primary["estimate"], primary["lower"], primary["upper"]) == (0.03111, -0.01235, 0.07457)
    assert (primary["n_control"], primary["n_variant"]) == (712, 690)
    assert (entry["looks"], entry["last_look"]) == (12, 1_110.0)
    json.dumps(state, allow_nan=False)  # strict JSON: no NaN, no infinity


def test_the_sparkline_follows_the_interval_over_the_looks_thinned_with_the_newest_kept() -> None:
    entry = experiment_entry(_experiment(), _looks(500))
    points = entry["series"]["treatment"]
    assert len(points) == SPARK_POINTS
    assert (points[0][0], points[-1][0]) == (1_000.0, 1_000.0 + 10 * 499)  # first and newest
    assert [p[0] for p in points] == sorted(p[0] for p in points)
    assert points[0][3:] == [None, None]  # not bounded yet: no invented number
    widths = [p[4] - p[3] for p in points if p[3] is not None and p[4] is not None]
    assert widths == sorted(widths, reverse=True)  # the confidence sequence narrows
    assert points[-1][1] == 20 * 500  # units at that look
    few = experiment_entry(_experiment(), _looks(3))["series"]["treatment"]
    assert len(few) == 3


def test_an_experiment_before_its_first_look_shows_no_figures() -> None:
    entry = experiment_entry(_experiment(decision={}), ())
    assert (entry["verdict"], entry["primary"], entry["looks"], entry["last_look"]) == (None, [], 0, None)
    assert [v["units"] for v in entry["variants"]] == [None, None]
    assert entry["series"] == {"treatment": []}


# ------------------------------------------------------------------------------ which experiment shows
def test_the_card_shows_the_active_experiment_else_a_concluded_one_until_the_endpoint_moves_on() -> None:
    ended = T0 + timedelta(hours=1)
    done = _experiment(ExperimentState.CONCLUDED, name="old", ended=ended)
    running = _experiment(name="new")
    draft = _experiment(ExperimentState.DRAFT, name="later")
    assert shown_experiment(_snapshot(draft, running, done), "churn") == running
    assert shown_experiment(_snapshot(draft, done), "churn") == done  # a draft never shows
    assert shown_experiment(_snapshot(draft), "churn") is None
    # Its own conclusion's revision (the same moment) does not count as moving on; a later one does.
    same_time = {"churn": (_revision(ended + timedelta(seconds=0.5)),)}
    assert shown_experiment(_snapshot(done, histories=same_time), "churn") == done
    later = {"churn": (_revision(ended + timedelta(minutes=5)),)}
    assert shown_experiment(_snapshot(done, histories=later), "churn") is None
    # Promoting it starts a rollout: the card then shows the rollout instead.
    rollout = RolloutRecord(
        id="r1", endpoint="churn", strategy="canary", spec={}, phase=Phase.PROGRESSING, step_index=0,
        step_started_at=0.0, stable_model="m", stable_version=1, candidate_model="m", candidate_version=2,
        actor="alice", reason=None, revision=1, created_at=ended + timedelta(seconds=1), updated_at=ended,
    )  # fmt: skip
    assert shown_experiment(_snapshot(done, rollouts=(rollout,)), "churn") is None
    assert shown_experiment(_snapshot(running, endpoints=(_endpoint((1, 100.0)),)), "other") is None


# ------------------------------------------------------------------------------------- live messages
def test_a_new_look_changes_only_its_endpoints_entry() -> None:
    before = experiments_by_endpoint(_snapshot(_experiment(), looks=12))
    after = experiments_by_endpoint(_snapshot(_experiment(decision=_decision(1_120.0)), looks=13))
    assert experiment_delta(before, before) == {}
    delta = experiment_delta(before, after)
    assert list(delta) == ["churn"]
    assert (delta["churn"] or {})["looks"] == 13
    gone = experiments_by_endpoint(_snapshot())
    assert experiment_delta(after, gone) == {"churn": None}


class _Feed:
    def traffic(self, endpoint: str, seconds: int) -> dict[str, Any]:
        return {}


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


def _messages(hub: LiveHub, loop: asyncio.AbstractEventLoop, update: Update) -> list[tuple[str, Any]]:
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(maxsize=8)
    hub._queues = {queue}
    hub._on_update(update)
    loop.run_until_complete(asyncio.sleep(0))
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


def test_the_hub_sends_the_whole_state_on_a_change_and_then_only_a_looks_experiment(
    loop: asyncio.AbstractEventLoop,
) -> None:
    hub = LiveHub(lambda: pytest.fail("no control plane in this test"))
    hub._loop = loop
    hub._feed = _Feed()  # type: ignore[assignment]
    first = _snapshot(_experiment(), looks=12)
    [(kind, state)] = _messages(hub, loop, Update(1, first, frozenset({"state"}), {}, {}))
    assert (kind, state["endpoints"][0]["experiment"]["looks"]) == ("state", 12)

    looked = _snapshot(_experiment(decision=_decision(1_120.0)), looks=500)
    messages = _messages(hub, loop, Update(2, looked, frozenset({"experiments", "traffic"}), {}, {}))
    assert [kind for kind, _ in messages] == ["experiments", "traffic"]
    delta = messages[0][1]
    assert list(delta["endpoints"]) == ["churn"]  # the quiet endpoint is not sent again
    assert delta["endpoints"]["churn"]["looks"] == 500
    # A look costs a few kilobytes to send however long the experiment has run (the sparkline is thinned).
    assert len(json.dumps(delta)) < 3_500
    # The same look polled again sends nothing about experiments.
    assert [k for k, _ in _messages(hub, loop, Update(3, looked, frozenset({"experiments"}), {}, {}))] == []


# ------------------------------------------------------------------------------------------- actions
class _Client:
    """The calls a preview makes, answered from one experiment and one endpoint."""

    def __init__(self, record: ExperimentRecord, endpoint: EndpointRecord, fresh: dict[str, Any]) -> None:
        self.record, self.endpoint, self.fresh = record, endpoint, fresh
        self.calls: list[tuple[str, Any]] = []

    def experiment(self, name: str) -> dict[str, Any]:
        assert name == self.record.name
        return {"experiment": self.record.model_dump(mode="json"), "assigned": {}, "decision": self.fresh}

    def experiments(self, *, endpoint: str | None = None) -> list[ExperimentRecord]:
        return [self.record] if endpoint == self.record.endpoint else []

    def get_endpoint(self, name: str) -> EndpointRecord:
        return self.endpoint

    def experiment_action(self, name: str, action: str, **kwargs: Any) -> ExperimentRecord:
        self.calls.append((action, kwargs))
        state = {"pause": ExperimentState.PAUSED, "resume": ExperimentState.RUNNING}[action]
        self.endpoint = _endpoint(*([(1, 100.0)] if action == "pause" else [(1, 50.0), (2, 50.0)]))
        return self.record.model_copy(update={"state": state})

    def promote_experiment(self, name: str, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("promote", kwargs))
        rollout = {"id": "r9", "candidate_model": "m", "candidate_version": 2, "phase": "pending"}
        return {"experiment": {}, "rollout": rollout}


def _preview(client: _Client, action: str, experiment: str | None = None) -> Any:
    return preview_experiment_action(client, ExperimentAction("churn", action, experiment))  # type: ignore[arg-type]


def test_the_browser_asks_for_an_experiment_action_by_endpoint_and_a_bad_one_is_refused() -> None:
    assert parse_ask(
        {"kind": "experiment_action", "endpoint": "churn", "action": "pause"}
    ) == ExperimentAction("churn", "pause")
    with pytest.raises(ValidationError, match="invalid action"):
        parse_ask({"kind": "experiment_action", "endpoint": "churn", "action": "restart"})


def test_pause_and_conclude_previews_give_the_baseline_its_traffic_back() -> None:
    client = _Client(_experiment(), _endpoint((1, 50.0), (2, 50.0)), _decision(1_200.0))
    resolved, preview = _preview(client, "pause")
    assert resolved == ExperimentAction("churn", "pause", "offer")  # the experiment found is named
    assert (preview.routes_before, preview.routes_after) == ("m v1 50% / v2 50%", "m v1 100%")
    assert preview.action == "pause experiment offer"
    _, preview = _preview(client, "conclude", "offer")
    assert preview.routes_after == "m v1 100%"
    assert "(the latest: continue: no variant is established" in preview.detail
    with pytest.raises(ConflictError, match="only a paused one resumes"):
        _preview(client, "resume")
    paused = _Client(_experiment(ExperimentState.PAUSED), _endpoint((1, 100.0)), _decision(1_200.0))
    resolved, preview = _preview(paused, "resume")
    assert (preview.routes_after, preview.expected_revision) == ("m v1 50% / v2 50%", 4)
    # Confirmed: the resume is sent with the experiment's revision, so a stale one is refused (409).
    message = perform_experiment_action(paused, resolved, preview, reason="from JupyterLab")  # type: ignore[arg-type]
    assert message == "resumed experiment offer; churn serves m v1 50% / v2 50%"
    assert paused.calls == [("resume", {"reason": "from JupyterLab", "expected_revision": 4})]


def test_promote_without_a_winner_is_refused_with_the_reason_and_with_one_names_the_winner() -> None:
    client = _Client(_experiment(), _endpoint((1, 50.0), (2, 50.0)), _decision(1_200.0))
    with pytest.raises(ConflictError, match="has no winner to promote") as refused:
        _preview(client, "promote")
    assert "no variant is established better or worse" in refused.value.message
    won = _decision(1_200.0, interval=(0.01, 0.05), verdict="winner", winner="treatment")
    ended = _experiment(ExperimentState.CONCLUDED, decision=won, ended=T0)
    client = _Client(ended, _endpoint((1, 100.0)), _decision(1_300.0))  # a concluded one: its own decision
    resolved, preview = _preview(client, "promote")
    assert resolved == ExperimentAction("churn", "promote", "offer", "treatment")
    assert (preview.routes_before, preview.routes_after) == ("m v1 100%", "m v1 95% / v2 5%")
    assert "treatment (m v2) won" in preview.detail
    assert "5% → 25% → 50% → 100%" in preview.detail
    message = perform_experiment_action(client, resolved, preview, reason="from JupyterLab")  # type: ignore[arg-type]
    assert message.startswith("promoted treatment of experiment offer: canary rollout r9 of m v2")
    [(_, sent)] = client.calls
    assert (sent["strategy"], sent["variant"]) == ("canary", "treatment")  # what the preview showed


def test_an_experiment_on_another_endpoint_or_none_at_all_is_said() -> None:
    client = _Client(_experiment(), _endpoint((1, 100.0), name="quiet"), _decision(1_200.0))
    with pytest.raises(ValidationError, match="runs on 'churn', not on 'quiet'"):
        preview_experiment_action(client, ExperimentAction("quiet", "pause", "offer"))  # type: ignore[arg-type]
    with pytest.raises(ConflictError, match="no running or paused experiment to pause"):
        preview_experiment_action(client, ExperimentAction("quiet", "pause"))  # type: ignore[arg-type]


def test_rounding_keeps_four_significant_figures_and_drops_what_json_cannot_say() -> None:
    assert sidebar._figure(0.000123456) == 0.0001235
    assert sidebar._figure(float("inf")) is None
    assert sidebar._figure(None) is None
