"""``workbench monitor ...``, ``workbench alerts``, ``workbench feedback``."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any

import typer
import yaml

from workbench.cli._output import console, fail, handle_errors, print_json, print_table
from workbench.client import Client
from workbench.specs.monitor import SCALAR_SERIES

app = typer.Typer(
    help="Monitors: live series, drift and performance; alert rules that act.", no_args_is_help=True
)
rules_app = typer.Typer(help="Alert rules on a monitor's series.", no_args_is_help=True)


def _load(path: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise fail(f"{path}: {exc}", 2) from None
    if not isinstance(data, dict):
        raise fail(f"{path}: expected a mapping of fields", 2)
    return data


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@app.command("create")
@handle_errors
def create(
    name: str = typer.Argument(..., help="monitor name"),
    endpoint: str = typer.Argument(..., help="endpoint to watch"),
    window: float = typer.Option(300.0, "--window", help="sliding window of every series, seconds"),
    every: float = typer.Option(10.0, "--every", help="scrape interval, seconds"),
    columns: str | None = typer.Option(
        None, help="comma-separated feature columns (default: the signature's)"
    ),
    categorical: str | None = typer.Option(None, help="comma-separated categorical columns"),
    min_rows: int = typer.Option(500, help="rows in the window before drift is judged"),
    report_every: float | None = typer.Option(None, help="archive an Evidently report this often, seconds"),
    spec_file: str | None = typer.Option(
        None, "--spec", help="a whole MonitorSpec (YAML/JSON); wins over options"
    ),
    reason: str | None = typer.Option(None, "--reason"),
) -> None:
    """Watch an endpoint against the reference dataset of the version serving it."""
    if spec_file is not None:
        spec: dict[str, Any] = {"name": name, "endpoint": endpoint, **_load(spec_file)}
    else:
        drift: dict[str, Any] = {"min_rows": min_rows}
        if columns:
            drift["columns"] = [c.strip() for c in columns.split(",") if c.strip()]
        if categorical:
            drift["categorical"] = [c.strip() for c in categorical.split(",") if c.strip()]
        spec = {"name": name, "endpoint": endpoint, "window_s": window, "every_s": every, "drift": drift}
        if report_every is not None:
            spec["reports"] = {"every_s": report_every}
    with Client() as client, console.status(f"profiling the reference of {endpoint}..."):
        record = client.create_monitor(spec, reason=reason)
    console.print(
        f"monitor [bold]{record.spec.name}[/] watches {record.spec.endpoint}: window {record.spec.window_s:g}s, "
        f"every {record.spec.every_s:g}s"
    )


@app.command("list")
@handle_errors
def list_monitors(as_json: bool = typer.Option(False, "--json")) -> None:
    """Monitors and their endpoints."""
    with Client() as client:
        monitors = client.monitors()
    if as_json:
        print_json(monitors)
        return
    print_table(
        "Monitors",
        ["monitor", "endpoint", "window", "every", "reports"],
        [
            (
                m.spec.name,
                m.spec.endpoint,
                f"{m.spec.window_s:g}s",
                f"{m.spec.every_s:g}s",
                f"every {m.spec.reports.every_s:g}s" if m.spec.reports else "on demand",
            )
            for m in monitors
        ],
    )


def _show(detail: dict[str, Any]) -> None:
    values = detail["values"]
    reference = detail["reference"]
    console.print(
        f"[bold]{detail['monitor']['spec']['name']}[/] on {detail['monitor']['spec']['endpoint']}: "
        f"reference models:/{reference['model']}/{reference['version']} ({reference['rows']} rows, "
        f"task {reference['task']}), window rows {values.get('rows')}"
    )
    print_table(
        "Series (over the window)", ["series", "value"], [(s, _fmt(values.get(s))) for s in SCALAR_SERIES]
    )
    drift = values.get("drift")
    if drift:
        print_table(
            f"Drift: {100 * drift['share_drifted']:.0f}% of columns drifted"
            + (" (dataset drift)" if drift["dataset_drifted"] else ""),
            ["column", "method", "score", "threshold", "drifted"],
            [
                (
                    c["column"],
                    c["method"],
                    _fmt(c["score"]),
                    _fmt(c["threshold"]),
                    "yes" if c["drifted"] else "",
                )
                for c in drift["columns"]
            ],
        )
    if detail["rules"]:
        print_table(
            "Alert rules",
            ["rule", "condition", "for", "severity", "state", "value"],
            [
                (
                    r["spec"]["name"],
                    f"{r['spec']['series']} {r['spec']['op']} {r['spec']['threshold']:g}",
                    f"{r['spec']['for_s']:g}s",
                    r["spec"]["severity"],
                    r["state"].get("state"),
                    _fmt(r["state"].get("value")),
                )
                for r in detail["rules"]
            ],
        )


@app.command("show")
@handle_errors
def show(
    name: str,
    watch: bool = typer.Option(False, "--watch", "-w", help="refresh every scrape interval until Ctrl-C"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """A monitor now: series, per-column drift, performance, rules and their states."""
    with Client() as client:
        while True:
            detail = client.monitor(name)
            if as_json:
                print_json(detail)
                return
            if watch:
                console.clear()
            _show(detail)
            if not watch:
                return
            time.sleep(max(float(detail["monitor"]["spec"]["every_s"]), 1.0))


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


def _duration(raw: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``7d`` → seconds."""
    text = raw.strip().lower()
    factor = _UNITS.get(text[-1:])
    try:
        value = float(text[:-1] if factor is not None else text) * (factor or 1.0)
    except ValueError:
        raise fail(f"not a duration: {raw!r} (use 90, 90s, 15m, 2h or 7d)", 2) from None
    if not (math.isfinite(value) and value > 0):
        raise fail(f"not a positive duration: {raw!r}", 2)
    return value


