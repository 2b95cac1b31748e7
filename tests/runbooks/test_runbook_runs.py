"""Runbook runs against a real control plane: catalogue, bad parameters, deploy and rollback, the
endpoint lock, cancel and timeout, schedules, and the read-only investigation runbooks."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.runbooks.conftest import Plane
from workbench.demo.dataset import generate_churn
from workbench.errors import ConflictError, NotFoundError, ValidationError
from workbench.specs.runbook import RunStatus

pytestmark = pytest.mark.slow

SHIPPED = {
    "deploy",
    "canary-rollout",
    "rollback",
    "retrain-and-canary",
    "drift-investigation",
    "incident-triage",
    "ab-experiment",
}


def _served_version(plane: Plane) -> list[tuple[int, float]]:
    return [(r.version, r.weight) for r in plane.client.get_endpoint("churn").spec.routes]


def _write_runbook(plane: Plane, name: str, body: str, *, locks: bool = False) -> None:
    notebook = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"name": "workbench", "display_name": "Workbench", "language": "python"},
            "language_info": {"name": "python"},
            "workbench": {"locks_endpoint": locks},
        }
    )
    parameters = nbformat.v4.new_code_cell(
        'endpoint = "churn"  # endpoint\nseconds: float = 60.0  # how long to sleep'
    )
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [nbformat.v4.new_markdown_cell(f"# {name}\n\nA test runbook."), parameters]
    notebook.cells.append(nbformat.v4.new_code_cell(body))
    nbformat.write(notebook, plane.home.parent / "extra-runbooks" / f"{name}.ipynb")


def test_the_catalogue_lists_the_shipped_runbooks_with_documented_parameters(served: Plane) -> None:
    runbooks = {r["name"]: r for r in served.client.runbooks()}
    assert set(runbooks) >= SHIPPED
    for name in SHIPPED:
        info = runbooks[name]
        assert info["title"], name
        assert info["description"], name
        assert info["parameters"], name
        assert all(p["help"] for p in info["parameters"]), (name, info["parameters"])
    retrain = {p["name"]: p for p in runbooks["retrain-and-canary"]["parameters"]}
    assert retrain["trainer"]["default"] == '"workbench.demo.retrain:train"'
    assert retrain["min_rows"]["type"] == "int"
    assert runbooks["rollback"]["locks_endpoint"] is True
    assert runbooks["incident-triage"]["locks_endpoint"] is False


def test_unknown_runbooks_and_parameters_are_refused_before_anything_runs(served: Plane) -> None:
    before = len(served.client.runbook_runs(limit=1000))
    with pytest.raises(ValidationError, match=r"no parameter.*endpiont"):
        served.client.run_runbook("rollback", {"endpiont": "churn"})
    with pytest.raises(Exception, match="does not exist"):
        served.client.run_runbook("no-such-runbook")
    with pytest.raises(ValidationError, match="runbook 'Bad Name'"):
        served.client.run_runbook("Bad Name")
    with pytest.raises(ValidationError, match="invalid endpoint name"):
        served.client.run_runbook("rollback", {"endpoint": "Not An Endpoint"})
    assert len(served.client.runbook_runs(limit=1000)) == before


def test_bad_parameters_fail_in_the_first_cell_and_the_run_is_archived(served: Plane) -> None:
    run = served.client.run_runbook("rollback", {"endpoint": "nope"}, wait_s=120)
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert run.error.startswith("ParameterError: endpoint 'nope' does not exist"), run.error
    assert run.failed_cell is not None
    assert run.failed_cell.tags == ["validate"]
    archive = Path(run.archive_dir)
    executed = nbformat.read(archive / "executed.ipynb", as_version=4)
    assert any(o.get("ename") == "ParameterError" for c in executed.cells for o in c.get("outputs", []))
    assert "ParameterError" in (archive / "executed.html").read_text()
    assert served.client.run_notebook(run.id, format="html").startswith(b"<!DOCTYPE html>")
    assert json.loads(served.client.run_notebook(run.id))["cells"]
    [event] = [
        e for e in served.client.audit(action="runbook.run.failed") if e.link == f"runbook-run:{run.id}"
    ]
    assert event.after["error"] == run.error
    assert _served_version(served) == [(1, 100.0)]  # nothing changed


def test_deploy_and_rollback_runbooks_change_the_endpoint_as_their_run(served: Plane) -> None:
    deployed = served.client.run_runbook(
        "deploy", {"endpoint": "churn", "model": "models:/churn@challenger", "reason": "test"}, wait_s=300
    )
    assert deployed.status == RunStatus.SUCCEEDED, (deployed.error, deployed.archive_dir)
    assert deployed.summary is not None
    assert deployed.summary["outcome"] == "deployed"
    assert deployed.summary["version"] == 2
    assert isinstance(deployed.summary["smoke_score"], float)
    assert _served_version(served) == [(2, 100.0)]
    rolled = served.client.run_runbook("rollback", {"endpoint": "churn", "reason": "test"}, wait_s=300)
    assert rolled.status == RunStatus.SUCCEEDED, (rolled.error, rolled.archive_dir)
    assert rolled.summary is not None
    assert rolled.summary["served_after"] == [["churn", 1, 100.0]]
    assert _served_version(served) == [(1, 100.0)]
    actors = {e.actor for e in served.client.audit(target="endpoint:churn", limit=20)}
    assert f"runbook:deploy/{deployed.id}" in actors
    assert f"runbook:rollback/{rolled.id}" in actors


def test_one_change_of_an_endpoint_at_a_time_and_cancel_releases_it(served: Plane) -> None:
    _write_runbook(served, "slow-change", "import time\ntime.sleep(seconds)", locks=True)
    slow = served.client.run_runbook("slow-change", {"seconds": 120})
    try:
        with pytest.raises(ConflictError, match=f"being changed by runbook run {slow.id}"):
            served.client.run_runbook("rollback", {"endpoint": "churn"})
        # A schedule due while the endpoint is held skips its run, and says so in the audit log.
        served.client.create_schedule(
            {"name": "locked-out", "runbook": "rollback", "every_s": 3600, "start_at": time.time()}
        )
        deadline = time.monotonic() + 30
        skipped: list[Any] = []
        while not skipped and time.monotonic() < deadline:
            skipped = served.client.audit(
                action="runbook.schedule.skipped", target="runbook-schedule:locked-out"
            )
            time.sleep(0.5)
        served.client.delete_schedule("locked-out")
        assert skipped, "the schedule neither ran nor recorded why not"
        assert f"being changed by runbook run {slow.id}" in (skipped[0].reason or "")
        # A read-only runbook is not blocked by the lock.
        triage = served.client.run_runbook(
            "incident-triage", {"endpoint": "churn", "window_s": 120}, wait_s=300
        )
        assert triage.status == RunStatus.SUCCEEDED, (triage.error, triage.archive_dir)
    finally:
        cancelled = served.client.cancel_run(slow.id)
    assert cancelled.status == RunStatus.CANCELLED
    assert cancelled.error == "cancelled by tester"
    assert (Path(cancelled.archive_dir) / "executed.html").exists()
    with pytest.raises(ConflictError, match="has ended"):
        served.client.cancel_run(slow.id)
    again = served.client.run_runbook("rollback", {"endpoint": "nope"}, wait_s=120)  # the lock is free
    assert again.status == RunStatus.FAILED


def test_a_run_past_its_timeout_is_stopped_and_recorded(served: Plane) -> None:
    _write_runbook(served, "sleeper", "import time\ntime.sleep(seconds)")
    run = served.client.run_runbook("sleeper", {"seconds": 600}, timeout_s=4, wait_s=120)
    assert run.status == RunStatus.TIMED_OUT
    assert run.error == "timed out after 4s"
    assert run.failed_cell is not None  # the cell that was running
    assert (Path(run.archive_dir) / "executed.ipynb").exists()


def test_incident_triage_names_the_version_and_recommends(served: Plane) -> None:
    run = served.client.run_runbook(
        "incident-triage", {"endpoint": "churn", "window_s": 600, "latency_p95_ms_threshold": 0.0}, wait_s=300
    )
    assert run.status == RunStatus.SUCCEEDED, (run.error, run.archive_dir)
    assert run.summary is not None
    assert run.summary["outcome"] == "triaged"
    assert run.summary["recent_changes"] >= 1  # the deploy and rollback runs above
    assert run.summary["recommendation"]


def test_a_schedule_starts_runs_from_the_control_plane_loop(served: Plane) -> None:
    start = time.time() + 1
    served.client.create_schedule(
        {
            "name": "triage-often",
            "runbook": "incident-triage",
            "parameters": {"endpoint": "churn", "window_s": 60},
            "every_s": 3600,
            "start_at": start,
        }
    )
    with pytest.raises(ConflictError, match="already exists"):
        served.client.create_schedule({"name": "triage-often", "runbook": "incident-triage", "every_s": 60})
    with pytest.raises(ValidationError):
        served.client.create_schedule({"name": "bad", "runbook": "incident-triage", "every_s": 1})
    deadline = time.monotonic() + 60
    runs = []
    while time.monotonic() < deadline and not runs:
        runs = [r for r in served.client.runbook_runs(runbook="incident-triage") if r.trigger.schedule]
        time.sleep(0.5)
    assert runs, "the schedule did not start a run"
    assert runs[0].trigger.kind.value == "schedule"
    assert runs[0].actor == "schedule:triage-often"
    record = served.client.wait_run(runs[0].id, timeout_s=300)
    assert record.status == RunStatus.SUCCEEDED, (record.error, record.archive_dir)
    [schedule] = served.client.schedules()
    assert schedule.last_run_id == runs[0].id
    assert schedule.next_at.timestamp() > time.time() + 3000
    served.client.delete_schedule("triage-often")


def test_an_alert_rule_naming_a_missing_runbook_or_parameter_is_refused_at_creation(served: Plane) -> None:
    served.client.create_monitor({"name": "guard", "endpoint": "churn", "window_s": 20, "every_s": 2})
    rule = {"name": "guard-errors", "monitor": "guard", "series": "error_rate", "op": ">", "threshold": 0.1}
    with pytest.raises(NotFoundError, match="runbook 'nope' does not exist"):
        served.client.create_alert_rule({**rule, "actions": [{"kind": "runbook", "runbook": "nope"}]})
    with pytest.raises(ValidationError, match="no parameter"):
        served.client.create_alert_rule(
            {**rule, "actions": [{"kind": "runbook", "runbook": "rollback", "parameters": {"endpiont": "x"}}]}
        )
    with pytest.raises(ValidationError, match="runbook"):
        served.client.create_alert_rule({**rule, "actions": [{"kind": "runbook", "runbook": "Bad Name"}]})
    assert served.client.alert_rules(monitor="guard") == []
    served.client.delete_monitor("guard")


def test_the_ab_experiment_runbook_starts_an_experiment_judges_it_and_promotes_the_winner(
    served: Plane,
) -> None:
    """Issue 13: one run creates and starts the experiment; simulated customers visit and their outcomes
    come back; a second run waits for the engine's decision and promotes the winner through a blue-green."""
    from workbench.demo.experiment import Customers, wait_for_assignment

    client = served.client
    client.deploy("ab", "models:/churn/1")
    refused = client.run_runbook(
        "ab-experiment", {"experiment": "offer", "endpoint": "ab", "strategy": "sideways"}, wait_s=120
    )
    assert refused.status == RunStatus.FAILED
    assert refused.error is not None
    assert "strategy must be one of" in refused.error
    parameters = {
        "experiment": "offer",
        "endpoint": "ab",
        "control": "models:/churn/1",
        "treatment": "models:/churn/2",
        "primary": "retained:binary",
        "guardrails": "offered:binary:lower:0.25",
    }
    started = client.run_runbook("ab-experiment", parameters, wait_s=300)
    assert started.status == RunStatus.SUCCEEDED, (started.error, started.archive_dir)
    assert started.summary is not None
    assert (started.summary["outcome"], started.summary["created"], started.summary["state"]) == (
        "continue",
        True,
        "running",
    )
    routes = [(r.version, r.weight) for r in client.get_endpoint("ab").spec.routes]
    assert routes == [(1, 50.0), (2, 50.0)]

    customers = Customers(served.router, "ab", generate_churn(3000, seed=23))
    customers.visit()
    assert customers.switched == 0
    wait_for_assignment(client, "offer", 3000)
    client.outcomes("offer", customers.outcomes())
    judged = client.run_runbook(
        "ab-experiment",
        {"experiment": "offer", "endpoint": "ab", "wait_s": 120.0, "promote": True, "strategy": "blue_green"},
        wait_s=600,
    )
    assert judged.status == RunStatus.SUCCEEDED, (judged.error, judged.archive_dir)
    assert judged.summary is not None
    assert (judged.summary["outcome"], judged.summary["winner"]) == ("winner", "treatment"), judged.summary
    assert judged.summary["interval"][0] > 0
    assert judged.summary["rollout"]
    assert judged.summary["state"] == "concluded"
    rollout = client.rollout(judged.summary["rollout"])["rollout"]
    assert (rollout["strategy"], rollout["candidate_version"]) == ("blue_green", 2)
    executed = nbformat.read(Path(judged.archive_dir) / "executed.ipynb", as_version=4)
    assert any(o.get("data", {}).get("image/png") for c in executed.cells for o in c.get("outputs", []))
    promoted = client.audit(action="experiment.promote", target="experiment:offer")[0]
    assert promoted.actor == f"runbook:ab-experiment/{judged.id}"
