"""How the CLI speaks: Rich tables for people, ``--json`` for scripts, one line on stderr for errors."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import orjson
import typer
from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from workbench.errors import WorkbenchError

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(
        orjson.dumps(to_jsonable(value), option=orjson.OPT_INDENT_2, default=str).decode() + "\n"
    )


@dataclass(frozen=True)
class Column:
    """A table column and how it behaves when the terminal is narrow.

    ``wide_only`` columns are left out when the whole table does not fit the terminal (``--wide`` shows
    them); ``no_wrap`` keeps short fields (ids, times, phases) on one line, so the long ones wrap instead;
    ``fold`` breaks text without spaces (targets, URIs) anywhere rather than cutting it off.
    """

    header: str
    wide_only: bool = False
    no_wrap: bool = False
    fold: bool = False


def print_table(
    title: str, columns: Sequence[str | Column], rows: Iterable[Sequence[Any]], *, wide: bool = False
) -> None:
    """Print a table that fits the terminal: all columns if they fit, else without the ``wide_only`` ones
    (named in a caption), with long cells wrapped. ``wide`` prints every column at its natural width,
    lines longer than the terminal included (for a pager, a file or a wide window)."""
    specs = [column if isinstance(column, Column) else Column(column) for column in columns]
    cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
    table = _table(title, specs, cells)
    natural = _natural_width(table)
    if natural <= console.width:
        console.print(table)
    elif wide:
        Console(width=natural, file=console.file, force_terminal=console.is_terminal).print(table)
    else:
        hidden = [index for index, spec in enumerate(specs) if spec.wide_only]
        kept = [index for index in range(len(specs)) if index not in hidden]
        # Without vertical rules a narrow table keeps two columns of text for every column it shows.
        table = _table(
            title, [specs[i] for i in kept], [[row[i] for i in kept] for row in cells], box.SIMPLE_HEAD
        )
        if hidden:
            table.caption = f"not shown at this width: {', '.join(specs[i].header for i in hidden)} (--wide)"
        console.print(table)


def _natural_width(table: Table) -> int:
    """The width the table takes when nothing wraps."""
    return Measurement.get(console, console.options.update(max_width=1_000_000), table).maximum


def _table(
    title: str, specs: Sequence[Column], rows: Sequence[Sequence[str]], style: box.Box = box.HEAVY_HEAD
) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold", caption_justify="left", box=style)
    for spec in specs:
        table.add_column(spec.header, no_wrap=spec.no_wrap, overflow="fold" if spec.fold else "ellipsis")
    for row in rows:
        table.add_row(*row)
    return table


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a WorkbenchError into one line on stderr and a non-zero exit instead of a traceback."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except WorkbenchError as exc:
            raise fail(exc.message) from None

    return wrapper
