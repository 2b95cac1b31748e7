"""``workbench export ...``: files for Prometheus (and, next, Grafana and containers) from live state."""

from __future__ import annotations

import os
from pathlib import Path

import typer
import yaml

from workbench.cli._output import console, fail, handle_errors
from workbench.client import Client
from workbench.errors import PermissionDeniedError, ValidationError
from workbench.export import prometheus
from workbench.export.targets import targets_file
from workbench.settings import get_settings

app = typer.Typer(help="Write files for the tools you already run.", no_args_is_help=True)


def output_dir(raw: str, roots: tuple[Path, ...]) -> Path:
    """The directory to write into, under an allowed root (``WORKBENCH_ALLOWED_ROOTS``), checked before
    anything is asked of the API or written; it may not exist yet, its nearest existing parent must."""
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    resolved = path.resolve()
    allowed = [root.resolve() for root in roots]
    if not any(resolved == root or resolved.is_relative_to(root) for root in allowed):
        raise PermissionDeniedError(
            f"--out {raw!r} is outside the allowed roots ({', '.join(map(str, allowed)) or 'none'})",
            field="out",
        )
    if resolved.exists() and not resolved.is_dir():
        raise ValidationError(f"--out {raw!r} is not a directory", field="out")
    return resolved


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


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
    _write(rules_file, yaml.safe_dump(prometheus.alerting_rules(rules), sort_keys=False))
    _write(config_file, yaml.safe_dump(prometheus.scrape_config(discovered, rules_file), sort_keys=False))
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
    _write(target, json.dumps(grafana.dashboard(), indent=2) + "\n")
    console.print(f"wrote {target}: import it in Grafana (Dashboards > New > Import)")
