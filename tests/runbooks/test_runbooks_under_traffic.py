"""The runbooks that need live traffic (a canary to promotion, a drift investigation with its Evidently
report), the CLI, and a control plane killed mid-run: the run is recorded failed and its lock freed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from tests.runbooks.conftest import Plane
from workbench.demo.dataset import generate_churn
from workbench.demo.traffic import DemoTraffic
from workbench.launcher import ControlPlaneProcess
from workbench.specs.runbook import RunStatus

pytestmark = pytest.mark.slow


def _cli(plane: Plane, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "workbench", *args], env=plane.env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == expect, (args, result.stdout, result.stderr)
    return result


def test_canary_rollout_runbook_promotes_a_good_candidate_under_traffic(served: Plane) -> None:
    rows = generate_churn(5000, seed=31)
    with DemoTraffic(served.router, "churn", rows, rate=250, workers=2) as traffic:
        run = served.client.run_runbook(
            "canary-rollout",
            {
                "endpoint": "churn",
                "candidate": "models:/churn@challenger",
                "steps": "50",
                "step_duration_s": 3,
                "min_samples": 100,
                "checks": "error_rate",
            },
            wait_s=300,
        )
    assert traffic.failed == 0
    assert run.status == RunStatus.SUCCEEDED, (run.error, run.archive_dir)
    assert run.summary is not None
    assert run.summary["outcome"] == "succeeded"
    assert run.summary["failing_checks"] == []
    assert [(r.version, r.weight) for r in served.client.get_endpoint("churn").spec.routes] == [(2, 100.0)]
    assert "champion" in served.client.get_version("churn", 2).aliases


def test_drift_investigation_reads_the_monitor_and_archives_an_evidently_report(served: Plane) -> None:
    served.client.create_monitor({"name": "inputs", "endpoint": "churn", "window_s": 20, "every_s": 1})
    rows = generate_churn(6000, seed=32, covariate_drift=1.5)
    with DemoTraffic(served.router, "churn", rows, rate=300, workers=2):
        time.sleep(8)
        run = served.client.run_runbook("drift-investigation", {"monitor": "inputs", "top_k": 3}, wait_s=300)
    assert run.status == RunStatus.SUCCEEDED, (run.error, run.archive_dir)
    summary = run.summary
    assert summary is not None
    assert summary["outcome"] == "investigated"
    assert summary["drift_share"] > 0.25
    assert summary["drifted_columns"]
    assert Path(summary["report"]).is_file()
    # No labels: the harm is the estimated accuracy's drop, which a strong drift may or may not cause.
    hurt = summary["largest_drop"] is not None and summary["largest_drop"] > 0.05
    assert summary["recommendation"].startswith("retrain" if hurt else "watch"), summary


def test_the_cli_lists_runs_and_exits_non_zero_on_a_failed_run(served: Plane) -> None:
    listed = _cli(served, "runbook", "list").stdout
    for name in ("deploy", "retrain-and-canary", "incident-triage"):
        assert name in listed
    shown = _cli(served, "runbook", "show", "retrain-and-canary").stdout
    assert "trainer" in shown
    assert "module:function" in shown
    failed = _cli(served, "runbook", "run", "rollback", "-p", "endpoint=nope", expect=1).stdout
    assert "failed" in failed
    assert "ParameterError: endpoint 'nope' does not exist" in failed
    assert "[validate]" in failed
    bad = _cli(served, "runbook", "run", "rollback", "-p", "endpiont=x", expect=1)
    assert bad.stderr.startswith("error:")
    assert "endpiont" in bad.stderr
    malformed = _cli(served, "runbook", "run", "rollback", "-p", "endpoint", expect=2)
    assert "key=value" in malformed.stderr
    ok = _cli(
        served, "runbook", "run", "incident-triage", "-p", "endpoint=churn", "-p", "window_s=60", "--json"
    ).stdout
    record = json.loads(ok)
    assert record["status"] == "succeeded"
    assert record["parameters"] == {"endpoint": "churn", "window_s": 60}  # typed, not strings
    runs = _cli(served, "runbook", "runs", "--runbook", "incident-triage").stdout
    assert record["id"] in runs
    status = _cli(served, "runbook", "status", record["id"]).stdout
    assert "succeeded" in status
    assert "recommendation=" in status
    _cli(served, "monitor", "create", "cli-mon", "churn", "--window", "20", "--every", "2")
    _cli(
        served,
        "monitor",
        "rule",
        "create",
        "cli-rule",
        "cli-mon",
        "error_rate > 0.5",
        "--runbook",
        "rollback",
        "-p",
        "endpoint=churn",
    )
    [rule] = json.loads(_cli(served, "monitor", "rule", "list", "--monitor", "cli-mon", "--json").stdout)
    assert rule["spec"]["actions"][-1] == {
        "kind": "runbook",
        "runbook": "rollback",
        "parameters": {"endpoint": "churn"},
    }
    missing = _cli(
        served,
        "monitor",
        "rule",
        "create",
        "cli-rule-2",
        "cli-mon",
        "error_rate > 0.5",
        "--runbook",
        "nope",
        expect=1,
    )
    assert "runbook 'nope' does not exist" in missing.stderr
    out = served.home.parent / "triage.html"
    _cli(served, "runbook", "notebook", record["id"], "--html", "-o", str(out))
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_a_run_of_a_control_plane_killed_mid_run_is_recorded_failed_and_its_lock_freed(served: Plane) -> None:
    notebook = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"name": "workbench", "display_name": "Workbench", "language": "python"},
            "language_info": {"name": "python"},
            "workbench": {"locks_endpoint": True},
        }
    )
    parameters = nbformat.v4.new_code_cell('endpoint = "churn"  # endpoint')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell("import time\ntime.sleep(300)")]
    nbformat.write(notebook, served.home.parent / "extra-runbooks" / "stuck.ipynb")
    run = served.client.run_runbook("stuck")
    time.sleep(3)
    process = served.process.process
    assert process is not None
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    restarted = ControlPlaneProcess(served.url, served.env, served.home / "logs" / "cp-restarted.log").start()
    served.process = restarted
    record = served.client.runbook_run(run.id)
    child = int((Path(record.archive_dir) / "child.pid").read_text())
    assert (
        not Path(f"/proc/{child}/cmdline").exists()
        or b"runbooks.child" not in Path(f"/proc/{child}/cmdline").read_bytes()
    ), "the orphaned papermill child of the killed control plane is still running"
    assert record.status == RunStatus.FAILED
    assert record.error == "the control plane stopped while the run was in progress"
    # The endpoint is free again.
    again = served.client.run_runbook("rollback", {"endpoint": "nope"}, wait_s=120)
    assert again.status == RunStatus.FAILED
    assert again.error is not None
    assert again.error.startswith("ParameterError")
