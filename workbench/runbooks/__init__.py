"""Runbooks: parameterised notebooks run by papermill on the project's kernel, each run archived."""

from __future__ import annotations

from pathlib import Path


def shipped_runbooks_dir() -> Path:
    """The runbooks that ship with Workbench: in the wheel, ``workbench/_runbooks``; in a checkout,
    the repository's ``runbooks/``."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / "_runbooks"
    return packaged if packaged.is_dir() else package.parent / "runbooks"
