"""The automated retraining loop, end to end and with no human step: concept drift in live traffic →
the AUC-drop alert fires → its runbook action starts retrain-and-canary → the runbook retrains on the
labelled traffic, beats the champion on the newest rows, registers the new version with its lineage and
canaries it → the canary analysis promotes it. The audit log tells the story and links the runbook run."""

from __future__ import annotations

import time

import pytest

from tests.runbooks.conftest import Plane
from workbench.demo.dataset import generate_churn
from workbench.demo.traffic import DemoTraffic
from workbench.specs.runbook import RunStatus

pytestmark = pytest.mark.slow

RULE = "churn-auc-drop"


def test_concept_drift_alert_retrains_and_the_canary_promotes_the_new_version(served: Plane) -> None:
    client = served.client
    client.create_monitor({"name": "churn", "endpoint": "churn", "window_s": 15, "every_s": 1})
    client.create_alert_rule(
        {
            "name": RULE,
            "monitor": "churn",
            "series": "auc_drop",
            "op": ">",
            "threshold": 0.05,
            "for_s": 3,
            "severity": "critical",
            "cooldown_s": 3600,
            "actions": [
                {"kind": "notify"},
                {
                    "kind": "runbook",
                    "runbook": "retrain-and-canary",
                    # No endpoint: the alert fills in its monitor's.
                    "parameters": {
                        "model": "churn",
                        "window_s": 60,
                        "min_rows": 2000,
                        "data_wait_s": 90,
                        "canary_steps": "50",
                        "step_duration_s": 5,
                        "min_samples": 100,
                        # The canary also judges the new version on the labels fed back for its answers.
                        "accuracy_tolerance": 0.1,
                        "rollout_timeout_s": 300,
                    },
                },
            ],
        }
    )
    # The world changed: same customers, different behaviour. Labels arrive as feedback.
    drifted = generate_churn(20_000, seed=21, concept_drift=1.0)
    deadline = time.monotonic() + 420
    run = None
    with DemoTraffic(served.router, "churn", drifted, rate=250, workers=2, labels=client) as traffic:
        while time.monotonic() < deadline:
            runs = client.runbook_runs(runbook="retrain-and-canary")
            if runs:
                run = client.wait_run(runs[0].id, timeout_s=max(1.0, deadline - time.monotonic()))
                break
            time.sleep(1.0)
    assert run is not None, "the alert never started the retraining runbook"
    assert traffic.failed == 0
    assert run.status == RunStatus.SUCCEEDED, (run.error, run.failed_cell, run.archive_dir)
    assert run.trigger.kind.value == "alert"
    assert run.trigger.rule == RULE
    assert run.actor == f"alert:{RULE}"
    assert run.parameters["endpoint"] == "churn"
    assert run.endpoint == "churn"
    summary = run.summary
    assert summary is not None
    assert summary["outcome"] == "succeeded", summary  # the canary's phase
    assert summary["candidate_metric"] > summary["champion_metric"]
    new_version = summary["candidate_version"]
    rollout = client.rollout(summary["rollout"])
    verdicts = {m["name"]: m["verdict"] for m in rollout["analysis"]["metrics"]}
    assert verdicts == {"error_rate": "pass", "latency_p95": "pass", "accuracy": "pass"}, rollout["analysis"]

    # The new version is live and champion, with its lineage.
    assert [(r.version, r.weight) for r in client.get_endpoint("churn").spec.routes] == [(new_version, 100.0)]
    info = client.get_version("churn", new_version)
    assert "champion" in info.aliases
    assert info.lineage.parent_version == 1
    assert info.lineage.data_window
    assert "/" in info.lineage.data_window
    assert info.lineage.trained_by == f"runbook:retrain-and-canary/{run.id}"

    # The audit log tells the whole story, in order, and links to the executed runbook.
    story = client.audit(since=None, limit=1000, oldest_first=True)
    runbook_actor = f"runbook:retrain-and-canary/{run.id}"

    def first(predicate: object) -> int:
        for index, event in enumerate(story):
            if predicate(event):  # type: ignore[operator]
                return index
        raise AssertionError("missing from the audit log")

    fired = first(lambda e: e.action == "alert.firing" and e.actor == f"alert:{RULE}")
    started = first(lambda e: e.action == "runbook.run.start" and e.link == f"runbook-run:{run.id}")
    registered = first(lambda e: e.action == "model.register" and e.actor == runbook_actor)
    rolled_out = first(lambda e: e.action == "rollout.start" and e.actor == runbook_actor)
    champion = f"models:/churn/{new_version}"
    promoted = first(lambda e: e.action == "rollout.promote" and (e.after or {}).get("champion") == champion)
    finished = first(lambda e: e.action == "runbook.run.succeeded" and e.link == f"runbook-run:{run.id}")
    assert fired < started < registered < rolled_out < promoted < finished
    assert story[started].after["trigger"]["kind"] == "alert"
    assert story[finished].after["notebook"].endswith("executed.ipynb")
    assert client.run_notebook(run.id, format="html").startswith(b"<!DOCTYPE html>")
