"""The wheel carries the built JupyterLab extension and enables the server extension: installed into a
fresh environment where no node exists, Jupyter lists both as enabled and OK."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _run(command: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{command}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def _source_copy(target: Path) -> Path:
    """The checkout's files (tracked, and new ones not ignored) in ``target``: the build cleans and rewrites
    the extension's output directory, which the browser tests serve from the checkout meanwhile. The
    extension's node_modules is linked, not copied (hundreds of MB, installed by ``make labextension``)."""
    listed = _run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO)
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    lab = Path("extensions") / "workbench-lab" / "node_modules"
    if (REPO / lab).is_dir():
        (target / lab).symlink_to(REPO / lab, target_is_directory=True)
    return target


def test_the_wheel_installs_the_extension_enabled_with_no_node(tmp_path: Path) -> None:
    # Built as a release is: the hook runs jlpm (from this environment's jupyterlab) into the wheel.
    source = _source_copy(tmp_path / "source")
    venv_bin = Path(sys.executable).parent
    build_env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    build_env.pop("SKIP_JUPYTER_BUILDER", None)
    dist = tmp_path / "dist"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            ".",
        ],
        env=build_env,
        cwd=source,
    )
    (wheel,) = dist.glob("mlops_workbench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    data = "mlops_workbench-" + wheel.name.split("-")[1] + ".data/data/"
    assert f"{data}share/jupyter/labextensions/mlops-workbench/package.json" in names
    assert any(re.search(r"labextensions/mlops-workbench/static/remoteEntry\.\w+\.js$", n) for n in names)
    assert f"{data}etc/jupyter/jupyter_server_config.d/workbench.json" in names
    assert not [n for n in names if "node_modules" in n or n.endswith(".ts")]

    # A fresh environment with only what the check needs: no node anywhere on its PATH.
    fresh = tmp_path / "fresh"
    _run([sys._base_executable, "-m", "venv", str(fresh)])  # type: ignore[attr-defined]
    python = fresh / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)])
    _run([str(python), "-m", "pip", "install", "--quiet", "jupyterlab>=4.6,<5"])
    env = {
        "PATH": str(fresh / "bin"),
        "HOME": str(tmp_path / "home"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    assert shutil.which("node", path=env["PATH"]) is None
    labextensions = _run([str(fresh / "bin" / "jupyter"), "labextension", "list"], env=env)
    assert re.search(r"mlops-workbench v[0-9.]+ \S*enabled\S* \S*OK", labextensions), labextensions
    servers = _run([str(fresh / "bin" / "jupyter"), "server", "extension", "list"], env=env)
    assert re.search(r"workbench\.jupyter \S*enabled", servers), servers
    assert re.search(r"workbench\.jupyter\s+\S*OK", servers), servers
