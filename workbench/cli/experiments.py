"""``workbench experiment create|list|start|status|pause|resume|conclude|promote|outcomes``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import typer
import yaml

from workbench.cli._output import console, fail, handle_errors, print_json, print_table
from workbench.client import Client

app = typer.Typer(
    help="A/B experiments: create, start, watch, pause, conclude, promote the winner.",
    no_args_is_help=True,
)

VARIANT_RE = re.compile(r"^(?P<name>[a-z0-9-]+)=(?P<model>[^/\s]+)/(?P<version>\d+):(?P<weight>[0-9.]+)\Z")


def _variant(text: str) -> dict[str, Any]:
    match = VARIANT_RE.match(text)
    if match is None:
        raise fail(f"--variant {text!r}: expected NAME=MODEL/VERSION:WEIGHT, like treatment=churn/2:50", 2)
    return {
        "name": match["name"],
        "model": match["model"],
        "version": int(match["version"]),
        "weight": float(match["weight"]),
    }


def _metric(text: str, option: str) -> dict[str, Any]:
    """NAME:KIND[:BETTER[:MARGIN]], e.g. converted:binary or latency_ms:continuous:lower:20."""
    parts = text.split(":")
    if len(parts) < 2 or len(parts) > 4:
        raise fail(f"{option} {text!r}: expected NAME:KIND[:BETTER[:MARGIN]], like converted:binary", 2)
    metric: dict[str, Any] = {"name": parts[0], "kind": parts[1]}
    if len(parts) > 2:
        metric["better"] = parts[2]
    if len(parts) > 3:
        try:
            metric["margin"] = float(parts[3])
        except ValueError:
            raise fail(f"{option} {text!r}: the margin must be a number", 2) from None
    return metric


def _load(path: str) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise fail(f"--spec {path}: {exc}", 2) from None
    if not isinstance(loaded, dict):
        raise fail(f"--spec {path}: expected a mapping of experiment fields", 2)
    return loaded


@app.command("create")
@handle_errors
def create(
    name: str = typer.Argument(..., help="experiment name (a lower-case DNS label)"),
    endpoint: str | None = typer.Option(None, help="the endpoint whose traffic it splits"),
    variant: list[str] = typer.Option(
        [], "--variant", help="NAME=MODEL/VERSION:WEIGHT, repeated; the first is the control"
    ),
    primary: str | None = typer.Option(None, help="the deciding metric, NAME:KIND[:BETTER[:MARGIN]]"),
    guardrail: list[str] = typer.Option([], "--guardrail", help="a guardrail metric, same form, repeated"),
    unit: str = typer.Option("key", help="key (sticky per x-workbench-routing-key) or request"),
    covariate: bool = typer.Option(False, "--covariate", help="outcomes carry a pre-experiment covariate"),
    method: str = typer.Option("sequential", help="sequential (valid at every look) or fixed"),
    planned_units: int | None = typer.Option(None, help="fixed: units per variant"),
    min_units: int = typer.Option(100, help="no decision before every variant has this many outcomes"),
    alpha: float = typer.Option(0.05, help="false-positive rate"),
    spec_file: str | None = typer.Option(None, "--spec", help="a whole spec (YAML or JSON) instead"),
    start: bool = typer.Option(False, "--start", help="start it at once"),
    reason: str | None = typer.Option(None, "--reason", help="why, for the audit log"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Define an experiment (and with --start, route its variants at once)."""
    if spec_file is not None:
        spec = {"name": name, **_load(spec_file)}
    else:
        if endpoint is None or primary is None or len(variant) < 2:
            raise fail("give --endpoint, --primary and at least two --variant (or --spec FILE)", 2)
        spec = {
            "name": name,
            "endpoint": endpoint,
            "variants": [_variant(v) for v in variant],
            "unit": unit,
            "primary": _metric(primary, "--primary"),
            "guardrails": [_metric(g, "--guardrail") for g in guardrail],
            "covariate": covariate,
            "method": method,
            "planned_units": planned_units,
            "min_units": min_units,
            "alpha": alpha,
        }
    with Client() as client:
        record = client.create_experiment(spec, start=start, reason=reason)
    if as_json:
        print_json(record)
        return
    console.print(f"experiment [bold]{record.name}[/] on {record.endpoint}: {record.state.value}")


