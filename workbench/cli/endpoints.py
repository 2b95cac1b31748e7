"""``workbench endpoints list|show|create|delete``: endpoint definitions."""

from __future__ import annotations

import typer

from workbench.cli._output import console, fail, handle_errors, print_json, print_table
from workbench.client import Client
from workbench.revisions.model import Revision, routes_label

app = typer.Typer(help="Endpoint definitions: which model versions answer which name.", no_args_is_help=True)


@app.command("list")
@handle_errors
def list_endpoints(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Every endpoint with its routes."""
    with Client() as client:
        records = client.list_endpoints()
    if as_json:
        print_json(records)
        return
    print_table(
        "Endpoints",
        ["endpoint", "revision", "routes", "shadows", "replicas", "device", "batching"],
        [
            (
                r.spec.name,
                r.revision,
                ", ".join(f"{x.uri} {x.weight:g}%" for x in r.spec.routes),
                ", ".join(f"models:/{s.model}/{s.version}" for s in r.spec.shadows),
                r.spec.replicas,
                r.spec.device,
                f"≤{r.spec.batching.max_batch_size} rows / {r.spec.batching.max_wait_ms:g} ms",
            )
            for r in records
        ],
    )


@app.command("show")
@handle_errors
def show(name: str, as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """One endpoint: its definition (YAML), where to call it, and the replicas serving it."""
    with Client() as client:
        record = client.get_endpoint(name)
        status = client.endpoint_status(name)
    if as_json:
        print_json(status)
        return
    console.print(f"# revision {record.revision}, updated {record.updated_at:%Y-%m-%d %H:%M:%S} UTC")
    console.print(record.spec.to_yaml(), highlight=False, markup=False)
    for protocol, url in status["urls"].items():
        if url:
            console.print(f"{protocol}: {url}")
    print_replicas(status["replicas"])


def print_replicas(replicas: list[dict[str, object]]) -> None:
    print_table(
        "Replicas",
        ["replica", "version", "state", "pid", "port", "device", "restarts", "last error"],
        [
            (
                r["id"],
                r["version"],
                r["state"],
                r["pid"],
                r["port"],
                r["device"],
                r["restarts"],
                r["last_error"] or "",
            )
            for r in replicas
        ],
    )


def _parse_route(raw: str) -> dict[str, object]:
    model, sep, weight = raw.rpartition("=")
    if not sep:
        return {"model": raw, "weight": 100.0}
    try:
        return {"model": model, "weight": float(weight)}
    except ValueError:
        raise fail(f"--route {raw!r}: expected MODEL_URI or MODEL_URI=WEIGHT", 2) from None


@app.command("create")
@handle_errors
def create(
    name: str,
    route: list[str] = typer.Option(..., "--route", "-r", help="models:/NAME@ALIAS[=WEIGHT], repeatable"),
    replicas: int = typer.Option(1, min=1),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N"),
    max_batch_size: int = typer.Option(64, min=1),
    max_wait_ms: float = typer.Option(2.0, min=0),
    reason: str | None = typer.Option(None, "--reason", help="why, for the audit log"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Define an endpoint; aliases in routes are resolved to versions now."""
    with Client() as client:
        record = client.create_endpoint(
            name,
            [_parse_route(r) for r in route],
            replicas=replicas,
            device=device,
            batching={"max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms},
            reason=reason,
        )
    if as_json:
        print_json(record)
    else:
        console.print(
            f"created endpoint [bold]{name}[/]: "
            + ", ".join(f"{r.uri} {r.weight:g}%" for r in record.spec.routes)
        )


@app.command("delete")
@handle_errors
def delete(
    name: str, reason: str | None = typer.Option(None, "--reason", help="why, for the audit log")
) -> None:
    """Remove an endpoint definition."""
    with Client() as client:
        client.delete_endpoint(name, reason=reason)
    console.print(f"deleted endpoint {name}")


def _links(revision: Revision) -> str:
    links = [
        f"rollout {revision.rollout_id}" if revision.rollout_id else "",
        f"run {revision.runbook_run_id}" if revision.runbook_run_id else "",
        f"alert {revision.alert}" if revision.alert else "",
        f"restores {revision.restores}" if revision.restores else "",
    ]
    return ", ".join(link for link in links if link)


@app.command("history")
@handle_errors
def history(
    name: str = typer.Argument(..., help="endpoint name"),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="newest revisions to show"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Every traffic change of an endpoint, newest first, with its cause (like kubectl rollout history)."""
    with Client() as client:
        revisions = client.history(name, limit=limit)
        rejected = client.rejected_versions(name)
    if as_json:
        print_json({"revisions": revisions, "rejected": rejected})
        return
    print_table(
        f"Revisions of {name}",
        ["rev", "at (UTC)", "cause", "routes", "by", "links"],
        [
            (
                r.revision,
                f"{r.at:%m-%d %H:%M:%S}",
                r.cause.value,
                routes_label(r.spec),
                r.actor,
                _links(r),
            )
            for r in revisions
        ],
    )
    for rejection in rejected:
        console.print(
            f"[red]rejected[/] {rejection.model} v{rejection.version} "
            f"(rollout {rejection.rollout_id}, {rejection.at:%m-%d %H:%M:%S}): {rejection.reason}"
        )
