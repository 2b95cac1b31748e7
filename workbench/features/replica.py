"""A replica's start-up with a lookup: Feast loaded, the plan made on its registry, the readers warmed.

All of it happens before the replica reports ready, so no request pays for ``import feast`` (seconds),
the registry's first read or the online store's first connection. A store that does not answer at
start-up does not stop the replica: its requests get a 503 saying why until the store answers again.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from workbench.features.catalog import describe
from workbench.features.feast_import import skip_typechecks
from workbench.features.join import JoiningRunner
from workbench.features.lookup import plan_lookup
from workbench.features.online import open_reader
from workbench.serving.model import LoadedModel
from workbench.specs.features import FeatureLookup

log = logging.getLogger("workbench.replica")


def store_label(store: Any) -> str:
    """Where the online store is, for messages: ``sqlite PATH`` or ``redis HOST:PORT`` (no password)."""
    online = store.config.online_store
    kind = str(getattr(online, "type", "online store"))
    if kind == "sqlite":
        return f"sqlite {online.path}"
    connection = str(getattr(online, "connection_string", ""))
    host = connection.split(",", 1)[0]
    if "://" in host:
        parsed = urlparse(host)
        host = f"{parsed.hostname}:{parsed.port}"
    return f"{kind} {host}".strip()


def attach_lookup(model: LoadedModel, lookup: FeatureLookup, repo: Path) -> LoadedModel:
    """The model behind a :class:`JoiningRunner`, answering requests that carry ids (and request-time
    features); raises ``ValidationError`` when the registry no longer fits the lookup."""
    skip_typechecks()
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(repo))
    plan = plan_lookup(lookup, model.schema, describe(store))
    readers = [open_reader(store, r.view, r.features, plan.join_key, plan.key_type) for r in plan.reads]
    runner = JoiningRunner(model.runner, plan, readers, store=store_label(store))
    warm_ids: list[Any] = [0] if plan.key_type == "int64" else ["0"]
    try:
        runner.read(warm_ids)
    except Exception as exc:
        log.warning("feature lookup not warmed, the online store did not answer: %s", exc)
    details = {**model.details, "features": plan.describe()}
    return replace(model, runner=runner, schema=plan.request_schema, details=details)
