"""A cheap runbook for tests: it needs no serving and no control plane, and runs for real in seconds."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

from workbench.settings import Settings

GREET = """\
import time

from workbench.runbooks.notebook import require, summarise

require(times >= 1, "times must be at least 1")
time.sleep(pause_s)
greeting = " ".join([f"hello {who}"] * times)
summarise("greeted", greeting=greeting.upper() if loud else greeting)
"""


def write_greet(directory: Path) -> None:
    """A runbook that needs no serving and no control plane: cheap to run for real."""
    notebook = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"name": "workbench", "display_name": "Workbench", "language": "python"},
            "language_info": {"name": "python"},
            "workbench": {"locks_endpoint": False, "timeout_s": 300},
        }
    )
    parameters = nbformat.v4.new_code_cell(
        'who: str = "world"  # who to greet\n'
        "times: int = 1  # how many greetings\n"
        "pause_s: float = 0.0  # seconds to wait before greeting\n"
        "loud: bool = False  # shout it\n"
        'tags: list = ["a"]  # a list, typed as a Python literal'
    )
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# Greet\n\nSays hello to someone; changes nothing."),
        parameters,
        nbformat.v4.new_code_cell(GREET),
    ]
    nbformat.write(notebook, directory / "greet.ipynb")


def settings_with_greet(tmp_path: Path, mlflow_template: Path) -> Settings:
    """A test home (the MLflow template copied in) whose runbooks include ``greet`` beside the shipped ones."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    write_greet(runbooks)
    return Settings.for_home(
        home, allowed_roots=(tmp_path,), api_port=0, serving_backend="none", runbook_dirs=(runbooks,)
    )
