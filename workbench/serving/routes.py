"""The router's table, and how it picks a version: pure functions, unit-tested without a server.

Sticky assignment uses weighted rendezvous hashing: each (key, version) pair gets a pseudo-random score
``weight / -ln(u)`` and the key goes to the highest score. A key keeps its version while weights stand,
and when they change only the share of keys that must move does (a key never moves between two versions
whose weights both stayed the same). An endpoint's ``sticky_salt`` (an A/B experiment's name while it
runs) is hashed in too, so each experiment draws its own random split of the keys: users who were
treated in the last experiment are not all treated again in the next one.
"""

from __future__ import annotations

import hashlib
import math

from pydantic import BaseModel, ConfigDict, Field

_TWO_64 = float(2**64)


class Upstream(BaseModel):
    """One replica: reached over its Unix socket when it has one, else TCP."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    replica_id: str
    host: str = "127.0.0.1"
    port: int
    uds: str | None = None
    #: On the ray backend: the Ray Serve application that serves the version (Ray balances its replicas).
    ray_app: str | None = None


class VersionRoute(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    version: int
    weight: float = Field(ge=0, le=100)
    upstreams: tuple[Upstream, ...] = ()


class ShadowRoute(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    version: int
    sample_percent: float = Field(default=100.0, gt=0, le=100)
    upstreams: tuple[Upstream, ...] = ()


class EndpointRoutes(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    versions: tuple[VersionRoute, ...]
    shadows: tuple[ShadowRoute, ...] = ()
    payload_limit_bytes: int = 8 * 1024 * 1024
    sticky_salt: str = ""


class RouteTable(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    revision: int = 0
    endpoints: dict[str, EndpointRoutes] = Field(default_factory=dict)


def _unit_hash(key: str, salt: str) -> float:
    """A deterministic number in (0, 1) for (key, salt), stable across processes and restarts."""
    digest = hashlib.blake2b(f"{key}\x1f{salt}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / _TWO_64


def choose_sticky(versions: tuple[VersionRoute, ...], key: str, *, salt: str = "") -> VersionRoute | None:
    best: VersionRoute | None = None
    best_score = -1.0
    for route in versions:
        if route.weight <= 0:
            continue
        score = route.weight / -math.log(_unit_hash(key, f"{salt}{route.model}/{route.version}"))
        if score > best_score:
            best, best_score = route, score
    return best


def choose_weighted(versions: tuple[VersionRoute, ...], u: float) -> VersionRoute | None:
    """Pick by cumulative weight for ``u`` uniform in [0, 1)."""
    total = sum(route.weight for route in versions)
    if total <= 0:
        return None
    point = u * total
    cumulative = 0.0
    chosen: VersionRoute | None = None
    for route in versions:
        if route.weight <= 0:
            continue
        cumulative += route.weight
        chosen = route
        if point < cumulative:
            return route
    return chosen


def primary_version(routes: EndpointRoutes) -> VersionRoute | None:
    """The version taking the most traffic (the first listed on a tie): what the endpoint's metadata shows."""
    best: VersionRoute | None = None
    for route in routes.versions:
        if route.weight > 0 and (best is None or route.weight > best.weight):
            best = route
    return best


def served_versions(routes: EndpointRoutes) -> list[int]:
    """Every version a request can name in its path: those taking traffic and the shadows, in order."""
    return sorted(
        {route.version for route in routes.versions} | {shadow.version for shadow in routes.shadows}
    )


def find_version(routes: EndpointRoutes, version: int) -> VersionRoute | ShadowRoute | None:
    for route in routes.versions:
        if route.version == version:
            return route
    for shadow in routes.shadows:
        if shadow.version == version:
            return shadow
    return None


def should_mirror(shadow: ShadowRoute, request_key: str) -> bool:
    """Sample shadows by request id, so the same request is mirrored (or not) deterministically."""
    if shadow.sample_percent >= 100:
        return True
    return _unit_hash(request_key, "shadow") * 100 < shadow.sample_percent
