"""``workbench demo-experiment``: an A/B test of two demo models on simulated customers, end to end."""

from __future__ import annotations

import typer

from workbench.cli._output import console, fail, handle_errors, print_table
from workbench.client import Client


@handle_errors
def demo_experiment(
    wave: int = typer.Option(2000, min=200, max=20_000, help="new customers per wave"),
    most: int = typer.Option(40_000, min=200, max=500_000, help="stop after this many customers"),
    control: int = typer.Option(1, min=1, help="the control's version of the demo model"),
    treatment: int = typer.Option(2, min=1, help="the treatment's version"),
    promote: bool = typer.Option(True, "--promote/--no-promote", help="roll a winner out (blue-green)"),
) -> None:
    """Does the better churn model keep more customers? Waves of sticky simulated customers visit the
    'churn-ab' endpoint and their outcomes come back until the experiment decides (valid at every look);
    a winner is promoted through a blue-green rollout."""
    from workbench.demo.experiment import (
        DEMO_EXPERIMENT,
        DEMO_EXPERIMENT_ENDPOINT,
        Waves,
        experiment_spec,
        run_in_waves,
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

        def progress(done: Waves) -> None:
            decision = done.record.get("decision") or {}
            primary = (decision.get("primary") or [{}])[0]
            interval = (
                f"retained {primary['estimate']:+.3f} [{primary['lower']:+.3f}, {primary['upper']:+.3f}]"
                if primary.get("lower") is not None
                else "no comparison yet"
            )
            console.print(
                f"wave {done.waves}: {done.customers} customers, {done.joined} outcomes; "
                f"{decision.get('verdict', 'continue')}: {interval}"
            )

        with console.status("customers visiting, outcomes coming back, the experiment looking"):
            done = run_in_waves(
                client,
                name,
                router,
                DEMO_EXPERIMENT_ENDPOINT,
                wave=wave,
                most=most,
                seed=DEMO_SEED + 1000,
                on_wave=progress,
            )
        console.print(
            f"{done.customers} customers visited, sticky by id; {done.switched} switched version on a second "
            f"visit; {done.joined} outcomes fed back (retained, offered)"
        )
        record = done.record
        decision = record.get("decision") or {}
        print_table(
            f"Experiment {name}: {record.get('state')}, {decision.get('verdict')}",
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
        if promote and decision.get("winner") and record.get("state") == "concluded":
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
            for e in reversed(client.audit(target=f"experiment:{name}", limit=200))
            if e.action != "experiment.outcomes"
        ]
        print_table("The audit log's story", ["when (UTC)", "actor", "action", "why"], story)
