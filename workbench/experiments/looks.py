"""One look at an experiment from what the store holds: assignment counts and per-variant moments of each
metric, judged by :func:`workbench.experiments.decide.decide`.

The sample-ratio check counts only units whose first request is at least ``SETTLE_S`` old. Units are
assigned from each replica's prediction log, and the logs are read one after another (each writer
flushes every 0.2 s, the feed polls about once a second): at any instant one variant's newest requests
may be counted while another's are still on their way. Counted to the second, a burst of traffic showed
that lag as a mismatch of hundreds of units and a false SRM alarm (which pauses the experiment);
counted up to a few seconds ago, every variant's log has been read that far.
"""

from __future__ import annotations

import dataclasses
import time

from sqlalchemy import Connection

from workbench.experiments.decide import Decision, decide
from workbench.store.experiments import ExperimentStore

#: Seconds a unit's assignment must be old to count in the sample-ratio check.
SETTLE_S = 10.0


def look(store: ExperimentStore, connection: Connection, name: str, *, now: float | None = None) -> Decision:
    record = store.get(connection, name)
    spec = record.spec
    settled = (time.time() if now is None else now) - SETTLE_S
    assigned = store.assigned_counts(connection, name, until=settled)
    outcomes = {
        metric.name: store.moments(connection, name, metric.name)
        for metric in (spec.primary, *spec.guardrails)
    }
    everyone = store.assigned_counts(connection, name)
    return dataclasses.replace(decide(spec, assigned, outcomes), assigned=everyone)
