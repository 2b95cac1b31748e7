"""The ``materialize-features`` runbook (issue 14) against a real control plane and a real Feast repository:
a run materialises the views it names and is archived with its parameters, bad parameters fail in its
first cell before anything changes, the freshness check fails a run whose views stay stale, and a schedule
of the runbook runs it from the control plane's loop (applying the definitions first)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests._servers import free_port, plane_env
from workbench.client import Client
from workbench.demo.features import DEFINITIONS, VIEW, write_demo_features
from workbench.errors import ValidationError
from workbench.launcher import ControlPlaneProcess
from workbench.records.runbooks import RunRecord
from workbench.settings import Settings
from workbench.specs.runbook import RunStatus

pytestmark = pytest.mark.slow

RUNBOOK = "materialize-features"
USAGE = "customer_usage"  # online, never materialised by the fixture
ARCHIVE = "customer_archive"  # online=False: Feast never materialises it
#: Two more views over the demo's customers, appended to its definitions (same entity, same source).
MORE_VIEWS = f"""

customer_usage = FeatureView(
    name="{USAGE}",
    entities=[customer],
    ttl=timedelta(days=1),
    schema=[Field(name=name, dtype=Float32) for name in FEATURES[:3]],
    source=customer_source,
    online=True,
)
customer_archive = FeatureView(
    name="{ARCHIVE}",
    entities=[customer],
    ttl=timedelta(days=1),
    schema=[Field(name=name, dtype=Float32) for name in FEATURES[:3]],
    source=customer_source,
    online=False,
)
"""


@dataclass
class World:
    home: Path
    client: Client


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Iterator[World]:
    """``workbench up`` on a home whose Feast repository holds the demo customers in three views
    (``customer_features``, ``customer_usage``, and ``customer_archive`` offline only), applied and
    never materialised. No model is served: the runbook needs none."""
    home = tmp_path_factory.mktemp("materialize") / "home"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    api_port, router_port = free_port(), free_port()
    url = f"http://127.0.0.1:{api_port}"
    settings = Settings.for_home(home, api_url=url)
    repo = settings.feature_repo_path
    write_demo_features(repo, rows=100, seed=1)
    with (repo / DEFINITIONS).open("a") as definitions:
        definitions.write(MORE_VIEWS)
    process = ControlPlaneProcess(
        url, plane_env(home, api_port, router_port), home / "logs" / "cp.log"
    ).start()
    try:
        with Client(url, settings=settings, actor="tester") as client:
            client.apply_features(reason="the test's definitions")
            yield World(home=home, client=client)
    finally:
        process.stop()


def _until(client: Client) -> dict[str, str | None]:
    return {v["name"]: v["materialized_until"] for v in client.features()["feature_views"]}


def _age_s(until: str | None) -> float:
    assert until is not None, "the view was never materialised"
    return (datetime.now(UTC) - datetime.fromisoformat(until)).total_seconds()


def _run(client: Client, parameters: dict[str, Any]) -> RunRecord:
    return client.run_runbook(RUNBOOK, parameters, wait_s=300)


def test_the_catalogue_lists_it_with_documented_typed_parameters(world: World) -> None:
    assert RUNBOOK in {r["name"] for r in world.client.runbooks()}
    info = world.client.runbook(RUNBOOK)
    assert info["title"] == "Materialise features into the online store"
    assert info["description"]
    parameters = {p["name"]: p for p in info["parameters"]}
    assert {name: p["type"] for name, p in parameters.items()} == {
        "views": "str",
        "start": "str",
        "end": "str",
        "apply_first": "bool",
        "max_staleness_s": "float",
        "reason": "str",
    }
    assert all(p["help"] for p in parameters.values())
    assert (info["locks_endpoint"], info["timeout_s"]) == (False, 1800)
    # What the engine can refuse without running anything: a name it does not declare, a wrong type.
    with pytest.raises(ValidationError, match=r"no parameter.*view;"):
        world.client.run_runbook(RUNBOOK, {"view": VIEW})
    with pytest.raises(ValidationError, match="apply_first must be bool"):
        world.client.run_runbook(RUNBOOK, {"apply_first": "yes"})
    assert world.client.runbook_runs(runbook=RUNBOOK) == []


def test_a_run_materialises_the_views_it_names_and_is_archived_with_its_parameters(world: World) -> None:
    client = world.client
    assert set(_until(client).values()) == {None}
    parameters = {"views": VIEW, "max_staleness_s": 600, "reason": "load the customers"}
    run = _run(client, parameters)
    assert run.status == RunStatus.SUCCEEDED, (run.error, run.archive_dir)

    until = _until(client)
    assert _age_s(until[VIEW]) < 600
    assert (until[USAGE], until[ARCHIVE]) == (None, None)  # not named: not touched
    assert run.summary is not None
    assert run.summary["outcome"] == "materialized"
    assert run.summary["views"] == [VIEW]
    assert run.summary["materialized_until"] == {VIEW: until[VIEW]}
    assert (run.summary["applied"], run.summary["start"], run.summary["max_staleness_s"]) == (
        False,
        None,
        600,
    )
    assert 0 <= run.summary["oldest_age_s"] < 600

    # Archived with its parameters, and the notebook shows the views before and after.
    assert run.parameters == parameters
    archive = Path(run.archive_dir)
    assert json.loads((archive / "parameters.json").read_text()) == parameters
    executed = nbformat.read(archive / "executed.ipynb", as_version=4)
    tables = [
        o["data"]["text/html"]
        for c in executed.cells
        for o in c.get("outputs", [])
        if "materialized_until before" in o.get("data", {}).get("text/html", "")
    ]
    assert len(tables) == 1
    assert all(name in tables[0] for name in (VIEW, USAGE, ARCHIVE))
    assert (archive / "executed.html").exists()

    # Audited as the run, with its reason.
    [event] = client.audit(action="features.materialize")
    assert event.actor == f"runbook:{RUNBOOK}/{run.id}"
    assert event.reason == "load the customers"
    assert event.after["feature_views"][VIEW] == until[VIEW]


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (
            {"views": f"{VIEW}, nope"},
            f"no feature view named 'nope' applied; known: {ARCHIVE}, {VIEW}, {USAGE}",
        ),
        ({"views": ARCHIVE}, f"feature view(s) '{ARCHIVE}' are not online"),
        (
            {"start": "yesterday"},
            "start must be an ISO date or time such as 2024-05-01T06:00:00Z, got 'yesterday'",
        ),
        (
            {"start": "2024-02-01", "end": "2024-01-01"},
            "start (2024-02-01T00:00:00+00:00) must be before end",
        ),
    ],
    ids=["unknown-view", "offline-view", "bad-start", "start-after-end"],
)
def test_a_bad_parameter_fails_in_the_validate_cell_and_changes_nothing(
    world: World, parameters: dict[str, Any], message: str
) -> None:
    client = world.client
    until = _until(client)
    materialised = len(client.audit(action="features.materialize"))
    run = _run(client, parameters)
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert run.error.startswith(f"ParameterError: {message}"), run.error
    assert run.failed_cell is not None
    assert run.failed_cell.tags == ["validate"]
    assert run.summary is None
    assert _until(client) == until
    assert len(client.audit(action="features.materialize")) == materialised


def test_the_freshness_check_fails_a_run_whose_view_stays_stale(world: World) -> None:
    """A view materialised only up to two hours ago is materialised (and audited), and the run fails
    saying which view is how old."""
    client = world.client
    end = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    run = _run(client, {"views": USAGE, "end": end.isoformat(), "max_staleness_s": 600})
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert run.error.startswith(
        f"StaleFeaturesError: after materialising up to {end.isoformat()}, '{USAGE}' is materialised to 7"
    ), run.error
    assert run.error.endswith("s ago: older than max_staleness_s=600"), run.error
    assert run.failed_cell is not None
    assert "max_staleness_s" in run.failed_cell.source
    assert _until(client)[USAGE] == end.isoformat()
    assert client.audit(action="features.materialize")[0].actor == f"runbook:{RUNBOOK}/{run.id}"


def test_a_schedule_of_the_runbook_applies_and_materialises_every_online_view(world: World) -> None:
    client = world.client
    with pytest.raises(ValidationError, match="no parameter"):
        client.create_schedule(
            {"name": "bad", "runbook": RUNBOOK, "parameters": {"view": VIEW}, "every_s": 60}
        )
    client.create_schedule(
        {
            "name": "features-hourly",
            "runbook": RUNBOOK,
            "parameters": {"apply_first": True, "max_staleness_s": 600},
            "every_s": 3600,
            "start_at": time.time() + 1,
        }
    )
    try:
        deadline = time.monotonic() + 60
        runs: list[RunRecord] = []
        while time.monotonic() < deadline and not runs:
            runs = [
                r for r in client.runbook_runs(runbook=RUNBOOK) if r.trigger.schedule == "features-hourly"
            ]
            time.sleep(0.5)
        assert runs, "the schedule did not start a run"
        assert runs[0].actor == "schedule:features-hourly"
        run = client.wait_run(runs[0].id, timeout_s=300)
        assert run.status == RunStatus.SUCCEEDED, (run.error, run.archive_dir)
        [schedule] = client.schedules()
        assert schedule.last_run_id == run.id
    finally:
        client.delete_schedule("features-hourly")

    assert run.summary is not None
    assert (run.summary["views"], run.summary["applied"]) == ([VIEW, USAGE], True)  # every online view
    until = _until(client)
    assert _age_s(until[VIEW]) < 600
    assert _age_s(until[USAGE]) < 600
    assert until[ARCHIVE] is None
    assert client.audit(action="features.apply")[0].actor == f"runbook:{RUNBOOK}/{run.id}"
    assert client.audit(action="features.materialize")[0].actor == f"runbook:{RUNBOOK}/{run.id}"
    assert client.schedules() == []
