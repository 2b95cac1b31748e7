"""The overview's card per endpoint: split, health, rollout, firing alerts and live numbers, from the feed."""

from __future__ import annotations

from datetime import UTC, datetime

from workbench.records.endpoints import EndpointRecord
from workbench.records.monitoring import AlertRuleRecord, MonitorRecord
from workbench.records.rollouts import RolloutRecord
from workbench.rollouts.phases import Phase
from workbench.specs.endpoint import EndpointSpec
from workbench.specs.monitor import AlertRuleSpec, MonitorSpec
from workbench.ui.feed import Snapshot
from workbench.ui.models.overview import summarise
from workbench.ui.views.overview import endpoint_card

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _snapshot() -> Snapshot:
    spec = EndpointSpec.model_validate(
        {
            "name": "churn",
            "routes": [
                {"model": "m", "version": 1, "weight": 75},
                {"model": "m", "version": 2, "weight": 25},
            ],
        }
    )
    rollout = RolloutRecord(
        id="r1", endpoint="churn", strategy="canary", spec={"steps": [{"weight": 5}, {"weight": 25}, {"weight": 50}]},
        phase=Phase.PROGRESSING, step_index=1, step_started_at=0.0, stable_model="m", stable_version=1,
        candidate_model="m", candidate_version=2, actor="alice", reason=None, revision=3, created_at=T0, updated_at=T0,
    )  # fmt: skip
    monitor = MonitorRecord(
        spec=MonitorSpec(name="churn-mon", endpoint="churn"), created_at=T0, updated_at=T0
    )
    rule = AlertRuleRecord(
        spec=AlertRuleSpec.model_validate(
            {"name": "slow", "monitor": "churn-mon", "series": "latency_p95_ms", "op": ">", "threshold": 50}
        ),
        state={"state": "firing"},
        created_at=T0,
        updated_at=T0,
    )
    replicas = [
        {"state": "ready", "device": "cpu", "restarts": 0},
        {"state": "starting", "device": "cpu", "restarts": 2},
    ]
    return Snapshot(
        endpoints=(EndpointRecord(spec=spec, revision=3, created_at=T0, updated_at=T0),),
        rollouts=(rollout,),
        rules=(rule,),
        monitors=(monitor,),
        replicas={"churn": replicas},
    )


def test_a_card_says_what_serves_how_healthy_what_moves_and_what_fires() -> None:
    recent = {"churn": {"all": {"ts": [1, 2], "requests": [10, 30], "errors": [0, 2], "p95_ms": [4.0, 9.5]}}}
    totals = {"churn": {"all": {"requests": 1234, "errors": 5}}}
    [card] = summarise(_snapshot(), totals, recent)
    assert card.routes == (("m", 1, 75.0), ("m", 2, 25.0))
    assert (card.replicas_ready, card.replicas, card.restarts) == (1, 2, 2)
    assert card.rollout == "canary of m v2: progressing, step 2/3"
    assert card.firing == ("slow",)
    assert card.requests_total == 1234
    assert card.requests_per_s == 20.0
    assert card.p95_ms == 9.5
    assert card.error_rate == 0.05
    html = endpoint_card(card)
    assert "alert firing: slow" in html
    assert "1/2 replicas ready" in html
    assert 'href="./endpoint?name=churn"' in html
    assert 'href="./rollout?id=r1"' in html


def test_a_quiet_endpoint_shows_dashes_not_zeros() -> None:
    [card] = summarise(_snapshot(), {}, {})
    assert (card.requests_per_s, card.p95_ms, card.error_rate, card.requests_total) == (None, None, None, 0)
    assert '<b data-testid="p95">-</b>' in endpoint_card(card)
