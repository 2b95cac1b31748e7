"""One look at an experiment from what the store holds: assignment counts and per-variant moments of each
metric, judged by :func:`workbench.experiments.decide.decide`."""

from __future__ import annotations

from sqlalchemy import Connection

from workbench.experiments.decide import Decision, decide
from workbench.store.experiments import ExperimentStore


def look(store: ExperimentStore, connection: Connection, name: str) -> Decision:
    record = store.get(connection, name)
    spec = record.spec
    assigned = store.assigned_counts(connection, name)
    outcomes = {
        metric.name: store.moments(connection, name, metric.name)
        for metric in (spec.primary, *spec.guardrails)
    }
    return decide(spec, assigned, outcomes)
