"""``workbench runbook list|show|run|runs|status|cancel|notebook`` and ``workbench runbook schedule ...``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from workbench.cli._output import console, fail, handle_errors, print_json, print_table
from workbench.client import Client
from workbench.store.runbooks import RunRecord

app = typer.Typer(help="Runbooks: parameterised notebooks, executed and archived.", no_args_is_help=True)
schedule_app = typer.Typer(help="Runbooks on a schedule, started by the control plane.", no_args_is_help=True)


def parse_parameters(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; a value that is JSON is read as JSON (``5`` an int, ``1e-3`` a float, ``true``
    a bool, ``[1, 2]`` a list), anything else is text (``churn``, ``10,50``, ``2024-01-01``)."""
    parameters: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise fail(f"parameter {pair!r} is not key=value", 2)
        if key in parameters:
            raise fail(f"parameter {key!r} is given twice", 2)
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        parameters[key] = value
    return parameters


def _duration(record: RunRecord) -> str:
    return "-" if record.duration_s is None else f"{record.duration_s:.1f}s"


def _show(record: RunRecord) -> None:
    trigger = record.trigger.kind.value + (
        f" ({record.trigger.rule or record.trigger.schedule})"
        if record.trigger.rule or record.trigger.schedule
        else ""
    )
    console.print(
        f"run [bold]{record.id}[/] of [bold]{record.runbook}[/]: {record.status.value} "
        f"after {_duration(record)}; trigger {trigger}, by {record.actor}"
    )
    if record.parameters:
        console.print(escape("parameters: " + ", ".join(f"{k}={v!r}" for k, v in record.parameters.items())))
    if record.error:
        console.print(f"[red]error:[/] {escape(record.error)}")
    if record.failed_cell is not None:
        cell = record.failed_cell
        tags = f" [{', '.join(cell.tags)}]" if cell.tags else ""
        console.print(escape(f"failed in code cell {cell.index}{tags}"))
    if record.summary:
        console.print(escape("summary: " + ", ".join(f"{k}={v}" for k, v in record.summary.items())))
    console.print(f"archive: {record.archive_dir}")


@app.command("list")
@handle_errors
def list_runbooks(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """The runbooks and their parameters."""
    with Client() as client:
        runbooks = client.runbooks()
    if as_json:
        print_json(runbooks)
        return
    print_table(
        "Runbooks",
        ["name", "title", "parameters", "locks endpoint"],
        [
            (
                r["name"],
                r["title"],
                ", ".join(p["name"] for p in r["parameters"]),
                "yes" if r["locks_endpoint"] else "",
            )
            for r in runbooks
        ],
    )


@app.command("show")
@handle_errors
def show(name: str = typer.Argument(..., help="runbook name")) -> None:
    """A runbook's description and documented parameters."""
    with Client() as client:
        info = client.runbook(name)
    console.print(f"[bold]{info['name']}[/]: {info['title']}")
    if info["description"]:
        console.print(info["description"])
    print_table(
        "Parameters",
        ["name", "type", "default", "help"],
        [(p["name"], p["type"] or "", p["default"], p["help"]) for p in info["parameters"]],
    )


@app.command("run")
@handle_errors
def run(
    name: str = typer.Argument(..., help="runbook name"),
    parameter: list[str] = typer.Option([], "--parameter", "-p", help="key=value (repeatable)"),
    timeout: float | None = typer.Option(None, "--timeout", help="whole run, seconds"),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="wait for the run to end"),
    reason: str | None = typer.Option(None, "--reason"),
    as_json: bool = typer.Option(False, "--json", help="print the run record as JSON"),
) -> None:
    """Run a runbook; exits non-zero if the run does not succeed."""
    parameters = parse_parameters(parameter)
    with Client() as client:
        record = client.run_runbook(name, parameters, timeout_s=timeout, reason=reason)
        if not as_json:
            console.print(f"started run {record.id} of {name}")
        if wait:
            with console.status(f"running {name}..."):
                record = client.wait_run(record.id, timeout_s=(timeout or 6 * 3600) + 60)
    if as_json:
        print_json(record)
    else:
        _show(record)
    if wait and record.status.value != "succeeded":
        raise typer.Exit(1)