@app.command("history")
@handle_errors
def history(
    name: str,
    series: list[str] = typer.Option(
        [], "--series", "-s", help="series (repeat); default: requests/s, error rate, p95, drift share"
    ),
    key: list[str] = typer.Option(
        [], "--key", "-k", help="'all', a version, a column (drift) or a rule (alert_state)"
    ),
    since: str = typer.Option("1h", "--since", help="how far back: 90s, 15m, 2h, 7d"),
    step: float | None = typer.Option(None, "--step", help="seconds per row (about 60 rows by default)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """A monitor's persisted history: per step, the mean (and max) of each series."""
    back = _duration(since)
    wanted = series or ["requests_per_s", "error_rate", "latency_p95_ms", "drift_share"]
    with Client() as client:
        result = client.monitor_history(
            name,
            series=wanted,
            key=key or (None if series else ["all"]),
            start=time.time() - back,
            step_s=step if step is not None else max(1.0, back / 60),
        )
    if as_json:
        print_json(result)
        return
    found = result["monitors"].get(name, {}).get("series", {})
    columns = [(s, k) for s in wanted for k in sorted(found.get(s, {}))]
    if not columns:
        console.print(f"no history for {name} in the last {since}")
        return
    rows: dict[float, dict[tuple[str, str], str]] = {}
    for s, k in columns:
        points = found[s][k]
        for ts, mean, high in zip(points["ts"], points["mean"], points["max"], strict=True):
            cell = _fmt(mean) if high == mean else f"{_fmt(mean)} ({_fmt(high)})"
            rows.setdefault(ts, {})[(s, k)] = cell
    print_table(
        f"{name}: mean (max) per {result['step_s']:g} s",
        ["time", *(s if k == "all" else f"{s}[{k}]" for s, k in columns)],
        [
            (time.strftime("%H:%M:%S", time.localtime(ts)), *(cells.get(c, "-") for c in columns))
            for ts, cells in sorted(rows.items())
        ],
    )


@app.command("delete")
@handle_errors
def delete(name: str) -> None:
    """Stop watching (its alert rules go with it)."""
    with Client() as client:
        client.delete_monitor(name)
    console.print(f"monitor {name} deleted")


@app.command("report")
@handle_errors
def report(
    name: str,
    window: float | None = typer.Option(
        None, "--window", help="seconds back (default: the monitor's window)"
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run a full Evidently drift report of the window now, and archive it (HTML and JSON)."""
    with Client() as client, console.status("running the Evidently report..."):
        record = client.drift_report(name, window_s=window)
    if as_json:
        print_json(record)
        return
    summary = record.summary
    console.print(
        f"report {record.id}: {summary['rows']} rows, {100 * summary['share_drifted']:.0f}% of columns drifted "
        f"(live: {100 * summary['live_share_drifted']:.0f}%), Evidently took {summary['evidently_seconds']}s"
    )
    console.print(f"HTML: {record.html_path}\nJSON: {record.json_path}")


@rules_app.command("create")
@handle_errors
def create_rule(
    name: str = typer.Argument(..., help="rule name"),
    monitor: str = typer.Argument(..., help="the monitor whose series it watches"),
    condition: str = typer.Argument(..., help="'SERIES OP THRESHOLD', e.g. 'error_rate > 0.05'"),
    for_s: float = typer.Option(0.0, "--for", help="seconds the condition must hold"),
    severity: str = typer.Option("warning", help="info, warning or critical"),
    cooldown: float = typer.Option(300.0, help="quiet seconds after a firing"),
    rollback: bool = typer.Option(False, "--rollback", help="roll the endpoint back when it fires"),
    webhook: str | None = typer.Option(None, help="POST the alert to this URL"),
    runbook: str | None = typer.Option(None, "--runbook", help="start this runbook when it fires"),
    parameter: list[str] = typer.Option(
        [], "--parameter", "-p", help="the runbook's key=value parameters (repeatable)"
    ),
    reason: str | None = typer.Option(None, "--reason"),
) -> None:
    """An alert rule; it always notifies (log, and the webhook if given), may roll back or run a runbook."""
    parts = condition.split()
    if len(parts) != 3:
        raise fail(f"condition {condition!r}: expected 'SERIES OP THRESHOLD', e.g. 'error_rate > 0.05'", 2)
    series, op, raw = parts
    try:
        threshold = float(raw)
    except ValueError:
        raise fail(f"condition {condition!r}: threshold {raw!r} is not a number", 2) from None
    actions: list[dict[str, Any]] = [{"kind": "notify", "webhook": webhook}]
    if rollback:
        actions.append({"kind": "rollback"})
    if parameter and runbook is None:
        raise fail("--parameter needs --runbook", 2)
    if runbook is not None:
        from workbench.cli.runbooks import parse_parameters

        actions.append({"kind": "runbook", "runbook": runbook, "parameters": parse_parameters(parameter)})
    spec = {
        "name": name,
        "monitor": monitor,
        "series": series,
        "op": op,
        "threshold": threshold,
        "for_s": for_s,
        "severity": severity,
        "cooldown_s": cooldown,
        "actions": actions,
    }
    with Client() as client:
        record = client.create_alert_rule(spec, reason=reason)
    console.print(f"alert rule [bold]{record.spec.name}[/]: {series} {op} {threshold:g} on {monitor}")


@rules_app.command("list")
@handle_errors
def list_rules(
    monitor: str | None = typer.Option(None), as_json: bool = typer.Option(False, "--json")
) -> None:
    with Client() as client:
        rules = client.alert_rules(monitor=monitor)
    if as_json:
        print_json(rules)
        return
    print_table(
        "Alert rules",
        ["rule", "monitor", "condition", "for", "severity", "actions", "state"],
        [
            (
                r.spec.name,
                r.spec.monitor,
                f"{r.spec.series} {r.spec.op} {r.spec.threshold:g}",
                f"{r.spec.for_s:g}s",
                r.spec.severity.value,
                ", ".join(a.kind for a in r.spec.actions),
                r.state.get("state"),
            )
            for r in rules
        ],
    )


@rules_app.command("delete")
@handle_errors
def delete_rule(name: str) -> None:
    with Client() as client:
        client.delete_alert_rule(name)
    console.print(f"alert rule {name} deleted")


app.add_typer(rules_app, name="rule")


@handle_errors
def alerts(
    monitor: str | None = typer.Option(None),
    rule: str | None = typer.Option(None),
    limit: int = typer.Option(50, "-n"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Alert events, newest first: firing, resolved, and what each action did."""
    with Client() as client:
        events = client.alerts(monitor=monitor, rule=rule, limit=limit)
    if as_json:
        print_json(events)
        return
    print_table(
        "Alerts",
        ["when (UTC)", "rule", "endpoint", "event", "severity", "value", "message"],
        [
            (e.at.isoformat()[:19], e.rule, e.endpoint, e.kind, e.severity, _fmt(e.value), e.message)
            for e in events
        ],
    )


@handle_errors
def feedback(
    endpoint: str = typer.Argument(..., help="the endpoint that made the predictions"),
    labels: list[str] = typer.Argument(None, help="REQUEST_ID=LABEL pairs"),
    file: str | None = typer.Option(None, "--file", help="a CSV with request_id,label columns"),
) -> None:
    """Post ground truth for earlier predictions by request id (all accepted, or none)."""
    pairs: list[tuple[str, float]] = []
    try:
        for item in labels or []:
            request_id, _, value = item.partition("=")
            if not request_id or not value:
                raise fail(f"{item!r}: expected REQUEST_ID=LABEL", 2)
            pairs.append((request_id, float(value)))
        if file is not None:
            with Path(file).open(newline="") as handle:
                for row in csv.DictReader(handle):
                    pairs.append((row["request_id"], float(row["label"])))
    except (OSError, KeyError, ValueError) as exc:
        raise fail(f"cannot read the labels: {exc}", 2) from None
    if not pairs:
        raise fail("no labels given: pass REQUEST_ID=LABEL pairs or --file", 2)
    with Client() as client:
        result = client.feedback(endpoint, pairs)
    console.print(f"{result['accepted']} label(s) recorded for {endpoint}")
