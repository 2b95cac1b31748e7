"""``workbench optimize MODEL_URI --method M`` and ``workbench variants MODEL_URI``."""

from __future__ import annotations

from typing import Any

import typer

from workbench.cli._output import Column, console, fail, handle_errors, print_json, print_table
from workbench.client import Client
from workbench.optimize.methods import METHOD_HELP
from workbench.optimize.table import COLUMNS, comparison
from workbench.records.optimizations import OptimizationRecord, OptimizationStatus

#: A refused variant is an answer, not an error: its own exit code lets scripts tell it from a failure.
EXIT_REFUSED = 3
_HEADERS = (
    Column("model", fold=True),
    Column("method", no_wrap=True),
    Column("status", no_wrap=True),
    Column("quality", no_wrap=True),
    Column("delta", no_wrap=True),
    Column("p50 ms @1", no_wrap=True),
    Column("p50 ms @serving", no_wrap=True),
    Column("speed-up", no_wrap=True),
    Column("rows/s", wide_only=True),
    Column("size KB", no_wrap=True),
    Column("RSS MB", no_wrap=True),
    Column("note"),
)
#: The table's columns (``workbench.optimize.table``) but its id, in the order of ``_HEADERS``.
_KEYS = tuple(column for column in COLUMNS if column != "id")


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "speedup":
        return f"{float(value):.2f}x"
    if key == "delta":
        return f"{float(value):+.2f}"
    return str(value)


def print_variants(title: str, rows: list[dict[str, Any]], *, wide: bool = False) -> None:
    print_table(title, _HEADERS, [[_cell(k, row.get(k)) for k in _KEYS] for row in rows], wide=wide)


@handle_errors
def optimize(
    model: str = typer.Argument(..., help="models:/NAME/VERSION or models:/NAME@ALIAS"),
    method: str = typer.Option(..., "--method", "-m", help=METHOD_HELP),
    budget: float | None = typer.Option(
        None, "--budget", help="accuracy budget: AUC/accuracy points (MAE: percent) it may lose [1]"
    ),
    min_speedup: float | None = typer.Option(
        None, "--min-speedup", help="required speed-up at the serving batch [1.05]"
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="the batch it will serve at [observed on its endpoint, else 1]"
    ),
    threads: int | None = typer.Option(None, "--threads", help="intra-op threads while measuring"),
    alias: list[str] = typer.Option([], "--alias", help="alias for the variant if it is registered"),
    reason: str | None = typer.Option(None, "--reason", help="why (kept in the audit log)"),
    no_wait: bool = typer.Option(False, "--no-wait", help="return once queued"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Make a variant, measure it beside its parent, register it only within budget and faster.

    Exit 0 when registered, 3 when refused (the measured table says why), 1 on failure.
    """
    with Client() as client:
        record = client.optimize(
            model,
            method,
            accuracy_budget_points=budget,
            min_speedup=min_speedup,
            batch_size=batch_size,
            threads=threads,
            aliases=alias,
            reason=reason,
            wait_s=None if no_wait else 1800.0,
        )
    if as_json:
        print_json(record)
    else:
        _report(record, comparison([record]))
    if record.status is OptimizationStatus.REFUSED:
        raise typer.Exit(EXIT_REFUSED)
    if record.status is OptimizationStatus.FAILED:
        raise fail(f"optimization {record.id} failed: {record.error}")


def _report(record: OptimizationRecord, rows: list[dict[str, Any]]) -> None:
    if not record.status.finished:
        console.print(
            f"optimization {record.id} {record.status.value}: `workbench variants {record.parent_uri}`"
        )
        return
    if record.result is not None:
        print_variants(f"{record.method} of {record.parent_uri} ({record.id})", rows)
        settings = record.settings
        console.print(
            f"judged on {record.result['evaluation_rows']} reference rows; serving batch "
            f"{settings['serving_batch']} ({settings['serving_batch_source']}); budget "
            f"{settings['accuracy_budget_points']:g} points, at least {settings['min_speedup']:g}x faster"
        )
    if record.status is OptimizationStatus.REGISTERED:
        console.print(f"registered models:/{record.model}/{record.variant_version}")
    elif record.status is OptimizationStatus.REFUSED:
        reasons = "; ".join((record.verdict or {}).get("reasons", []))
        console.print(f"refused, nothing registered: {reasons}")


@handle_errors
def variants(
    model: str = typer.Argument(..., help="models:/NAME/VERSION or models:/NAME@ALIAS"),
    wide: bool = typer.Option(False, "--wide", help="every column"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """A version and every variant asked of it, registered or refused, with what was measured."""
    with Client() as client:
        table = client.variants(model)
    if as_json:
        print_json(table)
        return
    if not table["rows"]:
        console.print(
            f"no variants of {table['model']} yet: `workbench optimize {table['model']} --method onnx`"
        )
        return
    print_variants(f"Variants of {table['model']}", table["rows"], wide=wide)
