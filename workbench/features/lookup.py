"""From an endpoint's lookup, a model's signature and the Feast registry to what a replica reads per batch.

:func:`plan_lookup` is pure: it takes the registry as :func:`workbench.features.catalog.describe` gives
it, so the control plane runs it at deploy time (a refusal then names everything that does not fit, and
nothing is started) and each replica runs it again at start-up, on the registry it loaded, to know what
to read. The plan says which column of a request holds the id, which features of which view to read
(only those the model takes), which model input each fetched feature fills, and what a request must
carry besides the id (the request-time features).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import ValidationError
from workbench.serving.schema import NUMERIC_COLUMN_TYPES, ColumnSpec, ModelSchema
from workbench.specs.features import FeatureLookup

#: Feast value types an entity id may have, and the request column type that carries each.
KEY_TYPES = {"INT64": "int64", "INT32": "int64", "STRING": "string"}
REQUEST_TYPES = {"int64": "long", "string": "string"}


@dataclass(frozen=True)
class ViewRead:
    """One online read per batch: these features of one view, by the entity's join key."""

    view: str
    features: tuple[str, ...]
    ttl_s: float | None


@dataclass(frozen=True)
class Fetched:
    """A model input filled from a fetched feature."""

    input: str
    read: int  # index into LookupPlan.reads
    feature: str


@dataclass(frozen=True)
class LookupPlan:
    entity: str
    join_key: str
    key_type: str  # "int64" | "string"
    reads: tuple[ViewRead, ...]
    #: Model inputs in signature order: a fetched feature, or None for a request-time input.
    sources: tuple[tuple[str, Fetched | None], ...]
    model_schema: ModelSchema
    request_schema: ModelSchema
    missing: str
    defaults: Mapping[str, float] = field(default_factory=dict)

    @property
    def fetched(self) -> tuple[Fetched, ...]:
        return tuple(source for _, source in self.sources if source is not None)

    @property
    def request_time(self) -> tuple[str, ...]:
        return tuple(name for name, source in self.sources if source is None)

    def describe(self) -> dict[str, Any]:
        """As the API shows it: what a request carries and where each model input comes from."""
        return {
            "entity": self.entity,
            "join_key": self.join_key,
            "key_type": self.key_type,
            "request": [c.name for c in self.request_schema.columns or ()],
            "fetched": {f.input: f"{self.reads[f.read].view}:{f.feature}" for f in self.fetched},
            "missing": self.missing,
        }


def plan_lookup(lookup: FeatureLookup, schema: ModelSchema, catalog: Mapping[str, Any]) -> LookupPlan:
    """The plan, or a ``ValidationError`` listing every problem (so one deploy attempt shows them all)."""
    problems: list[str] = []
    entity_name, key_type = _entity(lookup, catalog, problems)
    refs = _refs(lookup, catalog, problems)
    views = {v["name"]: v for v in catalog.get("feature_views", [])}
    by_name: dict[str, list[tuple[str, str]]] = {}
    for view_name, feature in refs:
        view = views.get(view_name)
        if view is None:
            problems.append(f"no feature view named {view_name!r} (known: {_known(views)})")
            continue
        names = {f["name"]: f for f in view["features"]}
        if feature not in names:
            problems.append(
                f"feature view {view_name!r} has no feature {feature!r} (it has: {_known(names)})"
            )
            continue
        if entity_name is not None and list(view["entities"]) != [entity_name]:
            problems.append(
                f"feature view {view_name!r} is keyed by {view['entities']}, not by the entity {entity_name!r} "
                f"alone (lookups by a composite key are not supported)"
            )
            continue
        if not view.get("online", True):
            problems.append(f"feature view {view_name!r} is not served online (online=False)")
            continue
        if not view.get("materialized_until"):
            problems.append(
                f"feature view {view_name!r} was never materialised: run `workbench features materialize`"
            )
        if not _numeric_feast(names[feature]["dtype"]):
            problems.append(
                f"feature {view_name}:{feature} is {names[feature]['dtype']}: only numbers are served"
            )
        by_name.setdefault(feature, []).append((view_name, feature))
    fetched_refs = {f"{v}:{f}" for v, f in refs}

    inputs = _model_inputs(schema, problems)
    for name in sorted(set(lookup.inputs) - {n for n, _ in inputs}):
        problems.append(
            f"inputs maps {name!r}, which is not an input of the model (its inputs: {_names(inputs)})"
        )
    chosen: list[tuple[str, tuple[str, str] | None]] = []
    for name, column_type in inputs:
        target = lookup.inputs.get(name)
        ref: tuple[str, str] | None = None
        if target is not None:
            if ":" in target:
                if target in fetched_refs:
                    view_name, feature = target.split(":", 1)
                    ref = (view_name, feature)
                else:
                    problems.append(f"inputs maps {name!r} to {target!r}, which the lookup does not fetch")
            else:
                ref = _by_name(target, by_name, name, problems, mapped=True)
        elif name in by_name:
            ref = _by_name(name, by_name, name, problems, mapped=False)
        if ref is not None and column_type is not None and column_type not in NUMERIC_COLUMN_TYPES:
            problems.append(f"model input {name!r} is a {column_type} column: a fetched feature is a number")
        chosen.append((name, ref))
    if not any(ref is not None for _, ref in chosen) and not problems:
        problems.append(
            f"the lookup fetches none of the model's inputs ({_names(inputs)}): map them with `inputs`"
        )
    fetched_inputs = {name for name, ref in chosen if ref is not None}
    if lookup.missing == "default":
        lacking = sorted(fetched_inputs - set(lookup.defaults))
        if lacking:
            problems.append(f'missing="default" needs a default for every fetched input; none for {lacking}')
    extra = sorted(set(lookup.defaults) - fetched_inputs)
    if extra:
        problems.append(f"defaults name {extra}, which are not fetched inputs of the model")
    if entity_name is not None and lookup.entity in {n for n, ref in chosen if ref is not None}:
        problems.append(f"the entity column {lookup.entity!r} cannot also be a fetched input")
    if problems:
        raise ValidationError("the feature lookup does not fit: " + "; ".join(problems), problems=problems)

    reads: list[ViewRead] = []
    read_index: dict[str, int] = {}
    sources: list[tuple[str, Fetched | None]] = []
    wanted: dict[str, list[str]] = {}
    for _name, ref in chosen:
        if ref is not None and ref[1] not in wanted.setdefault(ref[0], []):
            wanted[ref[0]].append(ref[1])
    for view_name, features in wanted.items():
        read_index[view_name] = len(reads)
        reads.append(ViewRead(view_name, tuple(features), views[view_name].get("ttl_s")))
    for name, ref in chosen:
        sources.append((name, None if ref is None else Fetched(name, read_index[ref[0]], ref[1])))
    request_columns = [ColumnSpec(lookup.entity, REQUEST_TYPES[key_type or "int64"])]
    if schema.columns is not None:
        request_columns += [
            c for c in schema.columns if c.name not in fetched_inputs and c.name != lookup.entity
        ]
    return LookupPlan(
        entity=lookup.entity,
        join_key=lookup.key,
        key_type=key_type or "int64",
        reads=tuple(reads),
        sources=tuple(sources),
        model_schema=schema,
        request_schema=ModelSchema(columns=tuple(request_columns)),
        missing=lookup.missing,
        defaults=dict(lookup.defaults),
    )


