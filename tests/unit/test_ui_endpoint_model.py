"""The endpoint page's summary of a feature lookup: how the endpoint is called, what it fetches, and what a
missing feature does; escaped on the page, and linked to the monitor that draws its feature age."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bokeh.document import Document

from workbench.records.endpoints import EndpointRecord
from workbench.records.monitoring import MonitorRecord
from workbench.specs.endpoint import EndpointSpec
from workbench.specs.features import FeatureLookup
from workbench.specs.monitor import MonitorSpec
from workbench.ui.actions import ActionDesk
from workbench.ui.feed import Snapshot, Update
from workbench.ui.models.endpoint import EndpointModel, lookup_summary
from workbench.ui.views.endpoint import EndpointView

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _record(name: str, features: dict[str, Any] | None = None) -> EndpointRecord:
    spec: dict[str, Any] = {"name": name, "routes": [{"model": "churn", "version": 1, "weight": 100}]}
    if features is not None:
        spec["features"] = features
    return EndpointRecord(spec=EndpointSpec.model_validate(spec), revision=2, created_at=T0, updated_at=T0)


def test_a_lookup_is_summarised_by_its_entity_what_it_fetches_and_its_missing_policy() -> None:
    service = FeatureLookup(entity="customer_id", service="churn_features")
    assert lookup_summary(service) == (
        "called with customer_id, features from feature service churn_features, missing: refuse"
    )
    listed = FeatureLookup(
        entity="cid",
        join_key="customer_id",
        features=("customer_features:tenure_months", "orders:count_7d", "customer_features:plan"),
        missing="default",
        defaults={"tenure_months": 0.0, "count_7d": 0.0, "plan": 1.0},
    )
    assert lookup_summary(listed) == (
        "called with cid (Feast join key customer_id), features from 3 features of views "
        "customer_features, orders, missing: default"
    )
    one = FeatureLookup(entity="device", join_key="device", features=("sensors:temp",))
    assert (
        lookup_summary(one) == "called with device, features from 1 feature of view sensors, missing: refuse"
    )


class _Feed:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def traffic(self, endpoint: str, seconds: float = 900.0) -> dict[str, Any]:
        return {}


def _page(snapshot: Snapshot, endpoint: str) -> tuple[EndpointModel, EndpointView]:
    desk = ActionDesk(lambda actor: None, user=lambda: "alice")  # type: ignore[arg-type,return-value]
    model = EndpointModel(_Feed(snapshot), desk, live=False, endpoint=endpoint)  # type: ignore[arg-type]
    view = EndpointView(model=model)
    view.__panel__().get_root(Document())
    return model, view


def test_the_summary_says_how_an_endpoint_with_a_lookup_is_called_and_links_its_monitor() -> None:
    by_id = _record("by-id", {"entity": "customer_id", "service": "churn_features"})
    plain = _record("churn")
    snapshot = Snapshot(endpoints=(by_id, plain))
    model, view = _page(snapshot, "by-id")
    summary = str(view._summary.object)
    assert 'data-testid="feature-lookup"' in summary
    assert "called with customer_id, features from feature service churn_features, missing: refuse" in summary
    assert "feature-store-link" not in summary  # no monitor watches it yet

    # A monitor created meanwhile: the summary links to its drift page (feature age, lookup time).
    monitor = MonitorRecord(
        spec=MonitorSpec(name="by-id-mon", endpoint="by-id"), created_at=T0, updated_at=T0
    )
    watched = Snapshot(endpoints=snapshot.endpoints, monitors=(monitor,))
    model._on_update(Update(1, watched, frozenset({"state"}), {}, {}))
    assert 'href="./drift?monitor=by-id-mon" data-testid="feature-store-link"' in str(view._summary.object)

    # An endpoint called with its features inline: its summary as before.
    _, view = _page(snapshot, "churn")
    assert "feature-lookup" not in str(view._summary.object)
    assert "called with" not in str(view._summary.object)


def test_the_lookup_summary_is_escaped_on_the_page() -> None:
    # Names are validated as Feast names; the page escapes whatever it is given all the same.
    lookup = FeatureLookup.model_construct(entity="<b>id</b>", service="a&b", missing="refuse")
    spec = EndpointSpec.model_validate(
        {"name": "odd", "routes": [{"model": "m", "version": 1, "weight": 100}]}
    )
    record = EndpointRecord(
        spec=spec.model_copy(update={"features": lookup}), revision=1, created_at=T0, updated_at=T0
    )
    _, view = _page(Snapshot(endpoints=(record,)), "odd")
    summary = str(view._summary.object)
    assert "called with &lt;b&gt;id&lt;/b&gt;, features from feature service a&amp;b" in summary
    assert "<b>id" not in summary
