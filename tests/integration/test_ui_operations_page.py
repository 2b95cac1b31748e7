"""The Runbooks & audit page against a real control plane: the form built from a runbook's declared
parameters, refusals before anything runs, a run started and cancelled through the desk as the signed-in
user, its status followed live from the feed, and the audit timeline with its filter and older events."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._runbooks import settings_with_greet
from workbench.client import Client
from workbench.control_plane import ControlPlane
from workbench.records.runbooks import RunRecord
from workbench.settings import Settings
from workbench.specs.runbook import RunStatus
from workbench.ui.actions import ActionDesk
from workbench.ui.context import DashboardContext
from workbench.ui.feed import DashboardFeed
from workbench.ui.models.operations import OperationsModel
from workbench.ui.views.operations import OperationsView

pytestmark = [
    pytest.mark.slow,
    # The shared confirmation box (workbench/ui/views/shell.py) still passes Panel 1.9's deprecated
    # ``name``/``button_type``; only warnings raised from that module are let through.
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:workbench.ui.views.shell"),
]

USER = "alice"


@pytest.fixture
def settings(tmp_path: Path, mlflow_template: Path) -> Settings:
    """The shared home, plus a directory with the cheap runbook beside the shipped ones."""
    return settings_with_greet(tmp_path, mlflow_template)


@pytest.fixture
def served(client: Client, model_dir: Path) -> None:
    """An endpoint (a definition: no replicas here) whose routes the previews name."""
    client.register_from_path("churn", model_dir, reason="seed")
    client.create_endpoint("churn", "models:/churn/1", reason="launch")


@pytest.fixture
def context(settings: Settings, api_url: str) -> Iterator[DashboardContext]:
    context = DashboardContext.for_settings(settings, api_url=api_url)
    context.feed.poll_once()
    yield context
    context.feed.stop()


@pytest.fixture
def page(context: DashboardContext) -> Iterator[tuple[OperationsModel, OperationsView]]:
    desk = ActionDesk(context.client_for, user=lambda: USER, after=context.feed.poke)
    model = OperationsModel(context.feed, desk)
    view = OperationsView(model=model)
    yield model, view
    model.close()


def _until_ended(
    feed: DashboardFeed, model: OperationsModel, run_id: str, timeout_s: float = 180.0
) -> RunRecord:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        feed.poll_once()
        run = next((r for r in model.runs if r.id == run_id), None)
        if run is not None and run.status.is_final:
            return run
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} did not end within {timeout_s:g}s")


@pytest.mark.usefixtures("served")
def test_the_form_follows_the_declared_parameters_and_refuses_bad_values(
    page: tuple[OperationsModel, OperationsView], plane: ControlPlane
) -> None:
    model, view = page
    assert {"greet", "rollback", "deploy", "incident-triage"} <= {r["name"] for r in model.runbooks}
    model.runbook = "greet"
    widgets = view._inputs
    assert [type(w).__name__ for w in widgets.values()] == [
        "TextInput",
        "IntInput",
        "FloatInput",
        "Checkbox",
        "TextInput",
    ]
    assert (widgets["who"].value, widgets["times"].value, widgets["pause_s"].value) == ("world", 1, 0.0)
    assert widgets["tags"].value == '["a"]'
    assert "who to greet" in str(view._form.objects[0])
    runs_before = len(plane.runbooks.runs(limit=1000))

    widgets["times"].value = None
    view._on_start(None)
    assert model.desk.failed
    assert model.desk.pending is None
    assert "'times' needs a whole number" in model.desk.outcome
    widgets["times"].value = 2
    widgets["tags"].value = "[a, b"
    view._on_start(None)
    assert "'tags'" in model.desk.outcome
    assert "not a Python literal" in model.desk.outcome

    # A runbook with an endpoint parameter: the preview shows that endpoint's routes and says it may
    # change them (rollback holds the endpoint's lock).
    model.runbook = "rollback"
    view._inputs["endpoint"].value = "churn"
    view._on_start(None)
    pending = model.desk.pending
    assert pending is not None
    assert (pending.preview.endpoint, pending.preview.routes_before) == ("churn", "churn v1 100%")
    assert pending.preview.routes_after == "as the run decides"
    assert "may change churn's routes" in pending.preview.detail
    model.desk.cancel()
    assert len(plane.runbooks.runs(limit=1000)) == runs_before  # nothing ran

    # A link to a run that does not exist says so rather than showing another run.
    linked = OperationsModel(model.feed, model.desk, run_id="run-20000101-000000-000000", live=False)
    assert linked.run is None
    assert "cannot be shown" in linked.run_note
    assert "cannot be shown" in OperationsView(model=linked)._details.object


def test_a_run_is_started_followed_and_cancelled_as_the_signed_in_user(
    page: tuple[OperationsModel, OperationsView], context: DashboardContext, client: Client
) -> None:
    model, view = page
    feed = context.feed
    model.runbook = "greet"
    view._inputs["who"].value = "dashboard"
    view._inputs["times"].value = 2
    view._inputs["loud"].value = True
    view._on_start(None)
    pending = model.desk.pending
    assert pending is not None
    assert "with who='dashboard', times=2, pause_s=0.0, loud=True, tags=['a']" in pending.preview.detail
    assert pending.preview.endpoint == "no endpoint"
    model.desk.confirm_now()
    assert not model.desk.failed, model.desk.outcome
    assert model.desk.outcome.startswith("run ")
    assert model.desk.outcome.endswith(" started")
    run_id = model.desk.outcome.split()[1]

    done = _until_ended(feed, model, run_id)
    assert done.status == RunStatus.SUCCEEDED, (done.error, done.archive_dir)
    assert done.summary == {"outcome": "greeted", "greeting": "HELLO DASHBOARD HELLO DASHBOARD"}
    assert done.parameters == {"who": "dashboard", "times": 2, "pause_s": 0.0, "loud": True, "tags": ["a"]}
    assert model.run_id == run_id  # the run the page started is selected once the feed has it
    assert model.run is not None
    assert model.run.status == RunStatus.SUCCEEDED
    details = view._details.object
    assert "HELLO DASHBOARD HELLO DASHBOARD" in details
    assert f'href="./files/run/{run_id}"' in details
    assert 'target="_blank"' in details
    assert not view._cancel.visible
    assert client.run_notebook(run_id, format="html").startswith(b"<!DOCTYPE html>")

    # The audit log names the person who confirmed, and the page shows it without a reload.
    [started] = [e for e in client.audit(action="runbook.run.start") if e.link == f"runbook-run:{run_id}"]
    assert started.actor == USER
    assert started.reason == "started from the dashboard"
    assert [e.id for e in model.events if e.link == f"runbook-run:{run_id}"][-1] == started.id
    assert "runbook.run.succeeded" in view._audit.object

    # An ended run cannot be cancelled; a running one can, confirmed, as the user.
    model.propose_cancel()
    assert model.desk.failed
    assert "has ended" in model.desk.outcome
    view._inputs["pause_s"].value = 120.0
    view._on_start(None)
    model.desk.confirm_now()
    slow_id = model.desk.outcome.split()[1]
    feed.poll_once()
    assert model.run_id == slow_id
    assert model.run is not None
    assert model.run.status == RunStatus.RUNNING
    assert view._cancel.visible
    assert "opens here when the run ends" in view._details.object
    model.propose_cancel()
    pending = model.desk.pending
    assert pending is not None
    assert pending.preview.action == f"cancel run {slow_id} (greet)"
    model.desk.confirm_now()
    assert model.desk.outcome == f"run {slow_id}: cancelled", model.desk.outcome
    cancelled = _until_ended(feed, model, slow_id)
    assert cancelled.status == RunStatus.CANCELLED
    assert cancelled.error == f"cancelled by {USER}"
    feed.poll_once()
    assert f"cancelled by {USER}" in view._details.object
    assert "cancelled" in str(view._runs.value["status"].iloc[0])


def test_the_audit_timeline_filters_what_the_feed_holds_and_reads_older_events(
    page: tuple[OperationsModel, OperationsView], context: DashboardContext, client: Client, model_dir: Path
) -> None:
    model, view = page
    client.register_from_path("churn", model_dir, reason="seed")
    client.create_endpoint("churn", "models:/churn/1", reason="launch")
    client.create_endpoint("fraud", "models:/churn/1", reason="second")
    context.feed.poll_once()
    assert [e.reason for e in model.shown[:2]] == ["second", "launch"]  # newest first
    assert {e.actor for e in model.shown} == {"tester"}
    assert "second" in view._audit.object

    model.target = "fraud"
    assert [e.reason for e in model.shown] == ["second"]
    model.target = ""
    model.action = "model."
    assert {e.action.split(".")[0] for e in model.shown} == {"model"}
    model.action = "-model."
    assert model.shown
    assert all(not e.action.startswith("model.") for e in model.shown)
    model.action = ""
    model.actor = "nobody"
    assert model.shown == []
    assert "no events" in view._audit.object
    model.actor = ""
    model.last_s = 3600
    assert len(model.shown) == len(model.events)

    # A new event arrives at the top, live, if it passes the filter.
    client.update_endpoint("fraud", "models:/churn/1", reason="third")
    context.feed.poll_once()
    assert model.shown[0].reason == "third"
    assert view._audit.object.index("third") < view._audit.object.index("second")

    # Older than what the page holds: read on request, merged in order, then the start of the log.
    everything = list(model.events)
    model.events = everything[:2]
    model.last_s = 0
    model.load_older()
    assert [e.id for e in model.events] == [e.id for e in everything]
    assert "older events read" in model.older_note
    model.load_older()
    assert model.older_note == "no older events: this is the start of the audit log"
