"""Labelled data for retraining: an endpoint's logged requests in a time window, joined with the
ground truth fed back for them.

Each row is one input row of a logged request (a batch request gives several rows, all with its label
only if it had one row: feedback labels a request, so multi-row requests are left out rather than
guessed). Shadow answers are skipped: the primary's answer is what the label judges.
"""

from __future__ import annotations

import time
from typing import Any

from workbench.errors import ValidationError
from workbench.monitoring.window import record_scores
from workbench.store.monitoring import FeedbackItem
from workbench.telemetry.tail import PredictionLogTail

MAX_ROWS = 200_000


def labelled_rows(
    directory: Any,
    labels: list[FeedbackItem],
    *,
    since: float,
    until: float,
    limit: int = MAX_ROWS,
) -> dict[str, Any]:
    """Columns of features, ``prediction``, ``label``, ``version``, ``request_id`` and ``ts``."""
    if until <= since:
        raise ValidationError("until must be after since", since=since, until=until)
    wanted = {item.request_id: item for item in labels if since <= item.predicted_at <= until}
    columns: dict[str, list[Any]] = {}
    meta: dict[str, list[Any]] = {"prediction": [], "label": [], "version": [], "request_id": [], "ts": []}
    features: list[str] | None = None
    skipped_batches = 0
    if wanted:
        tail = PredictionLogTail(directory, modified_since=since)
        while True:
            records = tail.poll()
            if not records:
                break
            for record in records:
                request_id = record.get("request_id")
                item = wanted.get(str(request_id)) if request_id else None
                if item is None or record.get("shadow"):
                    continue
                inputs = record.get("inputs")
                if not isinstance(inputs, dict) or "matrix" in inputs:
                    continue
                if int(record.get("rows") or 1) != 1:
                    skipped_batches += 1
                    continue
                if features is None:
                    features = sorted(inputs)
                    columns = {name: [] for name in features}
                if sorted(inputs) != features:
                    continue
                for name in features:
                    value = inputs[name]
                    columns[name].append(value[0] if isinstance(value, list) else value)
                scores = record_scores(record)
                meta["prediction"].append(None if scores is None else float(scores[0]))
                meta["label"].append(item.label)
                meta["version"].append(item.version)
                meta["request_id"].append(str(request_id))
                meta["ts"].append(float(record.get("ts", 0.0)))
                del wanted[str(request_id)]
                if len(meta["label"]) >= limit:
                    break
            if len(meta["label"]) >= limit or not wanted:
                break
    return {
        "since": since,
        "until": until,
        "rows": len(meta["label"]),
        "skipped_batches": skipped_batches,
        "columns": {**columns, **meta},
        "generated_at": time.time(),
    }
