"""The same drift check as :mod:`workbench.monitoring.drift`, run by Evidently, for reports people read.

The live scores are cheap because they work from a binned reference; Evidently re-reads every row and
renders a report a person can open. The two must not tell different stories, so the adapter hands
Evidently the live profile's method per column (:func:`methods_for`) and the same thresholds and drift
share, instead of letting it choose by reference size (its choice changes at 1,000 reference rows).

Evidently 0.7's new API (``Report``, ``Dataset``, ``DataDefinition``, ``evidently.presets``) is used;
the legacy ``evidently.report``/``ColumnMapping`` API is gone. Evidently is imported inside the functions
only: its import takes seconds and pulls in most of its dependencies, a cost only report-making code
should pay. It ships no type information, so its objects are typed ``Any`` here.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.errors import ValidationError, WorkbenchError
from workbench.monitoring.drift import ReferenceProfile

__all__ = ["EvidentlyColumn", "EvidentlyDrift", "evidently_drift", "methods_for"]

_VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
_DRIFTED_COUNT = "evidently:metric_v2:DriftedColumnsCount"


@dataclass(frozen=True)
class EvidentlyColumn:
    """One column as Evidently judged it, shaped like the live ``ColumnDrift`` so the two line up."""

    column: str
    #: The method as Evidently reports it: the name passed in, or its display name when it chose itself.
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class EvidentlyDrift:
    columns: tuple[EvidentlyColumn, ...]
    share_drifted: float
    dataset_drifted: bool
    #: Wall time of building Evidently's datasets and running the report; file exports not included.
    seconds: float

    def column(self, name: str) -> EvidentlyColumn:
        for column in self.columns:
            if column.column == name:
                return column
        raise KeyError(name)


def methods_for(profile: ReferenceProfile) -> dict[str, str]:
    """Each column's live method, to pass to Evidently so both compute the same statistic."""
    return {column.name: column.default_method for column in profile.columns}


def _quiet_evidently() -> None:
    """No network here, and none wanted: Evidently's new API reports usage unless ``DO_NOT_TRACK`` is
    set (``evidently/telemetry.py``); the legacy parts read ``EVIDENTLY_DISABLE_TELEMETRY``, and the
    underlying ``iterative_telemetry`` its own ``ITERATIVE_DO_NOT_TRACK``. Must run before the import."""
    os.environ.setdefault("EVIDENTLY_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("ITERATIVE_DO_NOT_TRACK", "1")


def _check_columns(reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str]) -> None:
    if not columns:
        raise ValidationError("no column to compare: pass at least one column")
    for side, frame in (("reference", reference), ("current", current)):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValidationError(
                f"the {side} dataset lacks column(s) {missing}",
                side=side,
                missing=missing,
                present=[str(c) for c in frame.columns],
            )
        if frame.empty:
            raise ValidationError(f"the {side} dataset has no rows", side=side)


def _parse(
    result: Mapping[str, Any], columns: Sequence[str], drift_share: float
) -> tuple[tuple[EvidentlyColumn, ...], float, bool]:
    """Per-column verdicts from Evidently's own tests, not re-derived here: for a p-value method
    (``ks``, ``chisquare``...) drift is ``score < threshold``, for a distance ``score >= threshold``. The
    share comes from ``DriftedColumnsCount``. Both are in the snapshot's plain ``dict()``, which is stable
    across renderings, unlike the widgets."""
    failed: dict[str, bool] = {}
    for test in result.get("tests", []):
        config = test.get("metric_config") or {}
        if (config.get("params") or {}).get("type") == _VALUE_DRIFT:
            failed[str(config.get("metric_id"))] = test.get("status") == "FAIL"
    by_column: dict[str, EvidentlyColumn] = {}
    share: float | None = None
    for metric in result.get("metrics", []):
        config = metric.get("config") or {}
        kind = config.get("type")
        if kind == _VALUE_DRIFT:
            score = float(metric["value"])
            threshold = float(config["threshold"])
            name = str(config["column"])
            if str(metric.get("id")) not in failed:
                raise WorkbenchError(f"Evidently returned no drift test for column {name!r}", column=name)
            drifted = failed[str(metric.get("id"))]
            by_column[name] = EvidentlyColumn(name, str(config["method"]), score, threshold, drifted)
        elif kind == _DRIFTED_COUNT:
            share = float(metric["value"]["share"])
    missing = [c for c in columns if c not in by_column]
    if missing:
        raise WorkbenchError(f"Evidently returned no drift score for column(s) {missing}", missing=missing)
    ordered = tuple(by_column[c] for c in columns)
    if share is None:
        share = sum(c.drifted for c in ordered) / len(ordered)
    return ordered, share, share >= drift_share


