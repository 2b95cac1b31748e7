"""``workbench rollout start|status|pause|resume|promote|abort``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
import yaml

from workbench.cli._output import console, fail, handle_errors, print_json, print_table
from workbench.client import Client
from workbench.rollouts.phases import Phase

app = typer.Typer(
    help="Rollouts (canary, blue-green, shadow): start, watch, pause, resume, promote, abort.",
    no_args_is_help=True,
)


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
    strategy: str = typer.Option("canary", help="canary, blue_green or shadow"),
    steps: str = typer.Option("5,25,50", help="canary: candidate traffic per step, percent"),
    step_seconds: float = typer.Option(30.0, help="canary: minimum duration of each step"),
    keep_warm: float = typer.Option(300.0, help="blue_green: seconds the old version stays warm"),
    shadow_seconds: float = typer.Option(300.0, help="shadow: seconds to mirror traffic"),
    sample_percent: float = typer.Option(100.0, help="shadow: share of requests mirrored"),
    tick: float = typer.Option(5.0, help="seconds between analyses"),
    spec_file: str | None = typer.Option(
        None, "--spec", help="a whole rollout spec (YAML or JSON); the options above are then ignored"
    ),
    reason: str | None = typer.Option(None, "--reason", help="why, for the audit log"),
    force: bool = typer.Option(
        False, "--force", help="start even though an analysis rejected the candidate on this endpoint"
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Start a rollout; the controller analyses every tick, promotes on PASS, rolls back on FAIL."""
    spec: dict[str, Any]
    if spec_file is not None:
        try:
            loaded = yaml.safe_load(Path(spec_file).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise fail(f"--spec {spec_file}: {exc}", 2) from None
        if not isinstance(loaded, dict):
            raise fail(f"--spec {spec_file}: expected a mapping of rollout fields", 2)
        spec = {"endpoint": endpoint, "candidate": candidate, **loaded}
    else:
        try:
            weights = [float(w) for w in steps.split(",") if w.strip()]
        except ValueError:
            raise fail(f"--steps {steps!r}: expected comma-separated percentages like 5,25,50", 2) from None
        spec = {
            "endpoint": endpoint,
            "candidate": candidate,
            "strategy": strategy,
            "steps": [{"weight": w, "min_duration_s": step_seconds} for w in weights],
            "blue_green": {"keep_warm_s": keep_warm},
            "shadow": {"duration_s": shadow_seconds, "sample_percent": sample_percent},
            "tick_s": tick,
        }
    what = spec.get("strategy", "canary")
    with Client() as client:
        with console.status(f"starting the {what} rollout of {candidate} on {endpoint}..."):
            record = client.start_rollout(spec, reason=reason, force=force)
        if as_json:
            print_json(record)
            return
        events = client.rollout(record.id)["events"]
    last = events[-1]["message"] if events else ""
    console.print(f"rollout [bold]{record.id}[/] {record.strategy} {record.phase.value}: {last}")


def _analysis_rows(analysis: dict[str, Any]) -> list[tuple[Any, ...]]:
    def bound(value: Any) -> str:
        return "" if value is None else f"{value:+.4f}"

    return [
        (
            m["name"],
            m["verdict"] if m.get("gating", True) else f"{m['verdict']} (not gating)",
            bound(m.get("estimate")),
            f"[{bound(m.get('low'))}, {bound(m.get('high'))}]",
            m.get("threshold"),
            "/".join(str(n) for n in m.get("samples") or []),
        )
        for m in analysis.get("metrics", [])
    ]


@app.command("status")
@handle_errors
def status(
    endpoint: str = typer.Argument(..., help="endpoint"),
    watch: bool = typer.Option(
        False,
        "--watch",
        "-w",
        help="follow until the rollout ends or waits for a person (paused, inconclusive)",
    ),
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
                f"{rollout['strategy']} rollout {rollout['id']} on {endpoint}: [bold]{rollout['phase']}[/], "
                f"step {rollout['step_index']}, v{rollout['stable_version']} → v{rollout['candidate_version']}"
            )
            print_table(
                "History",
                ["when (UTC)", "phase", "step", "what"],
                [(e["at"][11:19], e["phase"], e["step_index"], e["message"]) for e in detail["events"]],
            )
            analysis = detail.get("analysis")
            if analysis:
                print_table(
                    f"Analysis ({analysis.get('verdict')}, {analysis.get('elapsed_s', 0):.0f}s into the step)",
                    ["check", "verdict", "degradation", "confidence sequence", "tolerated", "samples b/c"],
                    _analysis_rows(analysis),
                )
            if not watch or Phase(rollout["phase"]).is_settled:
                return
            time.sleep(2)


def _act(action: str, endpoint: str, reason: str | None) -> None:
    with Client() as client:
        record = client.rollout_action(_active(client, endpoint), action, reason=reason)
    console.print(f"rollout {record.id}: {record.phase.value}")


@app.command("pause")
@handle_errors
def pause(endpoint: str) -> None:
    """Hold the rollout at its current step (traffic stays as it is)."""
    _act("pause", endpoint, None)


@app.command("resume")
@handle_errors
def resume(endpoint: str) -> None:
    """Continue a paused or inconclusive rollout."""
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
