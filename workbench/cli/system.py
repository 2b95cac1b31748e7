"""``workbench up`` and ``workbench status``."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import typer
from rich.markup import escape

from workbench.cli._output import Column, console, handle_errors, print_json, print_table
from workbench.settings import get_settings, http_url


@handle_errors
def up(
    host: str | None = typer.Option(None, help="bind address (default 127.0.0.1)"),
    port: int | None = typer.Option(None, help="API port (default 8765)"),
    open_reads: bool = typer.Option(False, "--open-reads", help="allow GET calls without the token"),
    dashboard: bool | None = typer.Option(
        None,
        "--dashboard/--no-dashboard",
        help="also serve the dashboards (default on; WORKBENCH_DASHBOARD=0 turns it off)",
    ),
    dashboard_port: int | None = typer.Option(None, help="dashboard port (default 8767)"),
) -> None:
    """Start the control plane (HTTP API) and its dashboards in the foreground."""
    import threading

    from workbench.server import serve
    from workbench.ui.process import DashboardProcess

    settings = get_settings()
    if host or port is not None or open_reads:
        new_host, new_port = host or settings.host, settings.api_port if port is None else port
        settings = replace(
            settings,
            host=new_host,
            api_port=new_port,
            open_reads=open_reads or settings.open_reads,
            api_url=http_url(new_host, new_port),
        )

    if dashboard is not None or dashboard_port is not None:
        settings = replace(
            settings,
            dashboard=settings.dashboard if dashboard is None else dashboard,
            dashboard_port=settings.dashboard_port if dashboard_port is None else dashboard_port,
        )
    child = (
        DashboardProcess(settings, settings.home / "logs" / "dashboard.log") if settings.dashboard else None
    )

    def start_dashboard() -> None:
        # Off the API's event loop: the dashboard's first poll needs the API to answer meanwhile.
        assert child is not None
        problem = child.start()
        if problem:
            console.print(f"[yellow]dashboards not started:[/] {escape(problem)}")
        else:
            console.print(
                f"Workbench dashboards on [bold]{child.url}[/] (sign in with your name and the API token)"
            )

    def ready() -> None:
        console.print(f"Workbench control plane listening on [bold]{settings.api_url}[/] (API: /api/v1)")
        console.print(f"API docs: {settings.api_url}/api/v1/docs")
        console.print(f"API token: {settings.token_file}  (home: {settings.home})")
        if child is not None:
            threading.Thread(target=start_dashboard, name="dashboard-start", daemon=True).start()

    try:
        serve(settings, on_ready=ready)
    finally:
        if child is not None:
            child.stop()


@handle_errors
def dashboard(
    host: str | None = typer.Option(None, help="bind address (default 127.0.0.1)"),
    port: int | None = typer.Option(None, help="port (default 8767)"),
    api_url: str | None = typer.Option(
        None, "--url", help="the control plane (default WORKBENCH_URL or local)"
    ),
) -> None:
    """Serve the dashboards alone, against any control plane (its token from WORKBENCH_TOKEN or the home)."""
    from workbench.ui.server import run

    settings = get_settings()

    def ready(url: str) -> None:
        console.print(f"Workbench dashboards on [bold]{url}[/] for {api_url or settings.api_url}")
        console.print("sign in with your name and the control plane's API token")

    with contextlib.suppress(KeyboardInterrupt):
        run(settings, host=host, port=port, api_url=api_url, on_ready=ready)


@handle_errors
def status(
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    wide: bool = typer.Option(False, "--wide", help="every column, however wide"),
) -> None:
    """What the control plane holds: models, aliases, endpoints, recent rollouts and runbook runs."""
    from workbench.client import Client

    with Client() as client:
        data = client.status()
    if as_json:
        print_json(data)
        return
    console.print(
        f"[bold]Workbench {data['version']}[/] at {get_settings().api_url} - state store {data['state_store']}, "
        f"{data['audit_events']} audit events, up {data['uptime_seconds']:.0f}s"
    )
    print_table(
        "Models",
        [Column("model", fold=True), Column("latest", no_wrap=True), "aliases"],
        [
            (m["name"], m["latest_version"], ", ".join(f"{a}→v{v}" for a, v in sorted(m["aliases"].items())))
            for m in data["models"]
        ],
        wide=wide,
    )
    print_table(
        "Endpoints",
        [Column("endpoint", fold=True), Column("revision", wide_only=True), "routes"],
        [
            (
                e["name"],
                e["revision"],
                ", ".join(f"{r['model']}/v{r['version']} {r['weight']:g}%" for r in e["routes"]),
            )
            for e in data["endpoints"]
        ],
        wide=wide,
    )
    if data.get("rollouts"):
        print_table(
            "Rollouts (latest first)",
            [
                Column("endpoint", fold=True),
                Column("strategy", wide_only=True),
                Column("stable → candidate", fold=True),
                Column("phase", no_wrap=True),
                Column("step", wide_only=True),
                "last event",
            ],
            [
                (
                    r["endpoint"],
                    r["strategy"],
                    _versions(r["stable"], r["candidate"]),
                    r["phase"],
                    r["step_index"],
                    _clip(r["message"] or "", None if wide else 160),
                )
                for r in data["rollouts"]
            ],
            wide=wide,
        )
    if data.get("runbook_runs"):
        print_table(
            "Runbook runs (latest first)",
            [
                Column("run", wide_only=True),
                Column("runbook", fold=True),
                Column("status", no_wrap=True),
                Column("trigger", wide_only=True),
                Column("took", no_wrap=True),
                "outcome / error",
            ],
            [
                (
                    r["id"],
                    r["runbook"],
                    r["status"],
                    r["trigger"],
                    f"{r['duration_s']:.0f}s" if r["duration_s"] is not None else "-",
                    escape(_clip(str(r["outcome"] or ""), None if wide else 160)),
                )
                for r in data["runbook_runs"]
            ],
            wide=wide,
        )


def _clip(text: str, limit: int | None) -> str:
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def _versions(stable: str, candidate: str) -> str:
    """``churn/1 → churn/2``, shortened to ``churn 1 → 2`` when both are versions of one model."""
    before, after = stable.removeprefix("models:/"), candidate.removeprefix("models:/")
    model, _, old = before.rpartition("/")
    other, _, new = after.rpartition("/")
    if model and model == other:
        return f"{model} {old} → {new}"
    return f"{before} → {after}"
