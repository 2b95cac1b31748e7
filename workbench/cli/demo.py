"""``workbench demo``: the whole product on the embedded default, from nothing, in one command."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

from workbench.cli._output import console, fail, handle_errors, print_table
from workbench.client import Client
from workbench.launcher import ControlPlaneProcess, is_healthy
from workbench.settings import get_settings, http_url


@handle_errors
def demo(
    serve: bool = typer.Option(True, "--serve/--no-serve", help="keep the control plane running afterwards"),
    force: bool = typer.Option(False, "--force", help="register new demo versions even if some exist"),
    rows: int = typer.Option(24_000, "--rows", min=1000, max=1_000_000, help="rows of generated data"),
    deploy: bool = typer.Option(
        True, "--deploy/--no-deploy", help="serve the champion on the 'churn' endpoint"
    ),
    canaries: bool = typer.Option(
        True,
        "--canaries/--no-canaries",
        help="under generated traffic, canary v2 (promoted) and the bad v3 (rolled back)",
    ),
    features: bool = typer.Option(
        True,
        "--features/--no-features",
        help="customers' features in the feature store, and the champion on 'churn-by-id' (called by id)",
    ),
    optimize: bool = typer.Option(
        True,
        "--optimize/--no-optimize",
        help="after the canaries: ONNX, int8 and distilled variants, measured and gated; canary the ONNX one",
    ),
) -> None:
    """Train and register the demo models, serve the champion, and run two canaries under traffic."""
    from workbench.demo.world import (
        DEMO_ENDPOINT,
        DEMO_MODEL,
        DEMO_STEPS,
        ensure_demo_endpoint,
        ensure_demo_features,
        ensure_demo_monitoring,
        existing_demo_versions,
        register_demo,
    )

    settings = get_settings()
    # A SIGTERM must stop the control plane this command started, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    owned: ControlPlaneProcess | None = None
    if not is_healthy(settings.api_url):
        console.print(f"starting the control plane at {settings.api_url} (home {settings.home})")
        owned = ControlPlaneProcess(
            settings.api_url, os.environ, settings.home / "logs" / "control-plane.log"
        ).start()
    try:
        with Client(settings=settings) as client:
            existing = existing_demo_versions(client)
            if existing and not force:
                console.print(
                    f"demo models already registered ({DEMO_MODEL} v{', v'.join(str(v.version) for v in existing)}); "
                    "use --force to register new ones"
                )
                versions = existing[::-1]
            else:
                with Progress(
                    SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), console=console
                ) as progress:
                    task = progress.add_task("building the demo world", total=DEMO_STEPS)

                    announced: list[str] = []

                    def step(message: str) -> None:
                        # A step is done when the next one is announced.
                        progress.update(task, completed=len(announced), description=message)
                        announced.append(message)

                    versions = register_demo(client, rows=rows, on_step=step)
                    progress.update(task, completed=DEMO_STEPS, description="done")
                for info in versions:
                    console.print(f"registered {info.uri} {', '.join(info.aliases)}")
            fresh = not existing or force
            endpoint = None
            if deploy:
                with console.status(f"deploying {DEMO_MODEL}@champion to the endpoint '{DEMO_ENDPOINT}'"):
                    endpoint = ensure_demo_endpoint(client)
                if canaries and fresh and endpoint["router_url"]:
                    _run_demo_canaries(
                        client, endpoint["router_url"], [v.version for v in versions], optimize=optimize
                    )
                    endpoint = client.endpoint_status(DEMO_ENDPOINT)
                with console.status("watching the endpoint: monitor and alert rules"):
                    rules = ensure_demo_monitoring(client)
                console.print(f"monitor '{DEMO_ENDPOINT}' with alert rules {', '.join(rules)}")
                if features:
                    with console.status("customers' features: feast apply, materialize, serve 'churn-by-id'"):
                        by_id = ensure_demo_features(client)
                    if by_id["urls"]["mlflow"]:
                        console.print(
                            f"by id:         {by_id['urls']['mlflow']}  (send a customer_id: features from Feast)"
                        )
            versions = [client.get_version(DEMO_MODEL, v.version) for v in versions]
        print_table(
            f"{DEMO_MODEL}",
            ["version", "aliases", "accuracy", "AUC", "parameters", "reference rows", "data digest"],
            [
                (
                    v.version,
                    ", ".join(v.aliases),
                    f"{v.metrics.get('accuracy', float('nan')):.3f}",
                    f"{v.metrics.get('auc', float('nan')):.3f}",
                    v.params.get("parameter_count", ""),
                    v.reference.rows if v.reference else "",
                    (v.lineage.data_digest or "")[:19],
                )
                for v in versions
            ],
        )
        console.print(
            f"control plane: [bold]{settings.api_url}[/]  (OpenAPI: {settings.api_url}/api/v1/docs)"
        )
        console.print(f"API token:     {settings.token_file}")
        dashboards = http_url(settings.host, settings.dashboard_port)
        if settings.dashboard and _dashboards_up(dashboards, wait_s=30.0 if owned is not None else 1.0):
            console.print(
                f"dashboards:    [bold]{dashboards}[/]  (sign in with your name and the API token as password)"
            )
        if endpoint is not None and endpoint["urls"]["oip"]:
            console.print(f"endpoint:      {endpoint['urls']['oip']}  (OIP v2)")
            console.print(f"               {endpoint['urls']['mlflow']}  (MLflow JSON)")
            if endpoint.get("router_grpc"):
                console.print(
                    f"               {endpoint['router_grpc']}  (OIP gRPC, model_name={DEMO_ENDPOINT!r})"
                )
        console.print(
            "try:          workbench status | workbench monitor show churn | workbench audit\n"
            "              workbench demo-traffic --covariate-drift 1 --seconds 90   (then: workbench alerts)\n"
            "              workbench demo-traffic --concept-drift 1 --seconds 240    (retrain-and-canary runs;\n"
            "              then: workbench runbook runs)"
        )
        if owned is not None and serve:
            console.print("the control plane keeps running; press Ctrl-C to stop it")
            try:
                owned.wait()
            except KeyboardInterrupt:
                console.print("stopping")
    finally:
        if owned is not None:
            owned.stop()


def _run_demo_canaries(client: Client, router_url: str, numbers: list[int], *, optimize: bool) -> None:
    """Canary the better model, then the bad one, under generated traffic; then (``optimize``) make the
    optimised variants and canary the fastest ONNX one; print what happened."""
    from workbench.demo.canaries import demo_canary, run_canary
    from workbench.demo.traffic import DemoTraffic
    from workbench.demo.world import DEMO_ENDPOINT, DEMO_MODEL, demo_data

    rows = demo_data(rows=4000).holdout
    results = []
    with DemoTraffic(router_url, DEMO_ENDPOINT, rows) as traffic:
        for number in numbers[1:]:
            spec = demo_canary(DEMO_ENDPOINT, f"models:/{DEMO_MODEL}/{number}")
            with console.status(f"canary of v{number}") as status:
                record = run_canary(client, spec, on_progress=status.update)
            events = client.rollout(record.id)["events"]
            results.append((f"v{number}", record.phase.value, events[-1]["message"] if events else ""))
            failed = _failed_checks(events)
            console.print(
                f"canary of v{number}: [bold]{record.phase.value}[/]"
                + (f" (failed: {', '.join(failed)})" if failed else "")
            )
        if optimize:
            results.extend(_run_demo_optimizations(client, numbers))
    print_table(
        f"Canaries on '{DEMO_ENDPOINT}' ({traffic.sent} requests, {traffic.failed} failed)",
        ["candidate", "outcome", "why"],
        results,
    )


def _run_demo_optimizations(client: Client, numbers: list[int]) -> list[tuple[str, str, str]]:
    """The variants (under the demo's traffic, as a real endpoint would be), their table, and a canary
    of the fastest ONNX variant of v2 against v2 itself."""
    from workbench.cli.optimize import print_variants
    from workbench.demo.canaries import demo_canary, run_canary
    from workbench.demo.optimize import fastest_onnx, optimize_demo
    from workbench.demo.world import DEMO_ENDPOINT, DEMO_MODEL

    versions = dict(zip((1, 2, 3), numbers, strict=False))
    with console.status("optimised variants") as status:
        records = optimize_demo(client, DEMO_MODEL, versions, on_progress=status.update)
    for parent in dict.fromkeys(r.parent_uri for r in records):
        print_variants(f"Variants of {parent}", client.variants(parent)["rows"])
    best = fastest_onnx(records)
    if best is None:
        console.print("no ONNX variant passed its gate: nothing to canary")
        return []
    candidate = f"models:/{DEMO_MODEL}/{best.variant_version}"
    with console.status(f"canary of {candidate} ({best.method} of v2)") as status:
        record = run_canary(client, demo_canary(DEMO_ENDPOINT, candidate), on_progress=status.update)
    events = client.rollout(record.id)["events"]
    console.print(f"canary of {candidate} ({best.method}): [bold]{record.phase.value}[/]")
    return [
        (
            f"v{best.variant_version} ({best.method} of v2)",
            record.phase.value,
            events[-1]["message"] if events else "",
        )
    ]


def _failed_checks(events: list[dict[str, Any]]) -> list[str]:
    """The gating checks that failed in the last analysis a rollout recorded."""
    for event in reversed(events):
        evidence = event.get("evidence")
        if isinstance(evidence, dict) and "metrics" in evidence:
            return [
                m["name"] for m in evidence["metrics"] if m["verdict"] == "fail" and m.get("gating", True)
            ]
    return []


@handle_errors
def demo_traffic(
    seconds: float = typer.Option(60.0, min=1, max=86_400, help="how long to send"),
    rate: float = typer.Option(100.0, min=1, max=5000, help="requests per second"),
    covariate_drift: float = typer.Option(0.0, min=0, max=3, help="0 none, 1 strong: who the customers are"),
    concept_drift: float = typer.Option(0.0, min=0, max=1, help="0 none, 1 strong: how they behave"),
    labels: bool = typer.Option(True, "--labels/--no-labels", help="feed the ground truth back"),
    endpoint: str = typer.Option("churn", help="endpoint to send to"),
    seed: int = typer.Option(11, help="seed of the generated customers"),
) -> None:
    """Send generated demo traffic (optionally drifted, with labels fed back) through the router."""
    from workbench.demo.dataset import FEATURES, generate_churn
    from workbench.demo.traffic import DemoTraffic

    with Client() as client:
        router = client.endpoint_status(endpoint)["router_url"]
        if not router:
            raise fail(f"endpoint {endpoint!r} is not served (no router)")
        columns: tuple[str, ...] = FEATURES
        if client.get_endpoint(endpoint).spec.features is not None:
            # Called by id: the customers are the feature store's, their features as materialised.
            from workbench.demo.features import JOIN_KEY, demo_customers
            from workbench.demo.world import DEMO_CUSTOMERS, DEMO_SEED

            if covariate_drift or concept_drift:
                raise fail("an endpoint called by id serves the stored features: drift them in the store")
            customers = demo_customers(DEMO_CUSTOMERS, seed=DEMO_SEED)
            rows = customers.sample(frac=1.0, random_state=seed).reset_index(drop=True)
            columns = (JOIN_KEY,)
        else:
            rows = generate_churn(
                5000, seed=seed, covariate_drift=covariate_drift, concept_drift=concept_drift
            )
        labeller = client if labels else None
        with (
            DemoTraffic(router, endpoint, rows, rate=rate, labels=labeller, columns=columns) as traffic,
            console.status(f"sending to {endpoint} for {seconds:g}s") as status,
        ):
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                time.sleep(1.0)
                status.update(
                    f"{traffic.sent} requests ({traffic.failed} failed), {traffic.labelled} labelled"
                )
    console.print(
        f"sent {traffic.sent} requests ({traffic.failed} failed); {traffic.labelled} labels fed back"
    )


def _dashboards_up(url: str, wait_s: float = 30.0) -> bool:
    """``workbench up`` starts the dashboards once its API answers: give them a moment to come up."""
    import time

    from workbench.ui.process import dashboard_answers

    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if dashboard_answers(url, timeout=0.5):
            return True
        time.sleep(0.5)
    return False
