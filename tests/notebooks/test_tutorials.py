"""The tutorials in ``notebooks/`` run top to bottom on the project kernel, each against its own real
control plane, and end with the summary line they declare.

Every ``notebooks/*.ipynb`` is picked up (a new tutorial is covered without touching this file). A
notebook states what its last cell prints in ``metadata["workbench"]["expect"]`` (``"SUMMARY:"`` if it
does not); its own assertions make a broken product fail the run. papermill runs in a subprocess with
the ``workbench`` kernelspec of :mod:`workbench.runbooks.kernel`, and the executed copy is kept under
``tests/artifacts/notebooks/`` for inspection.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from workbench.runbooks.kernel import KERNEL_NAME, ensure_kernelspec, kernel_environment

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: Notebooks run to the end by another test (not twice: each run costs the suite half a minute).
RUN_ELSEWHERE = {"widgets.ipynb": "tests/notebooks/test_widgets_notebook.py runs it under nbval"}
ARTIFACTS = ROOT / "tests" / "artifacts" / "notebooks"
DEFAULT_EXPECT = "SUMMARY:"
CELL_TIMEOUT_S = 300
RUN_TIMEOUT_S = 600
STDERR_TAIL_CHARS = 6000


def _read(path: Path) -> Any:
    return nbformat.read(path, as_version=4)


def _expected_summary(notebook: Any) -> str:
    return str(notebook.metadata.get("workbench", {}).get("expect", DEFAULT_EXPECT))


def _stdout_lines(notebook: Any) -> list[str]:
    lines: list[str] = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                lines.extend(output.get("text", "").splitlines())
    return lines


def _run(command: list[str], env: dict[str, str], timeout: float) -> tuple[int | None, str]:
    """Run ``command`` in its own process group; on timeout stop the group (papermill and its kernel)."""
    process = subprocess.Popen(
        command,
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
        return None, output
    return process.returncode, output


def _cmdline(pid: int) -> str:
    try:
        return (
            (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _parent(pid: int) -> int | None:
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _processes_of(home: Path) -> dict[int, str]:
    """Processes still running for ``home``: replicas and the router (their configs live under it), and
    the control plane (``workbench up``) that started them."""
    proc = Path("/proc")
    if not proc.is_dir():
        return {}
    marker = str(home)
    found = {
        int(entry.name): command
        for entry in proc.iterdir()
        if entry.name.isdigit() and marker in (command := _cmdline(int(entry.name)))
    }
    for pid in list(found):
        parent = _parent(pid)
        if parent is not None and "workbench up" in (command := _cmdline(parent)):
            found[parent] = command
    return found


def _stop_leftovers(home: Path, grace: float = 20.0) -> dict[int, str]:
    """Wait for ``home``'s processes to exit; stop the ones that do not (control plane first, which stops
    its data plane) and return what was left running."""
    deadline = time.monotonic() + grace
    while (leftovers := _processes_of(home)) and time.monotonic() < deadline:
        time.sleep(0.5)
    if not leftovers:
        return {}
    ordered = sorted(leftovers, key=lambda pid: "workbench up" not in leftovers[pid])
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in ordered:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 15.0
        while _processes_of(home) and time.monotonic() < deadline:
            time.sleep(0.5)
    return leftovers


def test_there_are_tutorials() -> None:
    assert NOTEBOOKS, f"no notebooks in {ROOT / 'notebooks'}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_tutorial_follows_the_conventions(path: Path) -> None:
    notebook = _read(path)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == KERNEL_NAME
    first = notebook.cells[0]
    assert first.cell_type == "markdown", "start with a markdown title"
    assert first.source.startswith("# "), "start with a markdown title"
    parameters = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1, "exactly one cell tagged 'parameters'"
    assert any(line.startswith("home = ") for line in parameters[0].source.splitlines()), (
        "the parameters cell must define `home` (the tests pass a fresh home with -p home)"
    )
    stored = [
        i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)
    ]
    assert not stored, f"cells {stored} have stored outputs or execution counts: clear them before committing"
    assert _expected_summary(notebook).startswith(DEFAULT_EXPECT)


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT_S + 120)
@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name not in RUN_ELSEWHERE], ids=lambda p: p.stem)
def test_a_tutorial_runs_top_to_bottom(path: Path, tmp_path: Path) -> None:
    expect = _expected_summary(_read(path))
    jupyter_root = tmp_path / "jupyter"
    ensure_kernelspec(jupyter_root)
    home = tmp_path / "home"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    executed = ARTIFACTS / path.name
    executed.unlink(missing_ok=True)
    # The notebook's control plane must be its own: nothing from a surrounding WORKBENCH_* setup.
    env = kernel_environment(
        jupyter_root, {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    )
    command = [
        sys.executable, "-m", "papermill", str(path), str(executed),
        "-k", KERNEL_NAME,
        "-p", "home", str(home),
        "--cwd", str(ROOT),
        "--execution-timeout", str(CELL_TIMEOUT_S),
        "--log-output", "--no-progress-bar",
    ]  # fmt: skip

    started = time.monotonic()
    returncode, output = _run(command, env, RUN_TIMEOUT_S)
    elapsed = time.monotonic() - started
    leftovers = _stop_leftovers(home)

    tail = output[-STDERR_TAIL_CHARS:]
    outcome = "timed out" if returncode is None else f"exited with {returncode}"
    assert returncode == 0, f"{path.name}: papermill {outcome} after {elapsed:.0f}s; see {executed}\n{tail}"
    lines = _stdout_lines(_read(executed))
    summaries = [line for line in lines if line.startswith(expect)]
    assert summaries, f"{path.name} never printed a line starting with {expect!r}; see {executed}\n{tail}"
    assert not leftovers, f"{path.name} left processes running after its last cell: {leftovers}"
    print(f"{path.name}: {elapsed:.1f}s; {summaries[-1]}")
