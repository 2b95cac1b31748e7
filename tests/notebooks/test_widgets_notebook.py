"""``notebooks/widgets.ipynb`` under nbval (``--nbval-lax``): every cell runs on a real kernel against
the control plane the notebook starts, and the notebook's own assertions (the widgets driven by
setting values and clicking) decide. Outputs are not compared: they hold times, ports and ids.

papermill runs it as well, with the other tutorials (``test_tutorials.py``); this is the widget
kernel's path: ipywidgets open real comms here, as they do under a frontend.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.notebooks.test_tutorials import ROOT, _run, _stop_leftovers
from workbench.runbooks.kernel import ensure_kernelspec, kernel_environment

NOTEBOOK = ROOT / "notebooks" / "widgets.ipynb"
RUN_TIMEOUT_S = 150
TAIL_CHARS = 6000


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
def test_the_widgets_notebook_passes_under_nbval(tmp_path: Path) -> None:
    jupyter_root = tmp_path / "jupyter"
    ensure_kernelspec(jupyter_root)
    scratch = tmp_path / "tmp"  # the notebook's fresh home is made here, so leftovers can be found
    scratch.mkdir()
    env = kernel_environment(
        jupyter_root, {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    )
    env["TMPDIR"] = str(scratch)
    command = [
        sys.executable, "-m", "pytest", "--nbval-lax", str(NOTEBOOK),
        "-p", "no:cacheprovider", "-q", "--nbval-cell-timeout", "120",
    ]  # fmt: skip

    returncode, output = _run(command, env, RUN_TIMEOUT_S)
    leftovers = _stop_leftovers(scratch)

    tail = output[-TAIL_CHARS:]
    assert returncode == 0, f"nbval {'timed out' if returncode is None else f'exited {returncode}'}\n{tail}"
    assert " passed" in output, tail
    assert " failed" not in output, tail
    assert not leftovers, f"the notebook left processes running: {leftovers}"
