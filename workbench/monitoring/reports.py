"""Full Evidently drift reports for a monitor's window, archived (HTML + JSON) with a summary record.

The live scores come from histograms; a report re-reads the window's logged rows from the prediction
log and hands them to Evidently with the same per-column methods, and its summary puts both side by
side, so a person can see that the number on the dashboard is the number in the report.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench.errors import ValidationError
from workbench.monitoring.drift import WindowHistogram, drift
from workbench.monitoring.reference import MonitorReference
from workbench.monitoring.window import record_rows
from workbench.specs.monitor import MonitorSpec
from workbench.store.monitoring import MonitoringRepository, ReportRecord
from workbench.telemetry import read_records

if TYPE_CHECKING:
    from workbench.monitoring.plane import MonitoringPlane

MAX_REPORT_ROWS = 200_000


def window_frame(
    plane: MonitoringPlane, spec: MonitorSpec, columns: tuple[str, ...], start: float, end: float
) -> pd.DataFrame:
    """The logged input rows of live requests in ``[start, end)``, at most ``MAX_REPORT_ROWS``."""
    directory = plane.settings.home / "predictions" / spec.endpoint
    parts: dict[str, list[Any]] = {c: [] for c in columns}
    rows = 0
    for record in read_records(directory, since=start, until=end):
        if record.get("shadow") or int(record.get("status", 0)) >= 400:
            continue
        found = record_rows(record, columns)
        if not found or set(found) != set(columns):
            continue
        for column in columns:
            parts[column].extend(np.asarray(found[column]).reshape(-1).tolist())
        rows = len(parts[columns[0]])
        if rows >= MAX_REPORT_ROWS:
            break
    return pd.DataFrame(parts)


def archive_report(
    plane: MonitoringPlane,
    spec: MonitorSpec,
    reference: MonitorReference,
    *,
    trigger: str,
    window_s: float | None = None,
    until: float | None = None,
    actor: str | None = None,
) -> ReportRecord:
    """A report of ``[until - window_s, until)``: by default the monitor's window ending now.

    ``actor``: who asked for it (a manual report), recorded in the audit log; a scheduled one is the
    monitor's."""
    from workbench.monitoring.evidently_report import evidently_drift, methods_for

    end = time.time() if until is None else until
    start = end - (spec.window_s if window_s is None else window_s)
    current = window_frame(plane, spec, reference.columns, start, end)
    if len(current) < spec.drift.min_rows:
        raise ValidationError(
            f"the window holds {len(current)} logged rows; a report needs at least {spec.drift.min_rows}",
            rows=len(current),
        )
    live = WindowHistogram(reference.features)
    live.add({c: current[c].to_numpy() for c in reference.columns})
    methods = {**methods_for(reference.features), **dict(spec.drift.methods)}
    live_result = drift(
        live, methods=methods, thresholds=dict(spec.drift.thresholds), drift_share=spec.drift.drift_share
    )
    folder = plane.settings.home / "monitoring" / spec.name / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    stem = time.strftime("%Y%m%dT%H%M%S", time.gmtime(end)) + f"-{int(end * 1000) % 1000:03d}"
    html_path, json_path = folder / f"{stem}.html", folder / f"{stem}.json"
    report = evidently_drift(
        reference.frame[list(reference.columns)],
        current,
        columns=reference.columns,
        categorical=reference.categorical,
        methods=methods,
        thresholds=dict(spec.drift.thresholds),
        drift_share=spec.drift.drift_share,
        html_path=html_path,
        json_path=json_path,
    )
    summary = {
        "rows": len(current),
        "reference": f"models:/{reference.model}/{reference.version}",
        "evidently_seconds": round(report.seconds, 3),
        "share_drifted": report.share_drifted,
        "dataset_drifted": report.dataset_drifted,
        "live_share_drifted": live_result.share_drifted,
        "columns": [
            {
                "column": c.column,
                "method": c.method,
                "evidently": c.score,
                "live": live_result.column(c.column).score,
                "threshold": c.threshold,
                "drifted": c.drifted,
                "live_drifted": live_result.column(c.column).drifted,
            }
            for c in report.columns
        ],
    }
    with plane.db.write() as connection:
        record = MonitoringRepository().add_report(
            connection,
            monitor=spec.name,
            window=(start, end),
            trigger=trigger,
            html_path=str(html_path),
            json_path=str(json_path),
            summary=summary,
        )
        plane.audit.record(
            connection,
            actor=f"monitor:{spec.name}" if trigger != "manual" else (actor or "monitoring"),
            action="monitor.report",
            target=f"endpoint:{spec.endpoint}",
            after={"report": record.id, "dataset_drifted": report.dataset_drifted, "rows": len(current)},
            link=f"report:{record.id}",
        )
    return record
