"""In the replica: a batch of requests carrying entity ids becomes the model's inputs, then its outputs.

:class:`JoiningRunner` wraps the model's runner. Per batch it reads each planned feature view once for
all the batch's ids (:mod:`workbench.features.online`), applies the endpoint's missing-feature policy,
assembles the model's inputs in signature order (fetched features beside the request-time ones), and
runs the model once. What it used goes back with the outputs (:class:`RunOutputs`): the joined inputs,
logged in place of the ids so monitoring and drift see what the model saw, and each row's feature age.

A request whose entity lacks a fresh value is refused alone (422 naming the ids and features) when the
policy says refuse; the rest of its batch is answered. An online store that cannot be read fails the
batch with a 503 saying why; the next batch reads it again, so serving recovers when the store does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram

from workbench.errors import UnavailableError, ValidationError
from workbench.features.lookup import LookupPlan
from workbench.features.online import FeatureBatch, Ids, OnlineReader
from workbench.serving.batcher import RunOutputs
from workbench.serving.codec import Decoded
from workbench.serving.model import Runner
from workbench.serving.schema import COLUMN_NUMPY_DTYPES, NUMERIC_COLUMN_TYPES

log = logging.getLogger("workbench.replica")

Array = np.ndarray[Any, Any]
#: Ids named in one refusal's message (all are in its details).
SHOWN_IDS = 5
AGE_BUCKETS = (1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86_400, 7 * 86_400)


class MissingFeaturesError(ValidationError):
    """An entity has no fresh value for a feature the model needs, and the endpoint refuses then."""

    error_type: ClassVar[str] = "missing_features"


class LookupMetrics:
    """The lookup's Prometheus series, in the replica's registry."""

    def __init__(self, registry: CollectorRegistry, endpoint: str, version: str) -> None:
        labels = {"endpoint": endpoint, "version": version}
        self.seconds = Histogram(
            "workbench_feature_lookup_seconds",
            "Online-store read of one batch's features",
            ["endpoint", "version"],
            buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0),
            registry=registry,
        ).labels(**labels)
        values = Counter(
            "workbench_feature_values",
            "Feature values read: hit, stale (older than the view's TTL) or absent",
            ["endpoint", "version", "outcome"],
            registry=registry,
        )
        self.hit, self.stale, self.absent = (
            values.labels(outcome=o, **labels) for o in ("hit", "stale", "absent")
        )
        rows = Counter(
            "workbench_feature_rows",
            "Rows by what the lookup did: served, served with defaults, refused",
            ["endpoint", "version", "outcome"],
            registry=registry,
        )
        self.served, self.defaulted, self.refused = (
            rows.labels(outcome=o, **labels) for o in ("served", "defaulted", "refused")
        )
        self.age = Histogram(
            "workbench_feature_age_seconds",
            "Age of the oldest fetched feature of a served row",
            ["endpoint", "version"],
            buckets=AGE_BUCKETS,
            registry=registry,
        ).labels(**labels)


class JoiningRunner:
    def __init__(
        self,
        inner: Runner,
        plan: LookupPlan,
        readers: Sequence[OnlineReader],
        *,
        store: str,
        metrics: LookupMetrics | None = None,
    ) -> None:
        self.inner = inner
        self.plan = plan
        self.readers = list(readers)
        self.output_names = inner.output_names
        self.store = store
        self.metrics = metrics
        schema = plan.model_schema
        assert schema.columns is not None
        self._columns = schema.columns
        self._numeric = all(c.dtype in NUMERIC_COLUMN_TYPES for c in schema.columns)
        fetched = plan.fetched
        self._fetched = [(f.input, f.read, self.readers[f.read].names.index(f.feature)) for f in fetched]
        self._defaults = np.array([plan.defaults.get(f.input, np.nan) for f in fetched])

    def attach_metrics(self, registry: CollectorRegistry, endpoint: str, version: str) -> None:
        """Called by the replica's app with its Prometheus registry."""
        self.metrics = LookupMetrics(registry, endpoint, version)

    def read(self, ids: Ids) -> list[FeatureBatch]:
        """One read per view for all ``ids``; a store that cannot be read is a 503 with its reason."""
        try:
            return [reader.read(ids) for reader in self.readers]
        except Exception as exc:
            log.warning("online store %s cannot be read: %s", self.store, exc)
            raise UnavailableError(
                f"the online feature store ({self.store}) cannot be read: {type(exc).__name__}: {exc}",
                store=self.store,
            ) from None

    def run(self, items: Sequence[Decoded]) -> RunOutputs:
        plan = self.plan
        ids = _concat([_column(item, plan.entity) for item in items])
        started = time.perf_counter()
        batches = self.read(ids)
        lookup_s = time.perf_counter() - started
        values = np.empty((len(ids), len(self._fetched)))
        age = np.empty_like(values)
        for column, (_name, read, index) in enumerate(self._fetched):
            values[:, column] = batches[read].values[:, index]
            age[:, column] = batches[read].age_s[:, index]
        missing = np.isnan(values)
        self._count(lookup_s, missing, age)

        refused: dict[int, Exception] = {}
        keep = np.ones(len(ids), dtype=bool)
        defaulted_rows = np.zeros(len(ids), dtype=np.int64)
        if missing.any():
            if plan.missing == "refuse":
                offset = 0
                for index, item in enumerate(items):
                    span = slice(offset, offset + item.rows)
                    offset += item.rows
                    if missing[span].any():
                        refused[index] = self._refusal(ids[span], missing[span], age[span])
                        keep[span] = False
            else:
                defaulted_rows = missing.sum(axis=1)
                values = np.where(missing, self._defaults, values)
        if self.metrics is not None:
            self.metrics.refused.inc(int((~keep).sum()))
            self.metrics.defaulted.inc(int((defaulted_rows[keep] > 0).sum()))
            self.metrics.served.inc(int(keep.sum()))
            for row_age in _oldest(age, missing)[keep]:
                if np.isfinite(row_age):
                    self.metrics.age.observe(float(row_age))

        answered = [item for index, item in enumerate(items) if index not in refused]
        if not answered:
            empty = {name: np.empty(0) for name in self.output_names}
            return RunOutputs(empty, refused=refused, lookup_ms=round(lookup_s * 1000, 4))
        kept_values = values[keep]
        columns = self._model_columns(answered, kept_values)
        rows = len(kept_values)
        matrix = (
            np.column_stack([columns[c.name].astype(np.float32) for c in self._columns])
            if self._numeric
            else np.empty((rows, 0), dtype=np.float32)
        )
        joined = Decoded(
            matrix=matrix, rows=rows, columns=columns, request_id=None, outputs=None, parameters={}
        )
        outputs = self.inner.run([joined])
        logged = {plan.entity: ids[keep], **columns}
        lookup = {
            "feature_age_s": _oldest(age, missing)[keep],
            "features_defaulted": defaulted_rows[keep],
        }
        return RunOutputs(
            outputs, inputs=logged, lookup=lookup, refused=refused, lookup_ms=round(lookup_s * 1000, 4)
        )

    def _model_columns(self, answered: Sequence[Decoded], values: Array) -> dict[str, Array]:
        """Every model input in signature order, typed as the signature says."""
        fetched_at = {name: column for column, (name, _read, _index) in enumerate(self._fetched)}
        columns: dict[str, Array] = {}
        for spec in self._columns:
            dtype = COLUMN_NUMPY_DTYPES[spec.dtype]
            if spec.name in fetched_at:
                columns[spec.name] = values[:, fetched_at[spec.name]].astype(dtype)
            else:
                columns[spec.name] = _concat([_column(item, spec.name) for item in answered])
        return columns

    def _count(self, lookup_s: float, missing: Array, age: Array) -> None:
        if self.metrics is None:
            return
        self.metrics.seconds.observe(lookup_s)
        absent = int(np.isinf(age).sum())
        misses = int(missing.sum())
        self.metrics.hit.inc(missing.size - misses)
        self.metrics.absent.inc(absent)
        self.metrics.stale.inc(misses - absent)

    def _refusal(self, ids: Array, missing: Array, age: Array) -> MissingFeaturesError:
        plan = self.plan
        names = [name for name, _read, _index in self._fetched]
        entities: dict[str, dict[str, list[str]]] = {}
        for row in np.flatnonzero(missing.any(axis=1)):
            stale = [names[c] for c in np.flatnonzero(missing[row] & np.isfinite(age[row]))]
            absent = [names[c] for c in np.flatnonzero(missing[row] & np.isinf(age[row]))]
            entities[str(ids[row])] = {"absent": absent, "stale": stale}
        shown = []
        for entity, why in list(entities.items())[:SHOWN_IDS]:
            parts = []
            if why["absent"]:
                parts.append(f"no value for {_list(why['absent'])}")
            if why["stale"]:
                parts.append(f"{_list(why['stale'])} older than the view's TTL")
            shown.append(f"{plan.entity}={entity}: {' and '.join(parts)}")
        more = f" (and {len(entities) - SHOWN_IDS} more)" if len(entities) > SHOWN_IDS else ""
        return MissingFeaturesError(
            "missing features, and this endpoint refuses rather than use defaults: "
            + "; ".join(shown)
            + more,
            entity=plan.entity,
            entities=entities,
        )


def _column(item: Decoded, name: str) -> Array:
    if item.columns is None or name not in item.columns:  # the request schema makes it required
        raise ValidationError(f"the request has no {name!r}")
    return item.columns[name]


def _concat(parts: Sequence[Array]) -> Array:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _oldest(age: Array, missing: Array) -> Array:
    """Per row, the age of its oldest fetched value that was used (NaN when every one was missing)."""
    if age.shape[1] == 0:
        return np.full(age.shape[0], np.nan)
    present = np.where(missing, -np.inf, age)
    oldest = present.max(axis=1)
    return np.where(np.isneginf(oldest), np.nan, oldest)


def _list(names: Sequence[str]) -> str:
    return ", ".join(names[:8]) + (f" (+{len(names) - 8})" if len(names) > 8 else "")
