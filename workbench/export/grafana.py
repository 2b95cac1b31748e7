"""The Grafana dashboard for endpoints, kept as JSON in the package (``grafana_dashboard.json``): Grafana's
own format, importable as is, built only on the series the router, the replicas (through the router)
and the control plane expose. ``tests/serving/test_integrations.py`` checks every query's metric names
against real ``/metrics`` output."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

FILE_NAME = "workbench-endpoints.json"
#: Names in a PromQL expression that are metrics, not functions, keywords or label names.
_METRIC = re.compile(r"\b(workbench_[a-z0-9_]+)\b")


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        resources.files("workbench.export").joinpath("grafana_dashboard.json").read_text()
    )
    return data


def queries(board: dict[str, Any]) -> list[str]:
    found = [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            found.append(variable["definition"])
    return found


def metric_names(expr: str) -> set[str]:
    return set(_METRIC.findall(expr))
