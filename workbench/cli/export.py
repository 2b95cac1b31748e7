"""``workbench export ...``: files for Prometheus (and, next, Grafana and containers) from live state."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from workbench.cli._output import console, fail, handle_errors
from workbench.client import Client
from workbench.errors import ValidationError
from workbench.export import prometheus
from workbench.export.targets import targets_file
from workbench.paths import require_within, write_atomic
from workbench.settings import get_settings

app = typer.Typer(help="Write files for the tools you already run.", no_args_is_help=True)


def output_dir(raw: str, roots: tuple[Path, ...]) -> Path:
    """The directory to write into, under an allowed root (``WORKBENCH_ALLOWED_ROOTS``), checked before
    anything is asked of the API or written; it may not exist yet."""
    path = Path(raw).expanduser()
    resolved = require_within(
        path if path.is_absolute() else Path.cwd() / path, roots, field="--out", shown=raw
    )
    if resolved.exists() and not resolved.is_dir():
        raise ValidationError(f"--out {raw!r} is not a directory", field="out")
    return resolved


@app.command("prometheus")
@handle_errors
def export_prometheus(
    out: str = typer.Option(..., "--out", help="directory for prometheus.yml and workbench-rules.yml"),
) -> None:
    """A scrape config (file-based discovery of the control plane and the router, which serves every
    replica's series) and alerting rules equivalent to the workbench's alert rules."""
    settings = get_settings()
    directory = output_dir(out, settings.allowed_roots)
    discovered = targets_file(settings.home)
    with Client() as client:
        rules = [record.spec for record in client.alert_rules()]
    if not discovered.is_file():
        raise fail(f"{discovered} does not exist yet: start the control plane (workbench up) first", 1)
    directory.mkdir(parents=True, exist_ok=True)
    rules_file = directory / "workbench-rules.yml"
    config_file = directory / "prometheus.yml"
    write_atomic(rules_file, yaml.safe_dump(prometheus.alerting_rules(rules), sort_keys=False))
    write_atomic(
        config_file, yaml.safe_dump(prometheus.scrape_config(discovered, rules_file), sort_keys=False)
    )
    console.print(f"wrote {config_file} (targets from {discovered})")
    console.print(f"wrote {rules_file} ({len(rules)} alerting rules)")
    console.print(f"run: prometheus --config.file={config_file}")


@app.command("grafana")
@handle_errors
def export_grafana(
    out: str = typer.Option(..., "--out", help="directory for the dashboard's JSON"),
) -> None:
    """The endpoints dashboard (requests, errors and latency by version, batch sizes, queue and forward
    time per replica, drift, alert states), to import into Grafana with a Prometheus data source."""
    import json

    from workbench.export import grafana

    directory = output_dir(out, get_settings().allowed_roots)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / grafana.FILE_NAME
    write_atomic(target, json.dumps(grafana.dashboard(), indent=2) + "\n")
    console.print(f"wrote {target}: import it in Grafana (Dashboards > New > Import)")
