"""The ``workbench`` command line: a thin shell over ``workbench.Client``."""

from __future__ import annotations

import typer

from workbench._version import __version__
from workbench.cli import audit as audit_cmd
from workbench.cli import demo as demo_cmd
from workbench.cli import demo_experiment as demo_experiment_cmd
from workbench.cli import endpoints, experiments, features, models, monitoring, rollouts, serving, system
from workbench.cli import export as export_cmd
from workbench.cli import optimize as optimize_cmd
from workbench.cli import runbooks as runbooks_cmd

app = typer.Typer(
    name="workbench",
    help="Workbench: deploy, watch and roll back ML models from the registry to live endpoints.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("up")(system.up)
app.command("dashboard")(system.dashboard)
app.command("status")(system.status)
app.command("audit")(audit_cmd.audit)
app.command("demo")(demo_cmd.demo)
app.command("demo-traffic")(demo_cmd.demo_traffic)
app.command("demo-experiment")(demo_experiment_cmd.demo_experiment)
app.command("deploy")(serving.deploy)
app.command("undeploy")(serving.undeploy)
app.command("rollback")(serving.rollback)
app.command("optimize")(optimize_cmd.optimize)
app.command("variants")(optimize_cmd.variants)
app.add_typer(models.app, name="models")
app.add_typer(endpoints.app, name="endpoints")
app.add_typer(rollouts.app, name="rollout")
app.add_typer(experiments.app, name="experiment")
app.add_typer(features.app, name="features")
app.add_typer(monitoring.app, name="monitor")
app.add_typer(runbooks_cmd.app, name="runbook")
app.add_typer(export_cmd.app, name="export")
app.command("alerts")(monitoring.alerts)
app.command("feedback")(monitoring.feedback)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"workbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version"
    ),
) -> None:
    """Workbench command line."""


def main() -> None:
    app()
