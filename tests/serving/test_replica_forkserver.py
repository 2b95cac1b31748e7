"""The replica fork server: a forked replica is the process a fresh interpreter would have been (its own
session, the caller's environment and directory, the same exit codes), and a fork server that dies or
is closed costs no running replica."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.integration.conftest import tiny_frame, tiny_module
from workbench.errors import UnavailableError
from workbench.registry.packaging import save_model
from workbench.serving.forkserver_client import ForkedChild, ForkServer
from workbench.serving.processes import Managed, spawn, terminate, wait_ready

REPLICA = [sys.executable, "-m", "workbench.serving.replica"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("forkserver") / "tiny"
    save_model(tiny_module(), path, input_example=tiny_frame(2)[["a", "b", "c"]])
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ForkServer]:
    forkserver = ForkServer(tmp_path / "run", tmp_path / "forkserver.log")
    yield forkserver
    forkserver.close()


def _config(directory: Path, model_dir: Path, name: str = "replica") -> Path:
    path = directory / f"{name}.json"
    config = {
        "replica_id": name,
        "endpoint": "e",
        "model": "tiny",
        "version": 1,
        "model_dir": str(model_dir),
        "ready_file": str(directory / f"{name}.ready.json"),
    }
    path.write_text(json.dumps(config))
    return path


def _ready(child: ForkedChild, ready_file: Path, timeout: float = 60.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while not ready_file.is_file():
        assert child.poll() is None, f"exited with {child.poll()}"
        assert time.monotonic() < deadline, "not ready in time"
        time.sleep(0.02)
    return json.loads(ready_file.read_text())


def _stop(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def test_a_forked_replica_serves_in_its_own_session_with_the_callers_environment_and_directory(
    server: ForkServer, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, model_dir)
    monkeypatch.chdir(tmp_path)  # the config is named relative to the caller's directory
    monkeypatch.setenv("WORKBENCH_PROBE", "set-by-the-caller-after-the-server-started")
    child = server.spawn([*REPLICA, "replica.json"], tmp_path / "replica.log")
    try:
        ready = _ready(child, tmp_path / "replica.ready.json")
        assert ready["pid"] == child.pid
        response = httpx.post(
            f"http://127.0.0.1:{ready['port']}/invocations",
            json={"dataframe_records": tiny_frame(3)[["a", "b", "c"]].to_dict(orient="records")},
        )
        assert response.status_code == 200, response.text
        assert len(response.json()["predictions"]) == 3
        process = psutil.Process(child.pid)
        assert os.getsid(child.pid) == child.pid  # outlives a control plane killed with its group
        assert "workbench.serving.replica_forkserver" in " ".join(process.parent().cmdline())
        assert process.environ()["WORKBENCH_PROBE"] == "set-by-the-caller-after-the-server-started"
        assert Path(process.cwd()) == tmp_path
        assert "serving tiny/v1" in (tmp_path / "replica.log").read_text()
        os.kill(child.pid, signal.SIGTERM)
        assert child.wait(30) == -signal.SIGTERM
    finally:
        _stop(child.pid)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [([], 2), (["missing.json"], 1), (["bad-model.json"], 2)],
    ids=["usage", "no-config-file", "unloadable-model"],
)
def test_exit_codes_are_the_ones_a_fresh_interpreter_gives(
    server: ForkServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], expected: int
) -> None:
    _config(tmp_path, tmp_path / "no-model-here", name="bad-model")
    monkeypatch.chdir(tmp_path)
    fresh = subprocess.run([*REPLICA, *argv], capture_output=True, timeout=120)
    assert fresh.returncode == expected
    child = server.spawn([*REPLICA, *argv], tmp_path / "forked.log")
    assert child.wait(60) == expected
    if expected == 2 and argv:  # the one-line reason the supervisor shows, in the replica's log
        assert "workbench-replica-error: " in (tmp_path / "forked.log").read_text()


def test_a_killed_replica_reports_the_signal(server: ForkServer, model_dir: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, model_dir)
    child = server.spawn([*REPLICA, str(config)], tmp_path / "replica.log")
    _ready(child, tmp_path / "replica.ready.json")
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(30) == -signal.SIGKILL


def test_a_command_it_does_not_run_is_refused(server: ForkServer, tmp_path: Path) -> None:
    with pytest.raises(UnavailableError, match="not a command the replica fork server runs"):
        server.spawn([sys.executable, "-m", "http.server"], tmp_path / "x.log")
    assert not (tmp_path / "x.log").exists()


def test_a_dead_fork_server_is_started_again_and_its_children_keep_running(
    server: ForkServer, model_dir: Path, tmp_path: Path
) -> None:
    first = server.spawn([*REPLICA, str(_config(tmp_path, model_dir, "one"))], tmp_path / "one.log")
    try:
        _ready(first, tmp_path / "one.ready.json")
        old_server = psutil.Process(first.pid).parent()
        assert old_server is not None
        old_server.kill()
        old_server.wait(10)
        # Orphaned, still serving; its state now comes from the process table, not the fork server.
        assert first.poll() is None
        second = server.spawn([*REPLICA, str(_config(tmp_path, model_dir, "two"))], tmp_path / "two.log")
        try:
            _ready(second, tmp_path / "two.ready.json")
            assert psutil.Process(second.pid).parent().pid != old_server.pid
        finally:
            _stop(second.pid)
        os.kill(first.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() == 1  # ended, with a code nobody could collect
    finally:
        _stop(first.pid)


def test_closing_the_fork_server_leaves_its_replicas_serving(
    server: ForkServer, model_dir: Path, tmp_path: Path
) -> None:
    child = server.spawn([*REPLICA, str(_config(tmp_path, model_dir))], tmp_path / "replica.log")
    try:
        ready = _ready(child, tmp_path / "replica.ready.json")
        forkserver = psutil.Process(child.pid).parent()
        assert forkserver is not None
        server.close()
        assert not forkserver.is_running() or forkserver.status() == psutil.STATUS_ZOMBIE
        assert httpx.get(f"http://127.0.0.1:{ready['port']}/v2/health/ready").status_code == 200
        with pytest.raises(UnavailableError, match="closed"):
            server.spawn([*REPLICA, "x.json"], tmp_path / "x.log")
    finally:
        _stop(child.pid)


def test_a_replica_whose_fork_server_cannot_serve_starts_as_a_fresh_interpreter(
    server: ForkServer, model_dir: Path, tmp_path: Path
) -> None:
    server.close()
    config = _config(tmp_path, model_dir)
    managed = Managed(
        process_id="replica",
        kind="replica",
        command=[*REPLICA, str(config)],
        config_path=config,
        ready_file=tmp_path / "replica.ready.json",
        log_path=tmp_path / "replica.log",
        forkserver=server,
    )
    assert spawn(managed)
    try:
        assert isinstance(managed.child, subprocess.Popen)
        info = wait_ready(managed, time.monotonic() + 120)
        assert info.pid == managed.pid
        assert psutil.Process(managed.pid).parent().pid == os.getpid()
    finally:
        terminate(managed, retire=True)
    assert managed.exit_code() is not None


def test_a_fork_server_whose_imports_initialised_cuda_refuses_to_fork_and_is_not_started_again(
    server: ForkServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A torch whose import initialised CUDA (as a GPU build's plugin might): no child could use the GPU.
    fake = tmp_path / "site" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "class cuda:\n    @staticmethod\n    def is_initialized():\n        return True\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(fake.parent))
    with pytest.raises(UnavailableError, match="ended before it was ready"):
        server.spawn([*REPLICA, "replica.json"], tmp_path / "replica.log")
    with pytest.raises(UnavailableError, match="ended before it was ready"):
        server.spawn([*REPLICA, "replica.json"], tmp_path / "replica.log")
    # Refused at once the second time: no server was started (and made to import everything) again.
    assert (tmp_path / "forkserver.log").read_text().count("CUDA was initialised") == 1
    assert not (tmp_path / "replica.log").exists()