@app.command("list")
@handle_errors
def list_(
    endpoint: str | None = typer.Option(None, help="only this endpoint's"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Every experiment, with its state and last verdict."""
    with Client() as client:
        records = client.experiments(endpoint=endpoint)
    if as_json:
        print_json(records)
        return
    print_table(
        "Experiments",
        ["name", "endpoint", "state", "variants", "verdict"],
        [
            (
                r.name,
                r.endpoint,
                r.state.value,
                ", ".join(f"{v.name} v{v.version} {v.weight:g}%" for v in r.spec.variants),
                (r.decision or {}).get("verdict", ""),
            )
            for r in records
        ],
    )


def _number(value: float | None, form: str = ".4g") -> str:
    return "" if value is None else format(value, form)


def _interval(c: dict[str, Any]) -> str:
    low, high = c.get("lower"), c.get("upper")
    if low is None or high is None:
        return ""
    return f"[{low:+.4g}, {high:+.4g}]"


@app.command("status")
@handle_errors
def status(
    name: str = typer.Argument(..., help="experiment"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Units per variant and a look now: the verdict, its reason, and every comparison with its interval."""
    with Client() as client:
        detail = client.experiment(name)
    if as_json:
        print_json(detail)
        return
    experiment, decision = detail["experiment"], detail["decision"]
    console.print(
        f"experiment [bold]{name}[/] on {experiment['endpoint']}: [bold]{experiment['state']}[/]; "
        f"verdict [bold]{decision['verdict']}[/]: {decision['reason']}"
    )
    print_table("Units", ["variant", "assigned"], list(detail["assigned"].items()))
    missed = detail.get("unassigned_requests") or {}
    if any(missed.values()):
        console.print(
            f"[yellow]requests that assigned no unit[/]: {missed.get('without_key', 0)} without a routing key, "
            f"{missed.get('elsewhere', 0)} served by a version that is no variant"
        )
    rows = [
        (
            c["metric"],
            c["variant"],
            f"{c['n_control']}/{c['n_variant']}",
            _number(c["control_mean"]),
            _number(c["variant_mean"]),
            _number(c["estimate"], "+.4g"),
            _interval(c),
            _number(c["adjusted_p"], ".3g"),
            c.get("direction") or "",
        )
        for c in [*decision.get("primary", []), *decision.get("guardrails", [])]
    ]
    print_table(
        "Comparisons against the control (always-valid intervals)",
        ["metric", "variant", "n", "control", "variant", "difference", "interval", "adj. p", "shown"],
        rows,
    )


def _act(name: str, action: str, reason: str | None, as_json: bool) -> None:
    with Client() as client:
        record = client.experiment_action(name, action, reason=reason)
    if as_json:
        print_json(record)
        return
    verdict = (record.decision or {}).get("verdict")
    suffix = f" (verdict: {verdict})" if verdict and action == "conclude" else ""
    console.print(f"experiment [bold]{name}[/]: {record.state.value}{suffix}")


@app.command("start")
@handle_errors
def start(
    name: str = typer.Argument(..., help="experiment"),
    reason: str | None = typer.Option(None, "--reason", help="why, for the audit log"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Start (or resume) it: the endpoint routes the variants at their weights."""
    _act(name, "start", reason, as_json)


@app.command("pause")
@handle_errors
def pause(
    name: str = typer.Argument(..., help="experiment"),
    reason: str | None = typer.Option(None, "--reason", help="why, for the audit log"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Pause it: the endpoint's routes go back to what they were; outcomes still join."""
    _act(name, "pause", reason, as_json)


@app.command("resume")
@handle_errors
def resume(
    name: str = typer.Argument(..., help="experiment"),
    reason: str | None = typer.Option(None, "--reason", help="why, for the audit log"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Resume a paused experiment."""
    _act(name, "resume", reason, as_json)


@app.command("conclude")
@handle_errors
def conclude(
    name: str = typer.Argument(..., help="experiment"),
    reason: str | None = typer.Option(None, "--reason", help="why, for the audit log"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """End it with a last look's decision; the endpoint's routes go back to what they were."""
    _act(name, "conclude", reason, as_json)


@app.command("promote")
@handle_errors
def promote(
    name: str = typer.Argument(..., help="experiment"),
    strategy: str = typer.Option("canary", help="canary or blue_green"),
    variant: str | None = typer.Option(None, help="promote this variant rather than the winner"),
    reason: str | None = typer.Option(None, "--reason", help="why, for the audit log"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Conclude it and roll the winner out through a canary or a blue-green rollout."""
    with Client() as client:
        answer = client.promote_experiment(name, strategy=strategy, variant=variant, reason=reason)
    if as_json:
        print_json(answer)
        return
    rollout = answer["rollout"]
    console.print(
        f"experiment [bold]{name}[/] concluded; {rollout['strategy']} rollout [bold]{rollout['id']}[/] of "
        f"v{rollout['candidate_version']} on {rollout['endpoint']}: {rollout['phase']}"
    )


@app.command("outcomes")
@handle_errors
def outcomes(
    name: str = typer.Argument(..., help="experiment"),
    source: str = typer.Argument(
        ...,
        help="a JSON (list) or JSON-lines file of {unit|request_id, metric, value[, covariate]}; - for stdin",
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Feed outcomes; a unit's outcome for a metric is joined once however often it is sent."""
    import sys

    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        raise fail(f"{source}: {exc}", 2) from None
    try:
        stripped = text.strip()
        items = (
            json.loads(stripped)
            if stripped.startswith("[")
            else [json.loads(line) for line in stripped.splitlines() if line.strip()]
        )
    except json.JSONDecodeError as exc:
        raise fail(f"{source}: not JSON or JSON lines: {exc}", 2) from None
    if not items:
        raise fail(f"{source}: no outcomes", 2)
    with Client() as client:
        answer = client.outcomes(name, items)
    if as_json:
        print_json(answer)
        return
    console.print(
        f"{answer['joined']} joined, {answer['repeated']} already known, "
        f"{answer['unassigned']} for units the experiment never assigned"
    )


@app.command("plan")
@handle_errors
def plan(
    kind: str = typer.Option("binary", help="binary (a rate) or continuous"),
    baseline: float = typer.Option(..., help="the control's rate (binary) or mean (continuous)"),
    effect: float = typer.Option(..., help="the smallest difference worth finding (absolute, e.g. 0.02)"),
    std: float | None = typer.Option(None, help="continuous: the metric's standard deviation"),
    alpha: float = typer.Option(0.05, help="false-positive rate"),
    power: float = typer.Option(0.8, help="chance of finding the effect when it is there"),
    variants: int = typer.Option(2, min=2, help="variants including the control (units multiply)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Units needed per variant: for a planned (fixed-horizon) test, and for the sequential test that may
    be looked at every minute (it needs more, the price of looking)."""
    from workbench.experiments.statistics import sample_size, sequential_sample_size

    if kind not in ("binary", "continuous"):
        raise fail(f"--kind must be binary or continuous, got {kind!r}", 2)
    if not 0 < alpha < 0.5 or not 0.5 <= power < 1:
        raise fail("--alpha must be in (0, 0.5) and --power in [0.5, 1)", 2)
    try:
        arguments: dict[str, Any] = {
            "baseline": baseline,
            "effect": effect,
            "alpha": alpha,
            "power": power,
            "std": std,
        }
        fixed = sample_size(kind, **arguments)  # type: ignore[arg-type]
        sequential = sequential_sample_size(kind, **arguments)  # type: ignore[arg-type]
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    answer = {
        "per_variant": {"fixed": fixed, "sequential": sequential},
        "total": {"fixed": fixed * variants, "sequential": sequential * variants},
    }
    if as_json:
        print_json(answer)
        return
    print_table(
        f"Units to find {effect:+g} on a {kind} metric (baseline {baseline:g}) at power {power:g}, alpha {alpha:g}",
        ["test", "per variant", f"all {variants} variants"],
        [
            ("fixed horizon (look once, at the end)", f"{fixed:,}", f"{fixed * variants:,}"),
            ("sequential (look any time)", f"{sequential:,}", f"{sequential * variants:,}"),
        ],
    )
