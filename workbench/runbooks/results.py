"""What an executed notebook says about its run: the recorded summary and the cell that failed.

Read from the notebook papermill saved, never from the process output: the archived notebook is the
record, and this is a reading of it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.runbooks.notebook import SUMMARY_MIME
from workbench.store.runbooks import FailedCell

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class NotebookOutcome:
    summary: dict[str, Any] | None
    failed_cell: FailedCell | None
    running_cell: int | None  # the cell executing when the run was stopped, if any
    cells_run: int


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def read_outcome(path: Path) -> NotebookOutcome:
    try:
        notebook = json.loads(path.read_text())
    except (OSError, ValueError):
        return NotebookOutcome(None, None, None, 0)
    summary: dict[str, Any] | None = None
    failed: FailedCell | None = None
    running: int | None = None
    cells_run = 0
    index = -1
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        index += 1
        state = cell.get("metadata", {}).get("papermill", {})
        if state.get("status") == "running":
            running = index
        if cell.get("execution_count") is not None:
            cells_run += 1
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if SUMMARY_MIME in data:
                summary = data[SUMMARY_MIME]
            if output.get("output_type") == "error" and failed is None:
                failed = FailedCell(
                    index=index,
                    tags=list(cell.get("metadata", {}).get("tags", [])),
                    source=_source(cell)[:2000],
                    ename=_ANSI.sub("", str(output.get("ename", ""))),
                    evalue=_ANSI.sub("", str(output.get("evalue", "")))[:4000],
                )
    return NotebookOutcome(summary, failed, running, cells_run)


def render_html(notebook_path: Path, html_path: Path) -> str | None:
    """The executed notebook as standalone HTML; returns why not, if it could not be rendered."""
    try:
        import nbformat
        from nbconvert import HTMLExporter

        notebook = nbformat.read(notebook_path, as_version=4)  # type: ignore[no-untyped-call]
        exporter = HTMLExporter(template_name="lab")  # type: ignore[no-untyped-call]
        body, _resources = exporter.from_notebook_node(notebook)
        tmp = html_path.with_suffix(".tmp")
        tmp.write_text(body)
        tmp.replace(html_path)
    except Exception as exc:  # rendering (or a full disk) must never turn a finished run into a lost record
        return f"{type(exc).__name__}: {exc}"
    return None
