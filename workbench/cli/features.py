"""``workbench features apply|materialize|status``: the Feast repository, through the control plane."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import typer

from workbench.cli._output import console, fail, handle_errors, print_json, print_table
from workbench.client import Client

app = typer.Typer(
    help="The feature store (Feast): apply definitions, materialise, status.", no_args_is_help=True
)


def _when(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"{option} {text!r}: expected an ISO time like 2026-12-06T12:00:00+00:00", 2) from None


def _print_status(status: dict[str, Any]) -> None:
    console.print(f"repository [bold]{status['repo']}[/], online store {status['online_store']}")
    print_table(
        "Feature views",
        ["view", "entities", "features", "ttl", "online", "materialised until"],
        [
            (
                v["name"],
                ", ".join(v["entities"]),
                len(v["features"]),
                "" if v["ttl_s"] is None else f"{v['ttl_s']:g}s",
                "yes" if v["online"] else "no",
                v["materialized_until"] or "never",
            )
            for v in status["feature_views"]
        ],
    )
    print_table(
        "Feature services",
        ["service", "features"],
        [(s["name"], len(s["features"])) for s in status["feature_services"]],
    )


@app.command("status")
@handle_errors
def status(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """What the repository defines, and how far each view was materialised."""
    with Client() as client:
        found = client.features()
    if as_json:
        print_json(found)
        return
    _print_status(found)


@app.command("apply")
@handle_errors
def apply(
    reason: str | None = typer.Option(None, "--reason", help="why, for the audit log"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Register the repository's entities, feature views and services (`feast apply`)."""
    with Client() as client, console.status("feast apply"):
        answer = client.apply_features(reason=reason)
    if as_json:
        print_json(answer)
        return
    _print_status(answer["status"])


@app.command("materialize")
@handle_errors
def materialize(
    end: str | None = typer.Option(None, help="up to when (ISO time; default now)"),
    start: str | None = typer.Option(None, help="from when (default: where each view stopped)"),
    view: list[str] = typer.Option([], "--view", help="only this feature view (repeatable)"),
    reason: str | None = typer.Option(None, "--reason", help="why, for the audit log"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Load the offline store's latest values into the online store."""
    with Client() as client, console.status("feast materialize"):
        answer = client.materialize_features(
            end=_when(end, "--end"), start=_when(start, "--start"), views=view or None, reason=reason
        )
    if as_json:
        print_json(answer)
        return
    _print_status(answer["status"])
