"""The project's own Jupyter kernel: the Python that runs the control plane, found by a private kernelspec.

Runbooks must run on the interpreter (and so the packages) the control plane was installed into, never
on whatever ``python3`` kernel a user's Jupyter happens to list. A kernelspec written under the home and
put first on ``JUPYTER_PATH`` for the child process gives exactly that, with nothing to install.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

KERNEL_NAME = "workbench"


def ensure_kernelspec(root: Path, *, python: str | None = None) -> Path:
    """Write ``root/kernels/workbench/kernel.json`` for ``python`` (this interpreter by default)."""
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    executable = python or sys.executable
    spec = {
        "argv": [executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Workbench (Python {sys.version_info.major}.{sys.version_info.minor})",
        "language": "python",
        "metadata": {"debugger": False},
    }
    path = spec_dir / "kernel.json"
    text = json.dumps(spec, indent=1)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def kernel_environment(root: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (the process environment by default) with ``root`` first on ``JUPYTER_PATH``."""
    env = dict(os.environ if base is None else base)
    existing = env.get("JUPYTER_PATH")
    env["JUPYTER_PATH"] = os.pathsep.join([str(root), *([existing] if existing else [])])
    # A kernel must not inherit a parent's pinned thread count, nor print the frozen-modules warning.
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return env
