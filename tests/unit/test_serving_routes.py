"""Version choice in the router: weighted draws, sticky keys, explicit versions, shadow sampling."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from workbench.serving.routes import (
    EndpointRoutes,
    ShadowRoute,
    VersionRoute,
    choose_sticky,
    choose_weighted,
    find_version,
    primary_version,
    served_versions,
    should_mirror,
)


def _versions(*weights: float) -> tuple[VersionRoute, ...]:
    return tuple(VersionRoute(model="m", version=i + 1, weight=w) for i, w in enumerate(weights))


def test_weighted_choice_follows_the_weights() -> None:
    versions = _versions(90, 10)
    rng = random.Random(1)
    counts = Counter(choose_weighted(versions, rng.random()).version for _ in range(20_000))  # type: ignore[union-attr]
    assert counts[2] / 20_000 == pytest.approx(0.10, abs=0.01)


def test_zero_weights_are_never_chosen() -> None:
    versions = _versions(0, 100, 0)
    assert {choose_weighted(versions, u / 100).version for u in range(100)} == {2}  # type: ignore[union-attr]
    assert choose_weighted(_versions(0, 0), 0.5) is None
    assert choose_sticky(_versions(0, 0), "k") is None


def test_sticky_keys_keep_their_version_and_split_by_weight() -> None:
    versions = _versions(75, 25)
    first = {f"user-{i}": choose_sticky(versions, f"user-{i}") for i in range(4000)}
    again = {key: choose_sticky(versions, key) for key in first}
    assert first == again
    share = sum(1 for v in first.values() if v is not None and v.version == 2) / len(first)
    assert share == pytest.approx(0.25, abs=0.03)


def test_ramping_a_canary_only_moves_keys_into_it() -> None:
    keys = [f"k{i}" for i in range(5000)]
    before = {k: choose_sticky(_versions(95, 5), k).version for k in keys}  # type: ignore[union-attr]
    after = {k: choose_sticky(_versions(75, 25), k).version for k in keys}  # type: ignore[union-attr]
    assert all(after[k] == 2 for k in keys if before[k] == 2), "a canary key went back to stable"
    moved = sum(before[k] != after[k] for k in keys) / len(keys)
    assert moved == pytest.approx(0.20, abs=0.02)


def test_adding_a_version_in_proportion_only_steals_keys() -> None:
    keys = [f"k{i}" for i in range(5000)]
    before = {k: choose_sticky(_versions(50, 50, 0), k).version for k in keys}  # type: ignore[union-attr]
    after = {k: choose_sticky(_versions(40, 40, 20), k).version for k in keys}  # type: ignore[union-attr]
    moved = [k for k in keys if before[k] != after[k]]
    assert all(after[k] == 3 for k in moved), "keys moved between versions whose share stayed in proportion"
    assert len(moved) / len(keys) == pytest.approx(0.20, abs=0.02)


def test_find_version_covers_live_and_shadow_versions() -> None:
    routes = EndpointRoutes(
        name="e", versions=_versions(100), shadows=(ShadowRoute(model="m", version=7, sample_percent=50),)
    )
    assert find_version(routes, 1) == routes.versions[0]
    assert find_version(routes, 7) == routes.shadows[0]
    assert find_version(routes, 3) is None


def test_shadow_sampling_is_deterministic_per_request_and_near_the_rate() -> None:
    shadow = ShadowRoute(model="m", version=2, sample_percent=20)
    decisions = [should_mirror(shadow, f"req-{i}") for i in range(10_000)]
    assert decisions == [should_mirror(shadow, f"req-{i}") for i in range(10_000)]
    assert sum(decisions) / len(decisions) == pytest.approx(0.20, abs=0.015)
    assert all(should_mirror(ShadowRoute(model="m", version=2), f"r{i}") for i in range(100))


def test_metadata_shows_the_version_taking_the_most_traffic_and_lists_every_addressable_version() -> None:
    routes = EndpointRoutes(
        name="e", versions=_versions(20, 80, 0), shadows=(ShadowRoute(model="m", version=9),)
    )
    assert primary_version(routes) == routes.versions[1]
    assert served_versions(routes) == [1, 2, 3, 9]
    assert primary_version(EndpointRoutes(name="e", versions=_versions(50, 50))) == _versions(50, 50)[0]
    assert primary_version(EndpointRoutes(name="e", versions=_versions(0, 0))) is None
