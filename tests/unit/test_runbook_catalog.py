"""The runbook catalogue and the reading of executed notebooks, without a kernel."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from workbench.cli.runbooks import parse_parameters
from workbench.errors import NotFoundError, ValidationError
from workbench.runbooks import shipped_runbooks_dir
from workbench.runbooks.catalog import RunbookCatalog
from workbench.runbooks.kernel import KERNEL_NAME, ensure_kernelspec, kernel_environment
from workbench.runbooks.notebook import SUMMARY_MIME, ParameterError, require, require_number
from workbench.runbooks.results import read_outcome
from workbench.runbooks.training import load_entry_point

SHIPPED = {
    "deploy",
    "canary-rollout",
    "rollback",
    "retrain-and-canary",
    "drift-investigation",
    "incident-triage",
}


def _notebook(path: Path, parameters: str, *, meta: dict[str, object] | None = None) -> Path:
    notebook = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"name": "workbench", "display_name": "Workbench", "language": "python"},
            "workbench": meta or {},
        }
    )
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    notebook.cells = [nbformat.v4.new_markdown_cell("# Title here\n\nWhat it does.\n\nMore."), cell]
    nbformat.write(notebook, path)
    return path


def test_every_shipped_runbook_declares_documented_parameters_and_validates_first() -> None:
    catalog = RunbookCatalog((shipped_runbooks_dir(),))
    names = {info.name for info in catalog.list()}
    assert names >= SHIPPED
    for info in catalog.list():
        source = json.loads(info.path.read_text())
        code = [c for c in source["cells"] if c["cell_type"] == "code"]
        assert code[0]["metadata"].get("tags") == ["parameters"], info.name
        assert code[1]["metadata"].get("tags") == ["validate"], info.name
        declared = [line for line in "".join(code[0]["source"]).splitlines() if "=" in line]
        # papermill drops a line it cannot parse without failing: every assignment must be inspected.
        assert len(info.parameters) == len(declared), (info.name, declared)
        assert all(p.help for p in info.parameters), info.name
        assert not any(c.get("outputs") for c in code), f"{info.name} is committed with outputs"


def test_the_catalogue_reads_title_metadata_and_refuses_unknown_names(tmp_path: Path) -> None:
    _notebook(
        tmp_path / "fix-it.ipynb",
        'endpoint = "churn"  # which\nn: int = 3  # how many',
        meta={"locks_endpoint": True, "timeout_s": 90},
    )
    catalog = RunbookCatalog((tmp_path, shipped_runbooks_dir()))
    info = catalog.get("fix-it")
    assert info.title == "Title here"
    assert info.description == "What it does."
    assert info.locks_endpoint is True
    assert info.timeout_s == 90
    assert [(p.name, p.type, p.default, p.help) for p in info.parameters] == [
        ("endpoint", None, '"churn"', "which"),
        ("n", "int", "3", "how many"),
    ]
    info.check_parameters({"n": 4})
    with pytest.raises(ValidationError, match="no parameter"):
        info.check_parameters({"m": 4})
    for wrong in ("4", 4.5, True, None):
        with pytest.raises(ValidationError, match="n must be int"):
            info.check_parameters({"n": wrong})
    info.check_parameters({"endpoint": 7})  # no type hint: not checked here
    with pytest.raises(NotFoundError, match="known runbooks"):
        catalog.get("nope")


def test_a_user_directory_shadows_a_shipped_runbook_of_the_same_name(tmp_path: Path) -> None:
    _notebook(tmp_path / "rollback.ipynb", 'endpoint = "x"  # mine')
    info = RunbookCatalog((tmp_path, shipped_runbooks_dir())).get("rollback")
    assert info.path == tmp_path / "rollback.ipynb"


def test_read_outcome_finds_the_summary_and_the_failing_cell(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    ok = nbformat.v4.new_code_cell("summarise()", execution_count=1)
    ok.outputs = [
        nbformat.v4.new_output("display_data", data={SUMMARY_MIME: {"outcome": "a"}, "text/plain": "x"})
    ]
    bad = nbformat.v4.new_code_cell("raise", execution_count=2)
    bad.metadata["tags"] = ["validate"]
    bad.outputs = [
        nbformat.v4.new_output("error", ename="ParameterError", evalue="\x1b[31mno\x1b[0m", traceback=[])
    ]
    running = nbformat.v4.new_code_cell("sleep")
    running.metadata["papermill"] = {"status": "running"}
    notebook.cells = [nbformat.v4.new_markdown_cell("# t"), ok, bad, running]
    path = tmp_path / "out.ipynb"
    nbformat.write(notebook, path)
    outcome = read_outcome(path)
    assert outcome.summary == {"outcome": "a"}
    assert outcome.failed_cell is not None
    assert (outcome.failed_cell.index, outcome.failed_cell.tags) == (1, ["validate"])
    assert outcome.failed_cell.evalue == "no"
    assert outcome.running_cell == 2
    assert outcome.cells_run == 2
    assert read_outcome(tmp_path / "missing.ipynb").summary is None


def test_cli_parameters_are_json_values_or_text() -> None:
    assert parse_parameters(
        [
            "n=5",
            "x=0.5",
            "tiny=1e-3",
            "flag=true",
            "name=churn",
            "steps=10,50",
            "day=2024-01-01",
            "empty=",
            "l=[1,2]",
        ]
    ) == {
        "n": 5,
        "x": 0.5,
        "tiny": 0.001,
        "flag": True,
        "name": "churn",
        "steps": "10,50",
        "day": "2024-01-01",
        "empty": "",
        "l": [1, 2],
    }


def test_parameter_helpers_raise_parameter_errors() -> None:
    require(True, "never")
    with pytest.raises(ParameterError, match="must be positive"):
        require(False, "must be positive")
    assert require_number("n", 3, low=1) == 3.0
    for bad in ("3", True, None):
        with pytest.raises(ParameterError, match="must be a number"):
            require_number("n", bad)
    with pytest.raises(ParameterError, match="at most 2"):
        require_number("n", 3, high=2)


def test_training_entry_points_are_module_colon_function() -> None:
    assert callable(load_entry_point("workbench.demo.retrain:train"))
    for bad, message in (
        ("workbench.demo.retrain", "module:function"),
        ("no.such.module:train", "cannot import"),
        ("workbench.demo.retrain:nope", "no callable"),
    ):
        with pytest.raises(ValueError, match=message):
            load_entry_point(bad)


def test_the_kernelspec_points_at_this_interpreter(tmp_path: Path) -> None:
    import sys

    path = ensure_kernelspec(tmp_path)
    spec = json.loads(path.read_text())
    assert path.parent.name == KERNEL_NAME
    assert spec["argv"][0] == sys.executable
    env = kernel_environment(tmp_path, {"JUPYTER_PATH": "/elsewhere"})
    assert env["JUPYTER_PATH"].split(":") == [str(tmp_path), "/elsewhere"]
