"""What a Feast registry holds, as plain data: entities, feature views (features, TTL, how far they were
materialised) and feature services. Read by the API, the CLI and the deploy-time checks of a lookup."""

from __future__ import annotations

from typing import Any


def describe(store: Any) -> dict[str, Any]:
    """Entities, feature views and feature services of ``store`` (a Feast ``FeatureStore``), sorted by name."""
    store.refresh_registry()
    entities = [
        {"name": e.name, "join_keys": [e.join_key], "value_type": e.value_type.name}
        for e in store.list_entities()
        if e.name != "__dummy"
    ]
    views = []
    for view in store.list_feature_views():
        intervals = list(view.materialization_intervals or [])
        views.append(
            {
                "name": view.name,
                "entities": list(view.entities),
                "features": [{"name": f.name, "dtype": str(f.dtype)} for f in view.features],
                "ttl_s": view.ttl.total_seconds() if view.ttl else None,
                "online": bool(view.online),
                "materialized_until": max(end for _, end in intervals).isoformat() if intervals else None,
            }
        )
    services = [
        {
            "name": service.name,
            "features": [
                f"{projection.name_to_use()}:{feature.name}"
                for projection in service.feature_view_projections
                for feature in projection.features
            ],
        }
        for service in store.list_feature_services()
    ]
    return {
        "entities": sorted(entities, key=lambda e: e["name"]),
        "feature_views": sorted(views, key=lambda v: v["name"]),
        "feature_services": sorted(services, key=lambda s: s["name"]),
    }
