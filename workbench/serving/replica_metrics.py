"""Every replica's series on the router's ``/metrics``, each sample labelled with its ``replica``.

Replicas listen on Unix sockets that no Prometheus can reach, and they come and go with every deploy.
The router already holds a connection pool to each of them, so on a scrape it asks each replica for its
exposition (concurrently, with a short timeout) and serves them merged with its own: one target per
router, nothing to re-discover when a replica is replaced, and no TCP port opened per replica. The
alternative, a port per replica announced through a file-based service-discovery file, would expose
every replica on the network and make Prometheus chase each restart.

Families are merged by name (the exposition format wants one ``# TYPE`` block per family), and a
``workbench_replica_up`` gauge says which replicas answered, as Prometheus's own ``up`` does per target.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

#: A replica that has not answered by then is reported down for this scrape, not waited for.
SCRAPE_TIMEOUT_S = 2.0
UP = "workbench_replica_up"


class _Families:
    """A collector yielding already-built families (prometheus_client's way to expose foreign data)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def merge(own: bytes, replicas: Mapping[str, bytes | None]) -> bytes:
    """The router's exposition followed by each replica's, labelled; None is a replica that did not
    answer. A replica's sample that already carries a ``replica`` label keeps it (its own name wins)."""
    families: dict[str, Metric] = {}
    up = Metric(UP, "1 if the replica answered the router's scrape of its metrics", "gauge")
    for replica_id, text in sorted(replicas.items()):
        up.add_sample(UP, {"replica": replica_id}, 0.0 if text is None else 1.0)
        if text is None:
            continue
        for family in text_string_to_metric_families(text.decode()):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            merged.samples.extend(
                sample._replace(labels={"replica": replica_id, **sample.labels}) for sample in family.samples
            )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([*families.values(), up]))
    return own + generate_latest(registry)
