"""The demo's feature repository: the churn world's customers as a Feast entity with their 20 features.

``write_demo_features`` puts a definitions file and the customers' feature table (parquet, the file
offline store) into a repository; ``workbench features apply`` and ``materialize`` then load them, and an
endpoint can be called with a ``customer_id`` alone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.demo.dataset import FEATURES, TARGET, generate_churn

DEFINITIONS = "customers.py"
TABLE = "data/customers.parquet"
ENTITY = "customer"
JOIN_KEY = "customer_id"
VIEW = "customer_features"
SERVICE = "churn_features"

_SOURCE = '''"""The demo's customers: one entity, one feature view of the churn model's 20 inputs, one service."""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float32

FEATURES = {features!r}

customer = Entity(name="{entity}", join_keys=["{join_key}"], value_type=ValueType.INT64)
customer_source = FileSource(path={table!r}, timestamp_field="event_timestamp")
customer_features = FeatureView(
    name="{view}",
    entities=[customer],
    ttl=timedelta(seconds={ttl_s}),
    schema=[Field(name=name, dtype=Float32) for name in FEATURES],
    source=customer_source,
    online=True,
)
churn_features = FeatureService(name="{service}", features=[customer_features])
'''


def demo_customers(rows: int, *, seed: int, now: datetime | None = None) -> pd.DataFrame:
    """``rows`` customers with ids from 1, their features as of a few minutes ago, and the ground truth."""
    frame = generate_churn(rows, seed=seed)
    table = frame[list(FEATURES)].astype("float32")
    table.insert(0, JOIN_KEY, np.arange(1, rows + 1, dtype=np.int64))
    table["event_timestamp"] = (now or datetime.now(UTC)) - timedelta(minutes=5)
    table[TARGET] = frame[TARGET].to_numpy()
    return table


def write_demo_features(
    repo: Path, *, rows: int = 5000, seed: int = 7, ttl_s: int = 86_400, now: datetime | None = None
) -> pd.DataFrame:
    """Write the definitions and the feature table into ``repo``; returns the customers written."""
    (repo / "data").mkdir(parents=True, exist_ok=True)
    customers = demo_customers(rows, seed=seed, now=now)
    customers.drop(columns=[TARGET]).to_parquet(repo / TABLE, index=False)
    (repo / DEFINITIONS).write_text(
        _SOURCE.format(
            features=list(FEATURES),
            entity=ENTITY,
            join_key=JOIN_KEY,
            table=str((repo / TABLE).resolve()),
            view=VIEW,
            ttl_s=ttl_s,
            service=SERVICE,
        )
    )
    return customers
