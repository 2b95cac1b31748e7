"""Shared fixtures: real SQLite-backed MLflow in temporary homes, real servers, real PostgreSQL."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._servers import PostgresCluster, postgres_bindir, run_server
from workbench.client import Client
from workbench.control_plane import ControlPlane
from workbench.settings import Settings


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite database with its migrations applied once (they take seconds), copied per test."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    uri = f"sqlite:///{path}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models()
    return path


@pytest.fixture
def settings(tmp_path: Path, mlflow_template: Path) -> Settings:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    # Endpoint definitions only: the serving tests (tests/serving) run the real data plane.
    return Settings.for_home(home, allowed_roots=(tmp_path,), api_port=0, serving_backend="none")


@pytest.fixture
def plane(settings: Settings) -> Iterator[ControlPlane]:
    control_plane = ControlPlane(settings)
    yield control_plane
    control_plane.close()


@pytest.fixture
def api_url(settings: Settings, plane: ControlPlane) -> Iterator[str]:
    """The real API over real HTTP on a free port, sharing ``plane`` so tests can inspect the stores."""
    from workbench.api import create_app

    with run_server(create_app(settings, plane)) as url:
        yield url


@pytest.fixture
def client(api_url: str, settings: Settings) -> Iterator[Client]:
    with Client(api_url, settings=settings, actor="tester") as c:
        yield c


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    bindir = postgres_bindir()
    if bindir is None:
        if os.environ.get("WORKBENCH_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is required (WORKBENCH_REQUIRE_POSTGRES) but initdb was not found")
        pytest.skip("PostgreSQL is not installed (make test installs it)")
    cluster = PostgresCluster(bindir)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty state store of each kind the product supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.create_database(f"t_{uuid.uuid4().hex[:12]}")


# --- unit tests in random order ------------------------------------------------------------------------------
# A test that passes only after another has run is a bug: the unit tests run in a shuffled order (modules
# shuffled, then tests within each module, so module-scoped fixtures are still built once). The seed is
# printed in the header; WORKBENCH_TEST_SEED=N replays an order. Integration tests keep file order: their
# module-scoped servers are expensive, and their isolation is per module.
TIMELINE = Path(__file__).parent / "artifacts"
_SEED = int(os.environ.get("WORKBENCH_TEST_SEED") or uuid.uuid4().int % 1_000_000)
# pytest-xdist's workers must collect the same order as the controller: they inherit the seed.
os.environ["WORKBENCH_TEST_SEED"] = str(_SEED)


def pytest_report_header() -> str:
    return f"unit tests shuffled with WORKBENCH_TEST_SEED={_SEED}"


# Modules whose module-scoped world costs as much as their tests: spread over both workers, each built it
# (online reader 26 + 15 s of setup for 6 s of tests; materialize, lookup serving, the simulation's Monte
# Carlo, the runbook and dashboard worlds 10-17 s each per worker; 115c431's clean-clone timeline). Each
# is one unit instead: built once, its tests in a row on whichever worker takes it. The long modules stay
# spread (grouping every module chained them serially: see below).
ONE_WORKER_MODULES = (
    "tests/features/test_online_reader.py",
    "tests/features/test_lookup_serving.py",
    "tests/runbooks/test_materialize_features.py",
    "tests/runbooks/test_runbook_runs.py",
    "tests/runbooks/test_runbooks_under_traffic.py",
    "tests/browser/test_dashboards.py",
    "tests/serving/test_oip_conformance.py",
    "tests/serving/test_integrations.py",
    "tests/optimize/test_optimize.py",
    "tests/unit/test_analysis_simulation.py",
    "tests/unit/test_demo_training.py",
    "tests/serving/test_bad_input.py",
    "tests/serving/test_widgets.py",
)


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the groups into the node ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    _shuffle_unit_tests(items)
    root = Path(__file__).parent.parent
    for item in items:
        module = item.path.relative_to(root).as_posix()
        if module in ONE_WORKER_MODULES and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(Path(module).stem))


# Under ``pytest -n 2 --dist loadgroup`` only tests with an explicit ``xdist_group`` share a worker: the
# Ray tests (``ray``), so that one Ray cluster runs at a time on two cores, not one per worker. Every other
# test is its own unit, handed to whichever worker runs low; a module split over both workers builds its
# module-scoped servers on each. Measured on clean clones (docs/benchmarks.md): grouping every module
# chained the long ones serially (stopped after 34 min with most tests left); spreading tests in
# collection order took 27 min (e54167e, before pytest 9.2 was pinned out, when no group took effect at
# all: see pyproject.toml); spreading them with the Ray group, the fuzzing test and the demo started first took 45 min
# (3c54965), the demo and the fuzzing test running twice as long beside the Ray group, and 38 and 42 min
# in the runs after it with the same order. Collection order again (the units handed out as collected,
# ``--no-loadscope-reorder`` in the Makefile), measured in docs/benchmarks.md.


def pytest_sessionstart(session: pytest.Session) -> None:
    if "PYTEST_XDIST_WORKER" not in os.environ:  # the controller (or a run without workers) starts afresh
        for old in [*TIMELINE.glob("timeline-*.jsonl"), *TIMELINE.glob("calibration.json")]:
            old.unlink()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The machine's speed at the end of the run (``tests/_calibration.py``), beside the suite's time."""
    import json

    if "PYTEST_XDIST_WORKER" in os.environ or not TIMELINE.exists():
        return
    from tests._calibration import measure

    calibration = measure()
    (TIMELINE / "calibration.json").write_text(json.dumps(calibration))
    terminalreporter.write_line(
        f"machine speed at the end: a 1M-step Python loop {calibration['python_loop_ms']} ms, "
        f"a batch-1 MLP forward {calibration['torch_forward_us']} us (tests/_calibration.py)"
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Each test phase's start, stop and worker, so a run's balance across workers can be read afterwards."""
    import json
    import time

    if hasattr(report, "node"):  # the xdist controller, echoing a worker's report: the worker wrote it
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    line = {
        "test": report.nodeid,
        "when": report.when,
        "worker": worker,
        "start": getattr(report, "start", time.time() - report.duration),
        "duration": round(report.duration, 3),
        "outcome": report.outcome,
    }
    TIMELINE.mkdir(parents=True, exist_ok=True)
    with (TIMELINE / f"timeline-{worker}.jsonl").open("a") as out:
        out.write(json.dumps(line) + "\n")


def _shuffle_unit_tests(items: list[pytest.Item]) -> None:
    import random

    unit = [i for i, item in enumerate(items) if "/tests/unit/" in str(item.path)]
    if not unit:
        return
    shuffler = random.Random(_SEED)
    by_module: dict[str, list[pytest.Item]] = {}
    for index in unit:
        by_module.setdefault(str(items[index].path), []).append(items[index])
    modules = list(by_module.values())
    shuffler.shuffle(modules)
    for tests in modules:
        shuffler.shuffle(tests)
    shuffled = [item for tests in modules for item in tests]
    for index, item in zip(unit, shuffled, strict=True):
        items[index] = item
