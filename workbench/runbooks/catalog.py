"""The runbooks on disk: names, titles and the parameters their ``parameters`` cell declares.

A runbook is ``NAME.ipynb`` in a runbooks directory. Its parameters are read by papermill's inspection
(the assignment, its type hint and its trailing comment), so the notebook stays the single source of what
it accepts. Notebook metadata ``workbench`` adds what the engine needs to know before running it: whether
it changes an endpoint (and so takes the endpoint's lock) and its default timeout.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import NotFoundError, ValidationError
from workbench.specs.runbook import DEFAULT_TIMEOUT_S

ENDPOINT_PARAMETER = "endpoint"
RUNBOOK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunbookParameter:
    name: str
    type: str | None
    default: str
    help: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "default": self.default, "help": self.help}


@dataclass(frozen=True)
class RunbookInfo:
    name: str
    path: Path
    title: str
    description: str
    parameters: tuple[RunbookParameter, ...]
    locks_endpoint: bool
    timeout_s: float

    def parameter(self, name: str) -> RunbookParameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "path": str(self.path),
            "parameters": [p.as_dict() for p in self.parameters],
            "locks_endpoint": self.locks_endpoint,
            "timeout_s": self.timeout_s,
        }

    def check_parameters(self, parameters: dict[str, Any]) -> None:
        """Refuse names the runbook does not declare (a typo would otherwise be silently ignored), and
        values that are not of a declared simple type (the run would fail in its first cell instead)."""
        declared = {p.name: p for p in self.parameters}
        unknown = sorted(set(parameters) - set(declared))
        if unknown:
            raise ValidationError(
                f"runbook {self.name!r} has no parameter(s) {', '.join(unknown)}; "
                f"it takes {', '.join(sorted(declared)) or 'none'}",
                runbook=self.name,
                unknown=unknown,
            )
        wrong = {
            name: declared[name].type
            for name, value in parameters.items()
            if not _fits(value, declared[name].type, declared[name].default)
        }
        if wrong:
            described = ", ".join(f"{name} must be {kind}" for name, kind in sorted(wrong.items()))
            raise ValidationError(
                f"runbook {self.name!r}: {described}",
                runbook=self.name,
                wrong={name: repr(parameters[name])[:100] for name in wrong},
            )


#: JSON values accepted for a declared type; other type hints are not checked here.
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


def _fits(value: Any, kind: str | None, default: str) -> bool:
    accepted = _JSON_TYPES.get((kind or "").strip())
    if accepted is None:
        return True
    if value is None:
        return default.strip() == "None"  # None where the runbook's own default is None
    if isinstance(value, bool) and bool not in accepted:
        return False  # True is an int to Python, not to a person filling in a number
    return isinstance(value, accepted)


def _describe(notebook: dict[str, Any]) -> tuple[str, str]:
    """The first markdown cell: its heading is the title, the paragraph after it the description."""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        source = "".join(cell.get("source", "")) if isinstance(cell.get("source"), list) else cell["source"]
        lines = [line.strip() for line in source.splitlines()]
        title = next((line.lstrip("#").strip() for line in lines if line.startswith("#")), "")
        body: list[str] = []
        for line in lines:
            if line.startswith("#"):
                if body:
                    break
                continue
            if not line and body:
                break
            if line:
                body.append(line)
        return title, " ".join(body)
    return "", ""


def inspect_runbook(path: Path) -> RunbookInfo:
    import papermill

    try:
        notebook = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValidationError(f"runbook {path.name} is not a readable notebook: {exc}", path=str(path)) from None
    raw = papermill.inspect_notebook(str(path))
    parameters = tuple(
        RunbookParameter(
            name=name,
            type=None if entry.get("inferred_type_name") in (None, "None") else entry["inferred_type_name"],
            default=str(entry.get("default", "")),
            help=str(entry.get("help", "")),
        )
        for name, entry in raw.items()
    )
    meta = notebook.get("metadata", {}).get("workbench", {})
    title, description = _describe(notebook)
    return RunbookInfo(
        name=path.stem,
        path=path,
        title=title or path.stem,
        description=description,
        parameters=parameters,
        locks_endpoint=bool(meta.get("locks_endpoint", False)),
        timeout_s=float(meta.get("timeout_s", DEFAULT_TIMEOUT_S)),
    )


class RunbookCatalog:
    """Runbooks found in ``directories``; the first directory that has a name wins.

    Inspection is cached by file modification time, so editing a runbook is picked up at the next call.
    """

    def __init__(self, directories: tuple[Path, ...]) -> None:
        self.directories = directories
        self._cache: dict[Path, tuple[float, RunbookInfo]] = {}

    def _paths(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for directory in self.directories:
            if not directory.is_dir():
                continue
            for path in sorted(directory.glob("*.ipynb")):
                if not RUNBOOK_NAME.match(path.stem):
                    log.warning("skipping %s: a runbook's name is lowercase letters, digits, '-' and '_'", path)
                    continue
                found.setdefault(path.stem, path)
        return found

    def _info(self, path: Path) -> RunbookInfo:
        mtime = path.stat().st_mtime
        cached = self._cache.get(path)
        if cached is None or cached[0] != mtime:
            cached = (mtime, inspect_runbook(path))
            self._cache[path] = cached
        return cached[1]

    def list(self) -> list[RunbookInfo]:
        return [self._info(path) for path in self._paths().values()]

    def get(self, name: str) -> RunbookInfo:
        path = self._paths().get(name)
        if path is None:
            known = ", ".join(sorted(self._paths())) or "none"
            raise NotFoundError(f"runbook {name!r} does not exist; known runbooks: {known}", runbook=name)
        return self._info(path)
