"""Unix socket paths fit the kernel's limit whatever the depth of the home and of the temporary directory
(a replica whose socket path was too long exited at start with "AF_UNIX path too long")."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import pytest

from workbench.serving.processes import socket_path

PROCESS = "churn.churn-classifier.v12.03f3dbb9.r0"


def _binds(path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))
    path.unlink()


def test_a_shallow_run_dir_keeps_its_sockets(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    path = socket_path(run_dir, "r0")
    assert path.parent == run_dir
    _binds(path)


def test_a_deep_home_and_a_deep_tmpdir_still_give_a_socket_that_binds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    run_dir = deep / "home" / "run"
    run_dir.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep / "tmp"))  # as with TMPDIR set to a deep directory
    path = socket_path(run_dir, PROCESS)
    assert len(str(path)) < 100
    assert path == socket_path(run_dir, PROCESS)  # the same process finds its socket again
    assert path != socket_path(run_dir, "another")
    _binds(path)
