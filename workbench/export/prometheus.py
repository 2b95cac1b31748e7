"""A Prometheus scrape config and alerting rules equivalent to Workbench's own alert rules.

The rules read the same numbers the monitoring engine judges: every look sets
``workbench_monitor_value{monitor, endpoint, series}`` (and ``workbench_drift_score`` per column) on the
control plane's ``/metrics``, so ``series op threshold`` held for ``for_s`` fires in Alertmanager when it
fires in Workbench, one scrape interval later at most. What has no Prometheus counterpart is said in each
rule's annotations: the cooldown (Alertmanager's ``repeat_interval`` plays that part) and the actions
(rollback, runbook), which only the control plane runs.

Targets come from a file-based service-discovery file the control plane keeps current
(:mod:`workbench.export.targets`): the control plane and the router, whose ``/metrics`` carries every
replica's series labelled by ``replica`` (:mod:`workbench.serving.replica_metrics`), so replicas coming
and going never change the targets.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from workbench.specs.monitor import AlertRuleSpec

SCRAPE_INTERVAL_S = 15
RULE_GROUP = "workbench-alert-rules"
_ALERT_NAME = re.compile(r"[^A-Za-z0-9_]")


def label_value(value: str) -> str:
    """A PromQL string literal: ``json.dumps`` escapes what PromQL's double-quoted strings need."""
    return json.dumps(value)


def duration(seconds: float) -> str:
    """Prometheus durations take whole units: milliseconds keep a fractional ``for_s`` exact."""
    return f"{round(seconds * 1000)}ms"


def expression(rule: AlertRuleSpec) -> str:
    monitor = label_value(rule.monitor)
    if rule.series.startswith("drift:"):
        column = label_value(rule.series.removeprefix("drift:"))
        selector = (
            f"max by (monitor, endpoint, column) (workbench_drift_score{{monitor={monitor},column={column}}})"
        )
    else:
        selector = f"workbench_monitor_value{{monitor={monitor},series={label_value(rule.series)}}}"
    return f"{selector} {rule.op} {rule.threshold!r}"


def alert_name(rule: AlertRuleSpec) -> str:
    """Alert names are ``[a-zA-Z_:][a-zA-Z0-9_:]*``; rule names may hold ``-``. The rule's own name is
    kept as the ``rule`` label, as on ``workbench_alert_firing``."""
    return "Workbench_" + _ALERT_NAME.sub("_", rule.name)


def alerting_rules(rules: Iterable[AlertRuleSpec]) -> dict[str, Any]:
    entries = []
    for rule in sorted(rules, key=lambda r: r.name):
        actions = ", ".join(action.kind for action in rule.actions)
        entry: dict[str, Any] = {
            "alert": alert_name(rule),
            "expr": expression(rule),
            "labels": {"severity": rule.severity.value, "rule": rule.name, "monitor": rule.monitor},
            "annotations": {
                "summary": f"{rule.series} {rule.op} {rule.threshold:g} on monitor {rule.monitor}",
                "description": rule.description or f"Workbench alert rule {rule.name!r}",
                "workbench_cooldown": duration(rule.cooldown_s),
                "workbench_actions": actions or "none",
            },
        }
        if rule.for_s > 0:
            entry["for"] = duration(rule.for_s)
        entries.append(entry)
    return {"groups": [{"name": RULE_GROUP, "rules": entries}]}


def scrape_config(targets_file: Path, rules_file: Path) -> dict[str, Any]:
    return {
        "global": {
            "scrape_interval": f"{SCRAPE_INTERVAL_S}s",
            "evaluation_interval": f"{SCRAPE_INTERVAL_S}s",
        },
        "rule_files": [str(rules_file)],
        "scrape_configs": [
            {
                "job_name": "workbench",
                "metrics_path": "/metrics",
                # A replica label set by the router is the replica's, not a target's: keep it.
                "honor_labels": True,
                "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "30s"}],
            }
        ],
    }
