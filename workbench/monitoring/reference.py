"""What a monitor compares live traffic with: the serving version's registered reference dataset.

Features are profiled once (:mod:`workbench.monitoring.drift`). Prediction drift needs the model's
outputs on the reference too, and the control plane never loads a model: it has the serving version
score the reference rows itself, through the router with the probe header (answered like traffic,
never logged as traffic). The task (binary classification or regression) comes from the reference's
target column, so performance metrics know what to compute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import httpx
import numpy as np
import orjson
import pandas as pd

from workbench.errors import NotFoundError, ValidationError
from workbench.monitoring.drift import ReferenceProfile, profile_column
from workbench.monitoring.window import PREDICTION
from workbench.protocol import PROBE_HEADER, VERSION_SELECT_HEADER
from workbench.rollouts.gate import input_columns
from workbench.specs.monitor import MonitorSpec

if TYPE_CHECKING:
    from workbench.monitoring.plane import MonitoringPlane

SCORING_BATCH = 500
Task = Literal["binary", "regression"]


@dataclass(frozen=True)
class MonitorReference:
    model: str
    version: int
    frame: pd.DataFrame
    columns: tuple[str, ...]
    categorical: tuple[str, ...]
    features: ReferenceProfile
    predictions: ReferenceProfile | None
    target: str | None
    task: Task | None
    #: Why the reference has no predictions (prediction drift is then off); a broken model must still be
    #: watchable for errors, latency and input drift.
    scoring_error: str | None = None
    #: The version's own performance on its reference (its scores against the reference's target): what
    #: live accuracy and the CBPE estimate are compared with.
    baseline: dict[str, Any] | None = None


def primary_version(plane: MonitoringPlane, endpoint: str) -> tuple[str, int]:
    """The version with the most live traffic: the one whose reference the endpoint is judged by."""
    routes = [r for r in plane.get_endpoint(endpoint).spec.routes if r.weight > 0]
    if not routes:
        raise ValidationError(f"endpoint {endpoint!r} has no live version to monitor", endpoint=endpoint)
    best = max(routes, key=lambda r: r.weight)
    return best.model, best.version


def check_columns(spec: MonitorSpec, frame: pd.DataFrame, signature_columns: list[str]) -> tuple[str, ...]:
    """The watched columns, refused at creation when the reference does not have them."""
    wanted = list(spec.drift.columns) if spec.drift.columns is not None else signature_columns
    if not wanted:
        raise ValidationError(
            "the model signature names no input column present in its reference dataset: "
            "name the columns to watch (drift.columns)",
            reference_columns=list(frame.columns),
        )
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise ValidationError(
            f"the reference dataset does not match: it lacks column(s) {missing}",
            missing=missing,
            reference_columns=list(frame.columns),
        )
    bad = [c for c in wanted if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise ValidationError(
            f"column(s) {bad} are not numeric; Workbench monitors numeric inputs", columns=bad
        )
    unknown = [c for c in spec.drift.methods if c not in wanted]
    if unknown:
        raise ValidationError(
            f"drift.methods names column(s) {unknown} that are not watched", columns=unknown
        )
    return tuple(wanted)


def build_reference(plane: MonitoringPlane, spec: MonitorSpec) -> MonitorReference:
    model, version = primary_version(plane, spec.endpoint)
    info = plane.registry.get_version(model, version)
    if info.reference is None:
        raise ValidationError(
            f"models:/{model}/{version} (serving {spec.endpoint!r}) has no reference dataset to compare with: "
            "register one with the version",
            model=model,
            version=version,
        )
    frame = plane.registry.load_reference(model, version)
    columns = check_columns(spec, frame, input_columns(info.signature, frame))
    categorical = tuple(c for c in spec.drift.categorical if c in columns)
    features = ReferenceProfile.from_frame(frame, columns, categorical=categorical)
    target = info.reference.target
    scoring_error = None
    try:
        scores = score_reference(plane, spec.endpoint, version, frame[list(columns)])
    except (NotFoundError, ValidationError) as exc:
        scores, scoring_error = None, exc.message
    predictions = (
        ReferenceProfile((profile_column(PREDICTION, scores),))
        if scores is not None and scores.size
        else None
    )
    task = _task(frame, target, scores)
    return MonitorReference(
        model=model,
        version=version,
        frame=frame,
        columns=columns,
        categorical=categorical,
        features=features,
        predictions=predictions,
        target=target,
        task=task,
        scoring_error=scoring_error,
        baseline=_baseline(task, scores, frame[target] if target in frame.columns else None),
    )


def _baseline(task: Task | None, scores: Any, labels: Any) -> dict[str, Any] | None:
    from workbench.monitoring.performance import calibration_error, estimate_performance, labelled_metrics

    if task is None or scores is None or labels is None or len(labels) != len(scores):
        return None
    values = np.asarray(labels, dtype=np.float64)
    baseline = labelled_metrics(task, scores, values).to_dict()
    if task == "binary":
        baseline["calibration_error"] = calibration_error(scores, values)
        baseline["estimated"] = estimate_performance(scores).to_dict()
    return baseline


def _task(frame: pd.DataFrame, target: str | None, scores: Any) -> Task | None:
    if target is not None and target in frame.columns:
        values = pd.unique(frame[target].dropna())
        return "binary" if set(np.asarray(values, dtype=float).tolist()) <= {0.0, 1.0} else "regression"
    if scores is not None and scores.size and float(np.min(scores)) >= 0 and float(np.max(scores)) <= 1:
        return "binary"
    return None


def score_reference(
    plane: MonitoringPlane, endpoint: str, version: int, frame: pd.DataFrame
) -> np.ndarray[Any, np.dtype[np.float64]] | None:
    """The version's scores on the reference rows, or None when nothing serves it here."""
    router = plane.serving.status().get("router_url")
    if not router:
        return None
    url = f"{router}/endpoints/{endpoint}/invocations"
    headers = {
        "content-type": "application/json",
        VERSION_SELECT_HEADER: str(version),
        PROBE_HEADER: "1",
    }
    scores: list[np.ndarray[Any, np.dtype[np.float64]]] = []
    with httpx.Client(timeout=60.0) as client:
        for start in range(0, len(frame), SCORING_BATCH):
            chunk = frame.iloc[start : start + SCORING_BATCH]
            split = chunk.to_dict(orient="split")
            body = orjson.dumps({"dataframe_split": {"columns": split["columns"], "data": split["data"]}})
            try:
                response = client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                raise NotFoundError(f"cannot score the reference through {endpoint!r}: {exc}") from None
            if response.status_code != 200:
                raise ValidationError(
                    f"version {version} of {endpoint!r} refused the reference rows: {response.text[:300]}"
                )
            predictions = np.asarray(response.json()["predictions"], dtype=np.float64)
            scores.append(predictions.reshape(len(chunk), -1)[:, -1])
    return np.concatenate(scores) if scores else None
