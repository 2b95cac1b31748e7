"""The demo world: generate the churn data, train v1/v2/v3, register them through the API.

Registration goes through ``workbench.Client`` like any user's would, so the demo exercises the real
upload path and leaves the same audit trail a person's actions would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from workbench.client import Client
from workbench.demo.dataset import FEATURES, TARGET, generate_churn, split_frame
from workbench.demo.training import train_version
from workbench.registry.types import ModelVersionInfo

DEMO_MODEL = "churn-classifier"
DEMO_ENDPOINT = "churn"
DEMO_SEED = 7
DEMO_ROWS = 24_000
HOLDOUT_FRACTION = 0.25
DEMO_STEPS = 7  # generate, then train and register each of three versions
_DESCRIPTIONS = {
    1: "v1: small MLP, the first production model",
    2: "v2: larger MLP trained longer; better AUC",
    3: "v3: deliberately bad: far wider and deeper, under-trained, weight norm left unfolded; worse and slower",
}


@dataclass(frozen=True)
class DemoData:
    train: pd.DataFrame
    holdout: pd.DataFrame


def demo_data(*, seed: int = DEMO_SEED, rows: int = DEMO_ROWS) -> DemoData:
    frame = generate_churn(rows, seed=seed)
    train, holdout = split_frame(frame, holdout_fraction=HOLDOUT_FRACTION, seed=seed)
    return DemoData(train=train.reset_index(drop=True), holdout=holdout.reset_index(drop=True))


def existing_demo_versions(client: Client) -> list[ModelVersionInfo]:
    if DEMO_MODEL not in {m.name for m in client.list_models()}:
        return []
    return [v for v in client.list_versions(DEMO_MODEL) if v.tags.get("demo") == "true"]


def register_demo(
    client: Client,
    *,
    seed: int = DEMO_SEED,
    rows: int = DEMO_ROWS,
    on_step: Callable[[str], None] = lambda _message: None,
) -> list[ModelVersionInfo]:
    """Train and register v1, v2, v3 and point ``champion`` at v1; returns the registered versions."""
    on_step(f"generating {rows} rows of churn data (seed {seed})")
    data = demo_data(seed=seed, rows=rows)
    example = data.holdout[list(FEATURES)].head(2)
    registered: list[ModelVersionInfo] = []
    versions: tuple[Literal[1, 2, 3], ...] = (1, 2, 3)
    for number in versions:
        on_step(f"training v{number}")
        trained = train_version(number, data.train, data.holdout, seed=seed)
        on_step(f"registering v{number} (holdout AUC {trained.metrics['auc']:.3f})")
        parent = registered[0].version if registered else None
        info = client.register_model(
            DEMO_MODEL,
            trained.module,
            input_example=example,
            reference_data=data.holdout,
            reference_target=TARGET,
            training_data=data.train,
            params=trained.params,
            metrics=trained.metrics,
            description=_DESCRIPTIONS[number],
            tags={"demo": "true", "demo.role": f"v{number}"},
            aliases=["champion"] if number == 1 else [],
            parent_version=parent,
            reason=f"demo: register v{number}",
        )
        registered.append(info)
    return registered


DEMO_BY_ID_ENDPOINT = "churn-by-id"
DEMO_CUSTOMERS = 5000


def ensure_demo_features(client: Client) -> dict[str, Any]:
    """The customers' features in the feature store (written fresh, applied once, materialised) and the
    champion on ``churn-by-id``, called with a ``customer_id`` alone; returns that endpoint's status."""
    from workbench.demo.features import JOIN_KEY, SERVICE, VIEW, write_demo_features

    status = client.features()
    # Stamped a few minutes ago on every run, so a demo run days later still serves fresh features.
    write_demo_features(Path(status["repo"]), rows=DEMO_CUSTOMERS, seed=DEMO_SEED)
    if VIEW not in {v["name"] for v in status["feature_views"]}:
        client.apply_features(reason="demo: the customers' features")
    client.materialize_features(reason="demo: load the customers' latest features into the online store")
    if DEMO_BY_ID_ENDPOINT not in {e.spec.name for e in client.list_endpoints()}:
        client.deploy(
            DEMO_BY_ID_ENDPOINT,
            f"models:/{DEMO_MODEL}@champion",
            features={"entity": JOIN_KEY, "service": SERVICE},
            reason="demo: serve the champion by customer id, features from the feature store",
        )
    return client.endpoint_status(DEMO_BY_ID_ENDPOINT)


def ensure_demo_endpoint(client: Client) -> dict[str, Any]:
    """Serve the champion on the demo endpoint unless something already serves it; returns its status."""
    if DEMO_ENDPOINT not in {e.spec.name for e in client.list_endpoints()}:
        client.deploy(DEMO_ENDPOINT, f"models:/{DEMO_MODEL}@champion", reason="demo: serve the champion")
    return client.endpoint_status(DEMO_ENDPOINT)


DEMO_MONITOR = "churn"


def ensure_demo_monitoring(client: Client) -> list[str]:
    """Watch the demo endpoint: drift and performance over a minute, and four alert rules.

    Errors roll the endpoint back; drift notifies and runs the drift-investigation runbook; a latency
    regression notifies; a drop in AUC measured on fed-back labels runs retrain-and-canary, which closes
    the loop with no human step. Returns the rule names.
    """
    if DEMO_MONITOR not in {m.spec.name for m in client.monitors()}:
        client.create_monitor(
            {"name": DEMO_MONITOR, "endpoint": DEMO_ENDPOINT, "window_s": 60, "every_s": 5},
            reason="demo: watch the churn endpoint",
        )
    rules = {
        "churn-errors": {
            "series": "error_rate",
            "op": ">",
            "threshold": 0.05,
            "for_s": 10,
            "severity": "critical",
            "actions": [{"kind": "notify"}, {"kind": "rollback"}],
        },
        "churn-drift": {
            "series": "drift_share",
            "op": ">=",
            "threshold": 0.25,
            "for_s": 10,
            "severity": "warning",
            "actions": [
                {"kind": "notify"},
                {
                    "kind": "runbook",
                    "runbook": "drift-investigation",
                    "parameters": {"monitor": DEMO_MONITOR},
                },
            ],
        },
        "churn-latency": {
            "series": "latency_p95_ms",
            "op": ">",
            "threshold": 50,
            "for_s": 15,
            "severity": "warning",
            "actions": [{"kind": "notify"}],
        },
        "churn-auc-drop": {
            "series": "auc_drop",
            "op": ">",
            "threshold": 0.05,
            "for_s": 20,
            "severity": "critical",
            "cooldown_s": 1800,
            "actions": [
                {"kind": "notify"},
                {
                    "kind": "runbook",
                    "runbook": "retrain-and-canary",
                    "parameters": {
                        "endpoint": DEMO_ENDPOINT,
                        "model": DEMO_MODEL,
                        "window_s": 600,
                        "min_rows": 4000,
                        "data_wait_s": 180,
                        "canary_steps": "25,50",
                        "step_duration_s": 15,
                    },
                },
            ],
        },
    }
    existing = {r.spec.name for r in client.alert_rules(monitor=DEMO_MONITOR)}
    for name, fields in rules.items():
        if name not in existing:
            client.create_alert_rule({"name": name, "monitor": DEMO_MONITOR, **fields}, reason="demo")
    return list(rules)