def _entity(
    lookup: FeatureLookup, catalog: Mapping[str, Any], problems: list[str]
) -> tuple[str | None, str | None]:
    entities = catalog.get("entities", [])
    for entity in entities:
        if lookup.key in entity["join_keys"]:
            key_type = KEY_TYPES.get(str(entity["value_type"]))
            if key_type is None:
                problems.append(
                    f"entity {entity['name']!r} has ids of type {entity['value_type']}: "
                    f"lookups take {', '.join(KEY_TYPES)} ids"
                )
                return None, None
            return str(entity["name"]), key_type
    keys = sorted(k for e in entities for k in e["join_keys"])
    problems.append(
        f"no Feast entity has the join key {lookup.key!r} "
        f"(known join keys: {', '.join(keys) or 'none: run `workbench features apply`'})"
    )
    return None, None


def _refs(lookup: FeatureLookup, catalog: Mapping[str, Any], problems: list[str]) -> list[tuple[str, str]]:
    if lookup.service is None:
        refs = list(lookup.features)
    else:
        services = {s["name"]: s for s in catalog.get("feature_services", [])}
        service = services.get(lookup.service)
        if service is None:
            problems.append(f"no feature service named {lookup.service!r} (known: {_known(services)})")
            return []
        refs = list(service["features"])
    return [(ref.split(":", 1)[0], ref.split(":", 1)[1]) for ref in refs]


def _model_inputs(schema: ModelSchema, problems: list[str]) -> list[tuple[str, str | None]]:
    """(name, MLflow column type) per model input; a tensor's inputs are its positions, typed None."""
    if schema.columns is not None:
        return [(c.name, c.dtype) for c in schema.columns]
    problems.append(
        "the model's signature has no named columns: a lookup fills named inputs "
        "(log the model with a DataFrame input example)"
    )
    return []


def _by_name(
    feature: str,
    by_name: Mapping[str, Sequence[tuple[str, str]]],
    name: str,
    problems: list[str],
    *,
    mapped: bool,
) -> tuple[str, str] | None:
    found = by_name.get(feature, ())
    if len(found) == 1:
        return found[0]
    if not found:
        if mapped:
            problems.append(f"inputs maps {name!r} to {feature!r}, which the lookup does not fetch")
        return None
    views = ", ".join(f"{v}:{f}" for v, f in found)
    problems.append(
        f"model input {name!r} matches features of several views ({views}): map it to one in `inputs`"
    )
    return None


def _numeric_feast(dtype: str) -> bool:
    return any(kind in dtype for kind in ("Float", "Int", "Bool"))


def _known(mapping: Mapping[str, Any]) -> str:
    return ", ".join(sorted(mapping)) or "none"


def _names(inputs: Sequence[tuple[str, Any]]) -> str:
    names = [n for n, _ in inputs]
    shown = ", ".join(names[:12])
    return shown + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
