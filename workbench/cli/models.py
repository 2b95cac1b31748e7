"""``workbench models list|show|register|alias``."""

from __future__ import annotations

from pathlib import Path

import typer

from workbench.cli._output import console, fail, handle_errors, print_json, print_table
from workbench.client import Client
from workbench.registry.types import ModelVersionInfo

app = typer.Typer(help="Registered models, versions and aliases.", no_args_is_help=True)


def _client() -> Client:
    return Client()


def _fmt_metrics(metrics: dict[str, float], keys: tuple[str, ...] = ("accuracy", "auc")) -> str:
    shown = [f"{k}={metrics[k]:.3f}" for k in keys if k in metrics]
    return " ".join(shown) or ", ".join(f"{k}={v:.3g}" for k, v in list(metrics.items())[:3])


@app.command("list")
@handle_errors
def list_models(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Every registered model with its latest version and aliases."""
    with _client() as client:
        models = client.list_models()
    if as_json:
        print_json(models)
        return
    print_table(
        "Registered models",
        ["model", "versions", "latest", "aliases", "updated"],
        [
            (
                m.name,
                m.version_count,
                m.latest_version,
                ", ".join(f"{a}→v{v}" for a, v in sorted(m.aliases.items())),
                m.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
            for m in models
        ],
    )


@app.command("show")
@handle_errors
def show(
    name: str = typer.Argument(..., help="model name, or models:/NAME@ALIAS / models:/NAME/VERSION"),
    version: int | None = typer.Option(None, "--version", "-v", help="show one version in full"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """A model's versions, or one version's signature, lineage, metrics and reference data."""
    with _client() as client:
        if name.startswith("models:/") or "@" in name:
            detail: ModelVersionInfo | None = client.resolve(name)
        elif version is not None:
            detail = client.get_version(name, version)
        else:
            detail = None
            versions = client.list_versions(name)
    if detail is not None:
        if as_json:
            print_json(detail)
        else:
            _print_version(detail)
        return
    if as_json:
        print_json(versions)
        return
    print_table(
        f"Model {name}",
        ["version", "aliases", "metrics", "parent", "data", "reference", "created"],
        [
            (
                v.version,
                ", ".join(v.aliases),
                _fmt_metrics(v.metrics),
                v.lineage.parent_version,
                f"{v.lineage.data_rows} rows" if v.lineage.data_rows is not None else "",
                f"{v.reference.rows} rows" if v.reference else "",
                v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
            for v in versions
        ],
    )


def _print_version(v: ModelVersionInfo) -> None:
    console.print(f"[bold]{v.uri}[/]  aliases: {', '.join(v.aliases) or '-'}  status: {v.status}")
    console.print(f"source: {v.source}")
    console.print(f"flavors: {', '.join(v.flavors)}")
    lineage = v.lineage
    console.print(
        f"lineage: run {lineage.run_id}, data {lineage.data_digest or '-'} ({lineage.data_rows} rows), "
        f"code {lineage.code_version or '-'}, parent v{lineage.parent_version or '-'}"
    )
    if v.reference:
        console.print(
            f"reference: {v.reference.rows} rows, {len(v.reference.columns)} columns, {v.reference.digest}"
        )
    if v.metrics:
        print_table("metrics", ["metric", "value"], sorted((k, f"{m:.4g}") for k, m in v.metrics.items()))
    if v.signature and isinstance(v.signature.get("inputs"), list):
        print_table(
            "signature inputs",
            ["name", "type"],
            [(i.get("name", "-"), i.get("type")) for i in v.signature["inputs"]],
        )


@app.command("register")
@handle_errors
def register(
    name: str = typer.Argument(..., help="registered model name"),
    path: Path | None = typer.Option(None, "--path", help="an MLflow model directory"),
    run_id: str | None = typer.Option(None, "--run-id", help="an MLflow run that logged the model"),
    artifact_path: str = typer.Option("model", help="where the run logged the model"),
    reference: Path | None = typer.Option(None, "--reference", help="reference dataset (.parquet or .csv)"),
    target: str | None = typer.Option(None, "--target", help="label column in the reference dataset"),
    alias: list[str] = typer.Option([], "--alias", "-a", help="alias to point at the new version"),
    parent_version: int | None = typer.Option(None, "--parent-version", help="version this one derives from"),
    description: str | None = typer.Option(None, "--description"),
    reason: str | None = typer.Option(None, "--reason", help="why, for the audit log"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Register a new version from an MLflow model directory or an MLflow run."""
    if (path is None) == (run_id is None):
        raise fail("give exactly one of --path or --run-id", code=2)
    fields: dict[str, object] = {"aliases": alias, "description": description, "reason": reason}
    if reference is not None:
        fields["reference"] = {"path": str(reference.expanduser().absolute()), "target": target}
    if parent_version is not None:
        fields["lineage"] = {"parent_version": parent_version}
    with _client() as client, console.status(f"registering {name}..."):
        if path is not None:
            info = client.register_from_path(name, path, **fields)
        else:
            assert run_id is not None
            info = client.register_from_run(name, run_id, artifact_path=artifact_path, **fields)
    if as_json:
        print_json(info)
    else:
        console.print(f"registered [bold]{info.uri}[/] aliases: {', '.join(info.aliases) or '-'}")


@app.command("alias")
@handle_errors
def alias(
    name: str = typer.Argument(..., help="registered model name"),
    alias_name: str = typer.Argument(..., metavar="ALIAS", help="e.g. champion, challenger"),
    version: int | None = typer.Argument(None, help="version to point the alias at"),
    delete: bool = typer.Option(False, "--delete", help="remove the alias"),
    reason: str | None = typer.Option(None, "--reason", help="why, for the audit log"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Point an alias at a version (or --delete it); the move is audited."""
    if delete == (version is not None):
        raise fail("give a VERSION to set the alias, or --delete to remove it", code=2)
    with _client() as client:
        if delete:
            previous = client.delete_alias(name, alias_name, reason=reason)
            if as_json:
                print_json({"model": name, "alias": alias_name, "previous_version": previous})
            else:
                console.print(f"deleted models:/{name}@{alias_name} (was v{previous})")
            return
        assert version is not None
        info = client.set_alias(name, alias_name, version, reason=reason)
    if as_json:
        print_json(info)
    else:
        console.print(f"models:/{name}@{alias_name} → v{info.version}")
