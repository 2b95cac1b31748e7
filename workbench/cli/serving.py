"""``workbench deploy`` and ``workbench undeploy``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml
from pydantic import ValidationError as PydanticValidationError

from workbench.cli._output import console, fail, handle_errors, print_json
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
    torchscript: bool | None = typer.Option(
        None,
        "--torchscript/--eager",
        help="serve a torch model as its verified TorchScript trace (no GIL wait between layers; Python side "
        "effects in forward() are dropped), or as the module itself",
    ),
    by: str | None = typer.Option(
        None, "--by", help="requests carry this entity id (e.g. customer_id); the replicas fetch its features"
    ),
    feature_service: str | None = typer.Option(None, "--feature-service", help="with --by: what to fetch"),
    feature: list[str] = typer.Option([], "--feature", help="with --by: a view:feature to fetch (repeat)"),
    lookup: Path | None = typer.Option(
        None,
        "--lookup",
        help="a feature lookup as YAML (entity, service or features, inputs, missing, defaults)",
    ),
    reason: str | None = typer.Option(None, "--reason", help="why, for the audit log"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Serve a model version on an endpoint with all its traffic; returns when its replicas are ready."""
    options: dict[str, Any] = {
        k: v
        for k, v in {
            "replicas": replicas,
            "device": device,
            "max_batch_size": max_batch_size,
            "max_wait_ms": max_wait_ms,
            "payload_limit_bytes": payload_limit,
            "threads": threads,
            "torchscript": torchscript,
        }.items()
        if v is not None
    }
    features = _lookup(by, feature_service, feature, lookup)
    if features is not None:
        options["features"] = features
    with Client() as client, console.status(f"deploying {model} to {endpoint}..."):
        client.deploy(endpoint, model, reason=reason, **options)
        status = client.endpoint_status(endpoint)
    if as_json:
        print_json(status)
        return
    route = status["endpoint"]["spec"]["routes"][0]
    console.print(f"[bold]{endpoint}[/] serves models:/{route['model']}/{route['version']}")
    spec_features = status["endpoint"]["spec"].get("features")
    if spec_features:
        fetched = spec_features["service"] or ", ".join(spec_features["features"])
        console.print(
            f"  called by {spec_features['entity']}; features: {fetched} (missing: {spec_features['missing']})"
        )
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


def _lookup(
    by: str | None, service: str | None, features: list[str], path: Path | None
) -> dict[str, Any] | None:
    """The deploy's feature lookup from the options, checked here so a mistake costs no round trip."""
    from workbench.specs.features import FeatureLookup

    if path is not None:
        if by or service or features:
            raise fail("--lookup takes the whole lookup: leave out --by, --feature-service and --feature", 2)
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise fail(f"cannot read the lookup {path}: {exc}", 2) from None
    elif by is None:
        if service or features:
            raise fail("--feature-service and --feature need --by ENTITY: the id the requests carry", 2)
        return None
    else:
        data = {"entity": by, "service": service, "features": features}
    try:
        return FeatureLookup.model_validate(data).model_dump(mode="json")
    except PydanticValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'lookup'}: {e['msg']}" for e in exc.errors())
        raise fail(f"invalid feature lookup: {problems}", 2) from None
