"""``workbench deploy`` and ``workbench undeploy``."""

from __future__ import annotations

import typer

from workbench.cli._output import console, handle_errors, print_json
from workbench.cli.endpoints import print_replicas
from workbench.client import Client


@handle_errors
def deploy(
    endpoint: str = typer.Argument(..., help="endpoint name (created if new)"),
    model: str = typer.Argument(..., help="models:/NAME@ALIAS or models:/NAME/VERSION"),
    replicas: int | None = typer.Option(None, min=1, help="replica processes for the version"),
    device: str | None = typer.Option(None, help="auto, cpu, cuda or cuda:N"),
    max_batch_size: int | None = typer.Option(None, min=1, help="rows coalesced into one forward pass"),
    max_wait_ms: float | None = typer.Option(None, min=0, help="longest wait for a batch to fill"),
    payload_limit: int | None = typer.Option(None, "--payload-limit", min=1024, help="bytes per request"),
    threads: int | None = typer.Option(None, min=1, help="torch threads per replica"),
    reason: str | None = typer.Option(None, "--reason", help="why, for the audit log"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Serve a model version on an endpoint with all its traffic; returns when its replicas are ready."""
    options = {
        k: v
        for k, v in {
            "replicas": replicas,
            "device": device,
            "max_batch_size": max_batch_size,
            "max_wait_ms": max_wait_ms,
            "payload_limit_bytes": payload_limit,
            "threads": threads,
        }.items()
        if v is not None
    }
    with Client() as client, console.status(f"deploying {model} to {endpoint}..."):
        client.deploy(endpoint, model, reason=reason, **options)
        status = client.endpoint_status(endpoint)
    if as_json:
        print_json(status)
        return
    route = status["endpoint"]["spec"]["routes"][0]
    console.print(f"[bold]{endpoint}[/] serves models:/{route['model']}/{route['version']}")
    for protocol, url in status["urls"].items():
        if url:
            console.print(f"  {protocol}: {url}")
    print_replicas(status["replicas"])


@handle_errors
def undeploy(
    endpoint: str = typer.Argument(..., help="endpoint name"),
    reason: str | None = typer.Option(None, "--reason", help="why, for the audit log"),
) -> None:
    """Stop serving an endpoint: in-flight requests finish, then its replicas stop."""
    with Client() as client:
        client.undeploy(endpoint, reason=reason)
    console.print(f"undeployed {endpoint}")


@handle_errors
def rollback(
    endpoint: str = typer.Argument(..., help="endpoint name"),
    to_revision: int | None = typer.Option(
        None, "--to-revision", min=1, help="this revision (see `workbench endpoints history`)"
    ),
    force: bool = typer.Option(False, "--force", help="allow a revision that routes to a rejected version"),
    reason: str | None = typer.Option(None, "--reason", help="why, for the audit log"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Back to an earlier revision, now: aborts an active rollout, else undoes the last change that
    stands, never onto a version an analysis rejected here. Again to step further back."""
    with Client() as client, console.status(f"rolling back {endpoint}..."):
        result = client.rollback(endpoint, reason=reason, to_revision=to_revision, force=force)
    if as_json:
        print_json(result)
        return
    console.print(result.message)
    routes = ", ".join(f"{r.uri} {r.weight:g}%" for r in result.endpoint.spec.routes)
    console.print(f"[bold]{endpoint}[/] serves {routes} (revision {result.revision})")
