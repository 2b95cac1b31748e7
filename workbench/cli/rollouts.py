"""``workbench rollout start|status|pause|resume|promote|abort``."""

from __future__ import annotations

import time

import typer

from workbench.cli._output import console, fail, handle_errors, print_json, print_table
from workbench.client import Client

app = typer.Typer(help="Canary rollouts: start, watch, pause, resume, promote, abort.", no_args_is_help=True)


def _active(client: Client, endpoint: str) -> str:
    active = client.rollouts(endpoint=endpoint, active=True)
    if not active:
        raise fail(f"endpoint {endpoint!r} has no active rollout")
    return active[0].id


@app.command("start")
@handle_errors
def start(
    endpoint: str = typer.Argument(..., help="endpoint to roll out on"),
    candidate: str = typer.Argument(..., help="models:/NAME@ALIAS or models:/NAME/VERSION"),
    steps: str = typer.Option("5,25,50", help="candidate traffic per step, percent"),
    step_seconds: float = typer.Option(30.0, help="minimum duration of each step"),
    tick: float = typer.Option(5.0, help="seconds between analyses"),
    reason: str | None = typer.Option(None, "--reason", help="why, for the audit log"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Start a canary: the controller analyses every tick, promotes on PASS, rolls back on FAIL."""
    try:
        weights = [float(w) for w in steps.split(",") if w.strip()]
    except ValueError:
        raise fail(f"--steps {steps!r}: expected comma-separated percentages like 5,25,50", 2) from None
    spec = {
        "endpoint": endpoint,
        "candidate": candidate,
        "steps": [{"weight": w, "min_duration_s": step_seconds} for w in weights],
        "tick_s": tick,
    }
    with Client() as client, console.status(f"starting the canary of {candidate} on {endpoint}..."):
        record = client.start_rollout(spec, reason=reason)
    if as_json:
        print_json(record)
    else:
        console.print(f"rollout [bold]{record.id}[/] {record.phase.value}: {weights[0]:g}% to {candidate}")


@app.command("status")
@handle_errors
def status(
    endpoint: str = typer.Argument(..., help="endpoint"),
    watch: bool = typer.Option(False, "--watch", "-w", help="follow until the rollout ends"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """The endpoint's latest rollout: phase, step, and its history with the evidence of each step."""
    with Client() as client:
        while True:
            found = client.rollouts(endpoint=endpoint)
            if not found:
                raise fail(f"endpoint {endpoint!r} has had no rollout")
            detail = client.rollout(found[0].id)
            if as_json:
                print_json(detail)
                return
            rollout = detail["rollout"]
            if watch:
                console.clear()
            console.print(
                f"rollout {rollout['id']} on {endpoint}: [bold]{rollout['phase']}[/], step {rollout['step_index']}, "
                f"v{rollout['stable_version']} → v{rollout['candidate_version']}"
            )
            print_table(
                "History",
                ["when (UTC)", "phase", "step", "what"],
                [(e["at"][11:19], e["phase"], e["step_index"], e["message"]) for e in detail["events"]],
            )
            if not watch or rollout["phase"] in ("succeeded", "rolled_back", "failed", "error"):
                return
            time.sleep(2)


def _act(action: str, endpoint: str, reason: str | None) -> None:
    with Client() as client:
        record = client.rollout_action(_active(client, endpoint), action, reason=reason)
    console.print(f"rollout {record.id}: {record.phase.value}")


@app.command("pause")
@handle_errors
def pause(endpoint: str) -> None:
    """Hold the canary at its current step."""
    _act("pause", endpoint, None)


@app.command("resume")
@handle_errors
def resume(endpoint: str) -> None:
    """Continue a paused or inconclusive canary."""
    _act("resume", endpoint, None)


@app.command("promote")
@handle_errors
def promote(endpoint: str, reason: str | None = typer.Option(None, "--reason")) -> None:
    """Send all traffic to the candidate now and make it champion."""
    _act("promote", endpoint, reason)


@app.command("abort")
@handle_errors
def abort(endpoint: str, reason: str | None = typer.Option(None, "--reason")) -> None:
    """Return all traffic to the stable version now."""
    _act("abort", endpoint, reason)
