"""The lookup's plan (pure: a lookup, a signature, a registry as data) and the joining runner's policy,
with an in-memory online store standing in for Feast's (the real one is in tests/features)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from workbench.errors import UnavailableError, ValidationError
from workbench.features.join import JoiningRunner, MissingFeaturesError
from workbench.features.lookup import plan_lookup
from workbench.features.online import FeatureBatch
from workbench.serving.codec import Decoded
from workbench.serving.schema import ColumnSpec, ModelSchema, TensorSpec
from workbench.specs.features import FeatureLookup

CATALOG: dict[str, Any] = {
    "entities": [{"name": "customer", "join_keys": ["customer_id"], "value_type": "INT64"}],
    "feature_views": [
        {
            "name": "profile",
            "entities": ["customer"],
            "features": [{"name": n, "dtype": "Float32"} for n in ("a", "b", "z")],
            "ttl_s": 3600.0,
            "online": True,
            "materialized_until": "2026-12-06T00:00:00+00:00",
        },
        {
            "name": "usage",
            "entities": ["customer"],
            "features": [{"name": "a", "dtype": "Float32"}, {"name": "label", "dtype": "String"}],
            "ttl_s": None,
            "online": True,
            "materialized_until": None,
        },
    ],
    "feature_services": [{"name": "svc", "features": ["profile:a", "profile:b", "profile:z"]}],
}
SCHEMA = ModelSchema(columns=(ColumnSpec("a", "double"), ColumnSpec("b", "long"), ColumnSpec("c", "double")))


def test_the_plan_reads_only_what_the_model_takes_and_asks_the_request_for_the_rest() -> None:
    plan = plan_lookup(FeatureLookup(entity="customer_id", service="svc"), SCHEMA, CATALOG)
    assert [(r.view, r.features, r.ttl_s) for r in plan.reads] == [("profile", ("a", "b"), 3600.0)]
    assert [c.name for c in plan.request_schema.columns or ()] == ["customer_id", "c"]
    assert plan.request_schema.columns is not None
    assert plan.request_schema.columns[0].dtype == "long"
    assert plan.request_time == ("c",)
    assert plan.describe()["fetched"] == {"a": "profile:a", "b": "profile:b"}


def test_inputs_map_model_inputs_onto_features_of_other_names() -> None:
    lookup = FeatureLookup(entity="customer_id", features=("profile:z", "profile:b"), inputs={"a": "z"})
    plan = plan_lookup(lookup, SCHEMA, CATALOG)
    assert plan.describe()["fetched"] == {"a": "profile:z", "b": "profile:b"}


def test_every_misfit_is_named_in_one_refusal() -> None:
    lookup = FeatureLookup(
        entity="customer_id",
        features=("usage:a", "profile:a", "usage:label", "nope:x", "profile:y"),
        inputs={"d": "a"},
    )
    with pytest.raises(ValidationError) as refused:
        plan_lookup(lookup, SCHEMA, CATALOG)
    problems = refused.value.details["problems"]
    assert "no feature view named 'nope' (known: profile, usage)" in problems
    assert "feature view 'profile' has no feature 'y' (it has: a, b, z)" in problems
    assert "feature view 'usage' was never materialised: run `workbench features materialize`" in problems
    assert "feature usage:label is String: only numbers are served" in problems
    assert any("inputs maps 'd', which is not an input of the model" in p for p in problems)
    assert any(
        "model input 'a' matches features of several views (usage:a, profile:a)" in p for p in problems
    )


@pytest.mark.parametrize(
    ("lookup", "schema", "message"),
    [
        (
            FeatureLookup(entity="account", service="svc"),
            SCHEMA,
            "no Feast entity has the join key 'account'",
        ),
        (FeatureLookup(entity="customer_id", service="other"), SCHEMA, "no feature service named 'other'"),
        (
            FeatureLookup(entity="customer_id", service="svc", missing="default", defaults={"a": 0.0}),
            SCHEMA,
            "needs a default for every fetched input; none for ['b']",
        ),
        (
            FeatureLookup(entity="customer_id", service="svc"),
            ModelSchema(tensor=TensorSpec(None, "float32", (-1, 3))),
            "no named columns",
        ),
        (
            FeatureLookup(entity="customer_id", features=("profile:z",)),
            SCHEMA,
            "fetches none of the model's inputs",
        ),
    ],
)
def test_a_lookup_that_cannot_serve_the_model_is_refused(
    lookup: FeatureLookup, schema: ModelSchema, message: str
) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("(", r"\(")):
        plan_lookup(lookup, schema, CATALOG)


def test_the_spec_refuses_what_it_can_see_alone() -> None:
    with pytest.raises(ValueError, match="name one of: a feature service, or a list of features"):
        FeatureLookup(entity="customer_id")
    with pytest.raises(ValueError, match="defaults are used only with"):
        FeatureLookup(entity="customer_id", service="s", defaults={"a": 1.0})
    with pytest.raises(ValueError, match="expected view:feature"):
        FeatureLookup(entity="customer_id", features=("a",))


# ------------------------------------------------------------------------------------------ the runner
class Store:
    """An online store in memory: id -> (values of a and b, age in seconds); ``down`` makes reads fail."""

    def __init__(self, rows: dict[int, tuple[float, float, float]], ttl_s: float = 3600.0) -> None:
        self.rows = rows
        self.ttl_s = ttl_s
        self.names = ("a", "b")
        self.down = False
        self.reads: list[list[int]] = []

    def read(self, ids: Sequence[Any], *, now: float | None = None) -> FeatureBatch:
        if self.down:
            raise ConnectionError("Connection refused")
        self.reads.append([int(i) for i in ids])
        values = np.full((len(ids), 2), np.nan)
        age = np.full((len(ids), 2), np.inf)
        for row, i in enumerate(ids):
            if int(i) in self.rows:
                a, b, seconds = self.rows[int(i)]
                age[row] = seconds
                if seconds <= self.ttl_s:
                    values[row] = (a, b)
        return FeatureBatch(self.names, values, age)


class Model:
    """Sums its inputs per row; keeps what it was given."""

    output_names = ("predictions",)

    def __init__(self) -> None:
        self.seen: list[Decoded] = []

    def run(self, items: Sequence[Decoded]) -> dict[str, np.ndarray[Any, Any]]:
        self.seen.extend(items)
        return {"predictions": np.concatenate([item.matrix for item in items]).sum(axis=1)}


def _request(ids: list[int], c: list[float]) -> Decoded:
    columns = {"customer_id": np.array(ids, dtype=np.int64), "c": np.array(c)}
    return Decoded(
        matrix=np.empty((len(ids), 0)),
        rows=len(ids),
        columns=columns,
        request_id=None,
        outputs=None,
        parameters={},
    )


def _runner(lookup: FeatureLookup, store: Store) -> tuple[JoiningRunner, Model]:
    model = Model()
    plan = plan_lookup(lookup, SCHEMA, CATALOG)
    return JoiningRunner(model, plan, [store], store="memory"), model


def test_one_read_per_batch_and_only_the_refused_request_fails() -> None:
    store = Store({1: (1.0, 2.0, 10.0), 3: (3.0, 4.0, 20.0), 4: (5.0, 6.0, 7200.0)})
    runner, model = _runner(FeatureLookup(entity="customer_id", service="svc"), store)
    outputs = runner.run([_request([1], [0.5]), _request([3, 2, 4], [1, 1, 1]), _request([3], [0.25])])
    assert store.reads == [[1, 3, 2, 4, 3]]  # one read for the whole batch
    assert list(outputs.refused) == [1]
    error = outputs.refused[1]
    assert isinstance(error, MissingFeaturesError)
    assert error.status_code == 422
    assert "customer_id=2: no value for a, b" in error.message
    assert "customer_id=4: a, b older than the view's TTL" in error.message
    assert outputs["predictions"] == pytest.approx([1 + 2 + 0.5, 3 + 4 + 0.25])
    (joined,) = model.seen
    assert joined.columns is not None
    assert joined.columns["b"].dtype == np.int64  # typed as the signature says
    assert outputs.inputs is not None
    assert outputs.inputs["customer_id"].tolist() == [1, 3]
    assert outputs.lookup is not None
    assert outputs.lookup["feature_age_s"].tolist() == [10.0, 20.0]


def test_defaults_fill_what_is_missing_and_are_counted_per_row() -> None:
    store = Store({1: (1.0, 2.0, 10.0)})
    lookup = FeatureLookup(
        entity="customer_id", service="svc", missing="default", defaults={"a": -1.0, "b": 7.0}
    )
    runner, _model = _runner(lookup, store)
    outputs = runner.run([_request([1, 2], [0.0, 0.0])])
    assert not outputs.refused
    assert outputs["predictions"] == pytest.approx([3.0, 6.0])
    assert outputs.lookup is not None
    assert outputs.lookup["features_defaulted"].tolist() == [0, 2]
    assert np.isnan(outputs.lookup["feature_age_s"][1])


def test_a_store_that_does_not_answer_is_a_503_and_the_next_batch_reads_again() -> None:
    store = Store({1: (1.0, 2.0, 10.0)})
    runner, _model = _runner(FeatureLookup(entity="customer_id", service="svc"), store)
    store.down = True
    with pytest.raises(UnavailableError, match=r"online feature store \(memory\) cannot be read: .*refused"):
        runner.run([_request([1], [0.0])])
    store.down = False
    assert runner.run([_request([1], [0.0])])["predictions"] == pytest.approx([3.0])
