"""Which unit saw which variant, read from the prediction log.

The router chooses the version (sticky by the routing key, with the experiment's salt), the replica logs
the request with its key, and this turns the log's records into assignments. Reading them from the log
rather than having the router report them keeps the request path as it was, and makes the log the one
record of what each unit was shown.

A record counts when it is live traffic (not a shadow copy, not a probe: probes are never logged) served
while the experiment runs, by a version that is one of its variants. A unit's first record decides its
variant (the store keeps the first assignment); with ``unit: key``, requests without a key are not units
of the experiment and are counted apart, so a client that forgets the header shows up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from workbench.specs.experiment import ExperimentSpec


@dataclass
class Assignments:
    units: list[tuple[str, str, float]] = field(default_factory=list)  # (unit, variant, ts)
    without_key: int = 0  # unit "key" only: served by a variant, but no routing key to assign
    elsewhere: int = 0  # served by a version that is not a variant (an explicit version, a stale table)


def assignments(spec: ExperimentSpec, records: Iterable[dict[str, Any]], *, since: float) -> Assignments:
    variants = {(v.model, v.version): v.name for v in spec.variants}
    found = Assignments()
    for record in records:
        if record.get("shadow") or float(record.get("ts", 0.0)) < since:
            continue
        if record.get("endpoint") not in (None, spec.endpoint):
            continue
        try:
            served = (str(record.get("model")), int(record.get("version", 0)))
        except (TypeError, ValueError):
            continue
        variant = variants.get(served)
        if variant is None:
            found.elsewhere += 1
            continue
        unit = record.get("key") if spec.unit == "key" else record.get("request_id")
        if not unit:
            found.without_key += 1
            continue
        found.units.append((str(unit), variant, float(record["ts"])))
    return found
