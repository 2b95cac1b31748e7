"""``workbench demo-experiment``: an A/B test of two demo models on simulated customers, end to end."""

from __future__ import annotations

import typer

from workbench.cli._output import console, fail, handle_errors, print_table
from workbench.client import Client


@handle_errors
def demo_experiment(
    customers: int = typer.Option(3000, min=400, max=50_000, help="simulated customers (one visit each)"),
    control: int = typer.Option(1, min=1, help="the control's version of the demo model"),
    treatment: int = typer.Option(2, min=1, help="the treatment's version"),
    promote: bool = typer.Option(True, "--promote/--no-promote", help="roll a winner out (blue-green)"),
    timeout: float = typer.Option(180.0, min=10, help="seconds to wait for the decision"),
) -> None:
    """Does the better churn model keep more customers? Sticky customers visit the 'churn-ab' endpoint,
    their outcomes are fed back, the experiment decides, and a winner is promoted through a rollout."""
    from workbench.demo.dataset import generate_churn
    from workbench.demo.experiment import (
        DEMO_EXPERIMENT,
        DEMO_EXPERIMENT_ENDPOINT,
        Customers,
        experiment_spec,
        wait_for_assignment,
        wait_for_verdict,
    )
    from workbench.demo.world import DEMO_MODEL, DEMO_SEED, existing_demo_versions

    with Client() as client:
        known = {v.version for v in existing_demo_versions(client)}
        if not {control, treatment} <= known:
            raise fail(
                f"the demo model {DEMO_MODEL} has no version {control} or {treatment}: run `workbench demo`"
            )
        endpoints = {e.spec.name for e in client.list_endpoints()}
        if DEMO_EXPERIMENT_ENDPOINT not in endpoints:
            with console.status(f"deploying {DEMO_MODEL} v{control} to '{DEMO_EXPERIMENT_ENDPOINT}'"):
                client.deploy(
                    DEMO_EXPERIMENT_ENDPOINT,
                    f"models:/{DEMO_MODEL}/{control}",
                    reason="demo: the A/B endpoint",
                )
        taken = {e.name for e in client.experiments()}
        name = DEMO_EXPERIMENT
        suffix = 2
        while name in taken:
            name, suffix = f"{DEMO_EXPERIMENT}-{suffix}", suffix + 1
        spec = experiment_spec(name, DEMO_EXPERIMENT_ENDPOINT, DEMO_MODEL, control, treatment)
        with console.status(f"starting experiment {name}: v{control} against v{treatment}"):
            client.create_experiment(
                spec, start=True, reason="demo: does the better model keep more customers?"
            )
        router = client.endpoint_status(DEMO_EXPERIMENT_ENDPOINT)["router_url"]
        rows = generate_churn(customers, seed=DEMO_SEED + 1000)  # new customers, none trained on
        simulated = Customers(router, DEMO_EXPERIMENT_ENDPOINT, rows)
        with console.status("customers visiting") as status:
            simulated.visit(on_progress=lambda n: status.update(f"customers visiting: {n} of {customers}"))
        shares = simulated.shares()
        console.print(
            f"{customers} customers visited, sticky by id: "
            + ", ".join(f"v{v} {n}" for v, n in sorted(shares.items()))
            + f"; {simulated.switched} switched version on a second visit"
        )
        with console.status("waiting for the prediction log to assign every customer"):
            wait_for_assignment(client, name, customers)
        outcomes = simulated.outcomes()
        joined = 0
        for start in range(0, len(outcomes), 10_000):  # the API's batch limit
            joined += client.outcomes(name, outcomes[start : start + 10_000])["joined"]
        console.print(f"{joined} outcomes fed back (retained, offered)")
        with console.status("waiting for the experiment's decision"):
            record = wait_for_verdict(client, name, timeout=timeout)
        decision = record.get("decision") or {}
        print_table(
            f"Experiment {name}: {decision.get('verdict')}",
            ["metric", "variant", "control", "variant mean", "difference", "always-valid interval"],
            [
                (
                    c["metric"],
                    c["variant"],
                    f"{c['control_mean']:.3f}",
                    f"{c['variant_mean']:.3f}",
                    f"{c['estimate']:+.3f}",
                    f"[{c['lower']:+.3f}, {c['upper']:+.3f}]" if c["lower"] is not None else "",
                )
                for c in [*decision.get("primary", []), *decision.get("guardrails", [])]
            ],
        )
        console.print(decision.get("reason", ""))
        if promote and decision.get("winner"):
            answer = client.promote_experiment(
                name, strategy="blue_green", rollout={"blue_green": {"keep_warm_s": 30}}
            )
            rollout = answer["rollout"]
            console.print(
                f"promoted {decision['winner']}: blue-green rollout {rollout['id']} of "
                f"v{rollout['candidate_version']} ({rollout['phase']})"
            )
        story = [
            (e.at.strftime("%H:%M:%S"), e.actor, e.action, (e.reason or "")[:90])
            for e in reversed(client.audit(target=f"experiment:{name}", limit=50))
        ]
        print_table("The audit log's story", ["when (UTC)", "actor", "action", "why"], story)
