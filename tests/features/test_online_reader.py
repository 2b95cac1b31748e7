"""One batch's features from a real Feast online store: the direct SQLite and Redis readers return
exactly what Feast's own read does, per entity and feature, with the TTL enforced on read; a Redis that
stops or hangs is an error, and the same reader reads again when it is back (issue 14)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import redis

from tests.features._redis import RedisServer
from workbench.demo.dataset import FEATURES
from workbench.demo.features import JOIN_KEY, VIEW, write_demo_features
from workbench.features.online import (
    REDIS_TIMEOUT_S,
    FeastReader,
    RedisReader,
    SqliteReader,
    entity_key_serializer,
    open_reader,
    redis_client,
)
from workbench.features.repo import FeatureRepo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[FeatureRepo, pd.DataFrame]:
    repo = FeatureRepo(tmp_path_factory.mktemp("features") / "repo")
    repo.ensure()
    customers = write_demo_features(repo.path, rows=400, seed=9)
    repo.apply()
    repo.materialize(pd.Timestamp.now(tz="UTC").isoformat())
    return repo, customers.set_index(JOIN_KEY)


def test_the_sqlite_reader_returns_what_feast_returns(repo: tuple[FeatureRepo, pd.DataFrame]) -> None:
    feature_repo, customers = repo
    store = feature_repo.store()
    fast = open_reader(store, VIEW, FEATURES, JOIN_KEY)
    assert isinstance(fast, SqliteReader)
    slow = FeastReader(store, VIEW, FEATURES, JOIN_KEY, ttl_s=86_400)
    ids = [5, 400, 5, 123_456, 1, 77]  # a repeat and an unknown customer in one batch
    now = time.time()
    quick, feast = fast.read(ids, now=now), slow.read(ids, now=now)
    np.testing.assert_array_equal(quick.values, feast.values)
    np.testing.assert_allclose(quick.age_s, feast.age_s)
    for row, customer in enumerate(ids):
        if customer in customers.index:
            expected = customers.loc[customer, list(FEATURES)].to_numpy(dtype=np.float64)
            np.testing.assert_allclose(quick.values[row], expected, rtol=1e-6)
            assert 290 < quick.age_s[row].min() <= quick.age_s[row].max() < 400  # written 5 minutes ago
        else:
            assert quick.missing[row].all()
    assert quick.column("tenure_months")[0] == pytest.approx(float(customers.at[5, "tenure_months"]))
    assert fast.read([], now=now).values.shape == (0, len(FEATURES))


def test_a_value_older_than_the_views_ttl_is_missing(repo: tuple[FeatureRepo, pd.DataFrame]) -> None:
    feature_repo, _ = repo
    store = feature_repo.store()
    reader = open_reader(store, VIEW, FEATURES, JOIN_KEY)
    fresh = reader.read([3])
    assert not fresh.missing.any()
    stale = reader.read([3], now=time.time() + 86_400)  # a day on: every value is past its one-day TTL
    assert stale.missing.all()
    assert (stale.age_s > 86_400).all()
    feast_stale = FeastReader(store, VIEW, FEATURES, JOIN_KEY, ttl_s=86_400).read(
        [3], now=time.time() + 86_400
    )
    assert feast_stale.missing.all()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def redis_repo(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> tuple[FeatureRepo, pd.DataFrame]:
    repo = FeatureRepo(
        tmp_path_factory.mktemp("features") / "redis", f"redis://127.0.0.1:{redis_server.port}/0"
    )
    repo.ensure()
    customers = write_demo_features(repo.path, rows=400, seed=9)
    repo.apply()
    repo.materialize(pd.Timestamp.now(tz="UTC").isoformat())
    return repo, customers.set_index(JOIN_KEY)


def _assert_same(reader: RedisReader, feast: FeastReader, ids: list[int], now: float) -> None:
    direct, expected = reader.read(ids, now=now), feast.read(ids, now=now)
    np.testing.assert_array_equal(direct.values, expected.values)
    np.testing.assert_array_equal(direct.age_s, expected.age_s)  # both from the event time's whole seconds


def test_the_redis_reader_returns_what_feast_returns(
    redis_repo: tuple[FeatureRepo, pd.DataFrame], redis_server: RedisServer
) -> None:
    feature_repo, customers = redis_repo
    store = feature_repo.store()
    fast = open_reader(store, VIEW, FEATURES, JOIN_KEY)
    assert isinstance(fast, RedisReader)
    slow = FeastReader(store, VIEW, FEATURES, JOIN_KEY, ttl_s=86_400)
    ids = [5, 400, 5, 123_456, 1, 77, 0]  # a repeat and unknown customers in one batch
    now = time.time()
    _assert_same(fast, slow, ids, now)
    assert not fast.pipelined  # the read script ran
    quick = fast.read(ids, now=now)
    for row, customer in enumerate(ids):
        if customer in customers.index:
            expected = customers.loc[customer, list(FEATURES)].to_numpy(dtype=np.float64)
            np.testing.assert_allclose(quick.values[row], expected, rtol=1e-6)
            assert 290 < quick.age_s[row].min() <= quick.age_s[row].max() < 400  # written 5 minutes ago
        else:
            assert quick.missing[row].all()
            assert np.isinf(quick.age_s[row]).all()
    one = fast.read([5], now=now)
    np.testing.assert_array_equal(one.values[0], quick.values[0])
    assert fast.read([], now=now).values.shape == (0, len(FEATURES))

    # A day on, every value is past the view's one-day TTL: missing for both, their ages still told.
    stale, feast_stale = fast.read([3, 5], now=now + 86_400), slow.read([3, 5], now=now + 86_400)
    assert stale.missing.all()
    assert feast_stale.missing.all()
    np.testing.assert_array_equal(stale.age_s, feast_stale.age_s)
    assert (stale.age_s > 86_400).all()

    # A user who may not run scripts: the reader falls back to a pipeline of HMGET, same answers.
    redis.Redis(port=redis_server.port).acl_setuser(
        "reader", enabled=True, passwords=["+secret"], keys=["*"], commands=["+@read", "+@connection"]
    )
    limited = RedisReader(
        redis_client(f"127.0.0.1:{redis_server.port},db=0,username=reader,password=secret"),
        store.config.project,
        VIEW,
        FEATURES,
        JOIN_KEY,
        86_400,
        entity_key_serializer(store.config),
    )
    try:
        _assert_same(limited, slow, ids, now)
        assert limited.pipelined
        _assert_same(limited, slow, [7, 8, 7], now)
    finally:
        limited.close()


def test_a_stopped_or_hung_redis_raises_and_the_same_reader_reads_again_when_it_is_back(
    redis_repo: tuple[FeatureRepo, pd.DataFrame], redis_server: RedisServer
) -> None:
    feature_repo, _ = redis_repo
    reader = open_reader(feature_repo.store(), VIEW, FEATURES, JOIN_KEY)
    assert isinstance(reader, RedisReader)
    before = reader.read([3, 4]).values
    assert not np.isnan(before).any()

    redis_server.stop()
    for _ in range(2):  # every read while it is down fails at once, none hangs
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError, match="Connection refused"):
            reader.read([3, 4])
        assert time.monotonic() - started < 1.0
    redis_server.start()  # an empty script cache and new connections: the same reader reads again
    np.testing.assert_array_equal(reader.read([3, 4]).values, before)

    assert redis_server.process is not None
    os.kill(redis_server.process.pid, signal.SIGSTOP)  # accepts connections, never answers
    try:
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            reader.read([3, 4])
        assert REDIS_TIMEOUT_S - 0.1 < time.monotonic() - started < REDIS_TIMEOUT_S + 1.0
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)
    np.testing.assert_array_equal(reader.read([3, 4]).values, before)
    reader.close()