@app.command("runs")
@handle_errors
def runs(
    runbook: str | None = typer.Option(None, "--runbook"),
    status: str | None = typer.Option(None, "--status"),
    endpoint: str | None = typer.Option(None, "--endpoint"),
    limit: int = typer.Option(20, "--limit", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Recent runs, newest first."""
    with Client() as client:
        records = client.runbook_runs(runbook=runbook, status=status, endpoint=endpoint, limit=limit)
    if as_json:
        print_json(records)
        return
    print_table(
        "Runbook runs",
        ["run", "runbook", "status", "trigger", "started", "took", "outcome / error"],
        [
            (
                r.id,
                r.runbook,
                r.status.value,
                r.trigger.kind.value,
                r.started_at.strftime("%Y-%m-%d %H:%M:%S") if r.started_at else "",
                _duration(r),
                (r.summary or {}).get("outcome") or (r.error or "")[:60],
            )
            for r in records
        ],
    )


@app.command("status")
@handle_errors
def status(
    run_id: str = typer.Argument(..., help="run id"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """One run: status, parameters, summary, failing cell, archive."""
    with Client() as client:
        record = client.runbook_run(run_id)
    if as_json:
        print_json(record)
    else:
        _show(record)


app.command("show-run", hidden=True)(status)


@app.command("cancel")
@handle_errors
def cancel(run_id: str = typer.Argument(..., help="run id")) -> None:
    """Stop a run: its kernel is shut down, its notebook archived as far as it got."""
    with Client() as client:
        record = client.cancel_run(run_id)
    _show(record)


@app.command("notebook")
@handle_errors
def notebook(
    run_id: str = typer.Argument(..., help="run id"),
    output: Path = typer.Option(..., "--output", "-o", help="where to write it"),
    html: bool = typer.Option(False, "--html", help="the HTML rendering instead of the .ipynb"),
) -> None:
    """Download a run's executed notebook (or its HTML rendering)."""
    with Client() as client:
        content = client.run_notebook(run_id, format="html" if html else "ipynb")
    output.write_bytes(content)
    console.print(f"wrote {output} ({len(content)} bytes)")


@schedule_app.command("create")
@handle_errors
def schedule_create(
    name: str = typer.Argument(..., help="schedule name"),
    runbook: str = typer.Argument(..., help="runbook to run"),
    every: float = typer.Option(..., "--every", help="seconds between runs (at least 10)"),
    parameter: list[str] = typer.Option([], "--parameter", "-p", help="key=value (repeatable)"),
    disabled: bool = typer.Option(False, "--disabled", help="create it paused"),
) -> None:
    """Run a runbook every N seconds from the control plane's loop."""
    spec = {"name": name, "runbook": runbook, "parameters": parse_parameters(parameter), "every_s": every}
    spec["enabled"] = not disabled
    with Client() as client:
        record = client.create_schedule(spec)
    console.print(
        f"schedule {record.spec.name}: {record.spec.runbook} every {record.spec.every_s:g}s, "
        f"next at {record.next_at:%H:%M:%S}"
    )


@schedule_app.command("list")
@handle_errors
def schedule_list(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    with Client() as client:
        records = client.schedules()
    if as_json:
        print_json(records)
        return
    print_table(
        "Runbook schedules",
        ["name", "runbook", "every", "next", "enabled", "last run"],
        [
            (
                r.spec.name,
                r.spec.runbook,
                f"{r.spec.every_s:g}s",
                f"{r.next_at:%Y-%m-%d %H:%M:%S}",
                "yes" if r.spec.enabled else "no",
                r.last_run_id or "",
            )
            for r in records
        ],
    )


@schedule_app.command("delete")
@handle_errors
def schedule_delete(name: str = typer.Argument(..., help="schedule name")) -> None:
    with Client() as client:
        client.delete_schedule(name)
    console.print(f"deleted schedule {name}")


app.add_typer(schedule_app, name="schedule")