def evidently_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: Sequence[str],
    categorical: Sequence[str],
    methods: Mapping[str, str],
    thresholds: Mapping[str, float] | None = None,
    drift_share: float = 0.5,
    html_path: Path | None = None,
    json_path: Path | None = None,
) -> EvidentlyDrift:
    """Run Evidently's ``DataDriftPreset`` on ``columns`` and return its scores and verdicts.

    Column types are declared, not inferred: Evidently would otherwise call an integer-coded category
    numerical. A column without an entry in ``methods`` gets Evidently's own choice, which may differ
    from the live one; pass :func:`methods_for` of the live profile to compare like with like. Dataset
    drift is ``share_drifted >= drift_share``, as in Evidently and the live check.
    """
    columns = list(dict.fromkeys(columns))
    _check_columns(reference, current, columns)
    chosen = set(columns)
    categorical_columns = [c for c in dict.fromkeys(categorical) if c in chosen]
    numerical_columns = [c for c in columns if c not in set(categorical_columns)]
    per_column_method = {c: str(m) for c, m in methods.items() if c in chosen}
    per_column_threshold = {c: float(t) for c, t in (thresholds or {}).items() if c in chosen}

    _quiet_evidently()
    with warnings.catch_warnings():
        # Its import trips deprecations in its own dependencies (litestar, numpy.core), nothing a caller
        # can act on; under ``-W error`` (our test suite) they would make the import itself fail.
        warnings.simplefilter("ignore", DeprecationWarning)
        from evidently import DataDefinition, Dataset, Report  # type: ignore[import-untyped]
        from evidently.presets import DataDriftPreset  # type: ignore[import-untyped]

    started = time.perf_counter()
    definition: Any = DataDefinition(
        numerical_columns=numerical_columns, categorical_columns=categorical_columns
    )
    reference_data: Any = Dataset.from_pandas(reference.loc[:, columns], data_definition=definition)
    current_data: Any = Dataset.from_pandas(current.loc[:, columns], data_definition=definition)
    preset: Any = DataDriftPreset(
        columns=columns,
        drift_share=drift_share,
        per_column_method=per_column_method or None,
        per_column_threshold=per_column_threshold or None,
    )
    report: Any = Report([preset], include_tests=True)
    try:
        snapshot: Any = report.run(current_data, reference_data)
    except ValueError as exc:
        # Evidently's refusals of the input (unknown method, a method that does not fit the column's
        # type, a non-numeric or empty column) are ValueErrors: the caller's to fix, as our own checks.
        raise ValidationError(f"Evidently refused the drift check: {exc}", methods=per_column_method) from exc
    result: dict[str, Any] = snapshot.dict()
    seconds = time.perf_counter() - started
    parsed_columns, share, dataset_drifted = _parse(result, columns, drift_share)

    if html_path is not None:
        Path(html_path).parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(html_path))  # save_html silently ignores anything but a str
    if json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(snapshot.json(), encoding="utf-8")
    return EvidentlyDrift(
        columns=parsed_columns, share_drifted=share, dataset_drifted=dataset_drifted, seconds=seconds
    )
