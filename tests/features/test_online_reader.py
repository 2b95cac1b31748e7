"""One batch's features from a real Feast online store: the direct SQLite reader returns exactly what
Feast's own read does, per entity and feature, with the TTL enforced on read (issue 14)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from workbench.demo.dataset import FEATURES
from workbench.demo.features import JOIN_KEY, VIEW, write_demo_features
from workbench.features.online import FeastReader, SqliteReader, open_reader
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
