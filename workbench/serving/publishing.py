"""Route publishing: which replicas an endpoint needs, the route table they make, and pushing it.

A table is built from one view of the process table (:meth:`ProcessTable.routing_view`) and pushed
with no lock held. The router refuses a revision older than the one it serves, and views are numbered
in the order they were taken, so a push overtaken by a newer one has nothing left to do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx
import orjson

from workbench.errors import UnavailableError
from workbench.serving.processes import Managed
from workbench.serving.routes import EndpointRoutes, RouteTable, ShadowRoute, Upstream, VersionRoute
from workbench.specs.endpoint import EndpointSpec


def replica_ids(spec: EndpointSpec) -> dict[str, tuple[str, int]]:
    """The replicas ``spec`` needs, named so that a change of serving options gives new names.

    A replica's identity hashes everything that shapes the process (batching, device, threads, payload
    limit), so changing those starts fresh replicas beside the old ones and swaps them without a gap.
    """
    digest = shape_digest(spec)
    wanted: dict[str, tuple[str, int]] = {}
    versions = [(r.model, r.version) for r in spec.routes] + [(s.model, s.version) for s in spec.shadows]
    for model, version in versions:
        for index in range(spec.replicas):
            wanted[f"{spec.name}.{model}.v{version}.{digest}.r{index}"] = (model, version)
    return wanted


def replica_options(spec: EndpointSpec) -> dict[str, Any]:
    """What a replica of ``spec`` runs with, whichever backend starts it (a local process's config, a
    Ray deployment's arguments)."""
    return {
        "device": spec.device,
        "threads": spec.threads,
        "torchscript": spec.torchscript,
        "max_batch_size": spec.batching.max_batch_size,
        "max_wait_ms": spec.batching.max_wait_ms,
        "payload_limit_bytes": spec.payload_limit_bytes,
        "log_sample_rate": spec.log_sample_rate,
        "features": spec.features,
    }


def shape_digest(spec: EndpointSpec) -> str:
    """A digest of everything that shapes a replica's process: the same options, the same replicas."""
    shape = orjson.dumps(
        {
            "device": spec.device,
            "threads": spec.threads,
            "batching": spec.batching.model_dump(),
            "payload": spec.payload_limit_bytes,
            # Only when on: the default leaves every existing replica's name as it was.
            **({"torchscript": True} if spec.torchscript else {}),
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(shape).hexdigest()[:8]


def route_table(revision: int, specs: Iterable[EndpointSpec], ready: Mapping[str, Managed]) -> RouteTable:
    """Every endpoint's versions and shadows with the ready replicas that serve them."""
    endpoints: dict[str, EndpointRoutes] = {}
    for spec in specs:
        ids = replica_ids(spec)

        def upstreams(
            model: str, version: int, ids: dict[str, tuple[str, int]] = ids
        ) -> tuple[Upstream, ...]:
            found = []
            for pid, key in ids.items():
                managed = ready.get(pid)
                if key == (model, version) and managed is not None and managed.info is not None:
                    uds = str(managed.info.uds) if managed.info.uds else None
                    found.append(Upstream(replica_id=pid, port=managed.info.port, uds=uds))
            return tuple(found)

        endpoints[spec.name] = endpoint_routes(spec, upstreams)
    return RouteTable(revision=revision, endpoints=endpoints)


def endpoint_routes(
    spec: EndpointSpec, upstreams: Callable[[str, int], tuple[Upstream, ...]]
) -> EndpointRoutes:
    """One endpoint's routes, each version reached through ``upstreams(model, version)``: one shape for
    every backend's router (local replicas here, Ray applications in ``serving.ray.serve_config``)."""
    return EndpointRoutes(
        name=spec.name,
        versions=tuple(
            VersionRoute(
                model=r.model, version=r.version, weight=r.weight, upstreams=upstreams(r.model, r.version)
            )
            for r in spec.routes
        ),
        shadows=tuple(
            ShadowRoute(
                model=s.model,
                version=s.version,
                sample_percent=s.sample_percent,
                upstreams=upstreams(s.model, s.version),
            )
            for s in spec.shadows
        ),
        payload_limit_bytes=spec.payload_limit_bytes,
        sticky_salt=spec.sticky_salt or "",
    )


def push_routes(http: httpx.Client, router_url: str, token: str, table: RouteTable) -> bool:
    """PUT ``table`` to the router; False if the router already serves a newer one (this one is moot)."""
    try:
        response = http.put(
            f"{router_url}/-/routes",
            content=table.model_dump_json(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
    except httpx.HTTPError as exc:
        raise UnavailableError(f"cannot update the router's routes: {exc}") from exc
    if response.status_code == 409:
        return False  # overtaken by a table built from a later view: the router is already ahead
    if response.status_code != 200:
        raise UnavailableError(f"the router refused the routes: {response.text[:300]}")
    return True
