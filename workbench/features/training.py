"""Training sets from the feature store, point-in-time correct: the features each entity had at a time.

A model served with a lookup saw, for each request, the online store's values at that moment. Training
it on today's values for yesterday's requests would leak the future and skew it from serving; Feast's
``get_historical_features`` joins, per (entity, timestamp) row, the latest feature row at or before the
timestamp and within the view's TTL, which is what the online store held then (if it was materialised
in time). The columns come back named as the model's inputs, in the rows' order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from workbench.features.lookup import LookupPlan

#: A column Feast passes through the join: the row's position, to give the rows back in their order.
ROW = "__workbench_row"


def historical_features(
    store: Any, plan: LookupPlan, ids: Sequence[Any], timestamps: Sequence[float]
) -> pd.DataFrame:
    """The fetched inputs of ``plan`` for each (id, timestamp in epoch seconds); NaN where Feast has none."""
    if len(ids) != len(timestamps):
        raise ValueError(f"{len(ids)} ids but {len(timestamps)} timestamps")
    value = int if plan.key_type == "int64" else str
    entity_df = pd.DataFrame(
        {
            plan.join_key: [value(i) for i in ids],
            # whole microseconds: Python's datetime, which Feast converts to, has no nanoseconds
            "event_timestamp": pd.to_datetime(
                np.round(np.asarray(timestamps, dtype=float) * 1e6).astype(np.int64), unit="us", utc=True
            ),
            ROW: np.arange(len(ids)),
        }
    )
    refs = sorted({f"{plan.reads[f.read].view}:{f.feature}" for f in plan.fetched})
    joined = store.get_historical_features(
        entity_df=entity_df, features=refs, full_feature_names=True
    ).to_df()
    joined = joined.sort_values(ROW).reset_index(drop=True)
    columns: dict[str, Any] = {
        plan.entity: entity_df[plan.join_key].to_numpy(),
        "ts": np.asarray(timestamps, dtype=float),
    }
    for fetched in plan.fetched:
        name = f"{plan.reads[fetched.read].view}__{fetched.feature}"
        columns[fetched.input] = pd.to_numeric(joined[name], errors="coerce").to_numpy(dtype=float)
    return pd.DataFrame(columns)
