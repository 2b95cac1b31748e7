"""Monitor history in the state store: every look's values as computed, downsampled on read.

A *series* is (monitor, name, key): key ``all`` for a value of the monitor as a whole, a version
number for the per-version traffic series, a column for ``drift``, a rule for ``alert_state``. Its
points are (series id, ts, value) rows, clustered by series and time, so reading one series over a
time range is one index range. A look writes all its points with one ``executemany`` in the tick's
transaction. Reads aggregate in SQL per step (mean, min, max, count), so an hour at 1 s resolution
comes back as a few hundred numbers per series, not 3,600 rows.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Connection, Integer, cast, delete, func, select

from workbench.store.schema import monitor_points, monitor_series

#: Bind at most this many ids in one ``IN (...)``.
_CHUNK = 500
ALL = "all"

SeriesKey = tuple[str, str, str]  # (monitor, series, key)


@dataclass(frozen=True)
class SeriesRow:
    id: int
    monitor: str
    series: str
    key: str


@dataclass
class Aggregated:
    """One series downsampled: per step that has points, its start and the points' mean/min/max/count."""

    ts: list[float]
    mean: list[float]
    min: list[float]
    max: list[float]
    count: list[int]

    def to_dict(self) -> dict[str, list[Any]]:
        return {"ts": self.ts, "mean": self.mean, "min": self.min, "max": self.max, "count": self.count}


def _insert_ignore(connection: Connection, table: Any) -> Any:
    """INSERT that skips rows whose key exists (a re-read after a restart, a second control plane)."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


class HistoryRepository:
    """Methods take the caller's connection; series ids are cached (a series row is never changed)."""

    def __init__(self) -> None:
        self._ids: dict[SeriesKey, int] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ writes
    def series_ids(self, connection: Connection, keys: Iterable[SeriesKey]) -> dict[SeriesKey, int]:
        wanted = set(keys)
        with self._lock:
            found = {k: self._ids[k] for k in wanted if k in self._ids}
        missing = wanted - set(found)
        if missing:
            connection.execute(
                _insert_ignore(connection, monitor_series),
                [{"monitor": m, "series": s, "key": k} for m, s, k in sorted(missing)],
            )
            for monitor in {m for m, _, _ in missing}:
                rows = connection.execute(
                    select(monitor_series.c.id, monitor_series.c.series, monitor_series.c.key).where(
                        monitor_series.c.monitor == monitor
                    )
                ).all()
                for series_id, series, key in rows:
                    found.setdefault((monitor, series, key), int(series_id))
            with self._lock:
                self._ids.update(found)
        return found

    def append(self, connection: Connection, points: Sequence[tuple[str, str, str, float, float]]) -> int:
        """Write (monitor, series, key, ts, value) points; non-finite values are left out (no data)."""
        kept = [p for p in points if math.isfinite(p[4]) and math.isfinite(p[3])]
        if not kept:
            return 0
        ids = self.series_ids(connection, ((m, s, k) for m, s, k, _, _ in kept))
        connection.execute(
            _insert_ignore(connection, monitor_points),
            [{"series_id": ids[(m, s, k)], "ts": ts, "value": value} for m, s, k, ts, value in kept],
        )
        return len(kept)

    def prune(self, connection: Connection, before: float) -> int:
        """Delete points older than ``before``, series by series (each an index range)."""
        ids = [row[0] for row in connection.execute(select(monitor_series.c.id)).all()]
        removed = 0
        for series_id in ids:
            result = connection.execute(
                delete(monitor_points).where(
                    monitor_points.c.series_id == series_id, monitor_points.c.ts < before
                )
            )
            removed += int(result.rowcount or 0)
        return removed

    # ------------------------------------------------------------------- reads
    def find(
        self,
        connection: Connection,
        *,
        monitors: Sequence[str] | None = None,
        series: Sequence[str] | None = None,
        keys: Sequence[str] | None = None,
    ) -> list[SeriesRow]:
        statement = select(monitor_series).order_by(
            monitor_series.c.monitor, monitor_series.c.series, monitor_series.c.key
        )
        if monitors is not None:
            statement = statement.where(monitor_series.c.monitor.in_(list(monitors)))
        if series is not None:
            statement = statement.where(monitor_series.c.series.in_(list(series)))
        if keys is not None:
            statement = statement.where(monitor_series.c.key.in_(list(keys)))
        return [
            SeriesRow(id=int(r["id"]), monitor=r["monitor"], series=r["series"], key=r["key"])
            for r in connection.execute(statement).mappings()
        ]

    def aggregate(
        self, connection: Connection, ids: Sequence[int], *, start: float, end: float, step_s: float
    ) -> dict[int, Aggregated]:
        """Points of ``ids`` with ``start <= ts <= end``, per step of ``step_s`` from ``start``."""
        offset = (monitor_points.c.ts - start) / step_s
        # ts >= start, so truncation is the floor; PostgreSQL's integer cast rounds, hence floor there.
        bucket = (
            cast(func.floor(offset), BigInteger)
            if connection.dialect.name == "postgresql"
            else cast(offset, Integer)
        ).label("bucket")
        out: dict[int, Aggregated] = {}
        for first in range(0, len(ids), _CHUNK):
            chunk = list(ids[first : first + _CHUNK])
            statement = (
                select(
                    monitor_points.c.series_id,
                    bucket,
                    func.avg(monitor_points.c.value),
                    func.min(monitor_points.c.value),
                    func.max(monitor_points.c.value),
                    func.count(),
                )
                .where(
                    monitor_points.c.series_id.in_(chunk),
                    monitor_points.c.ts >= start,
                    monitor_points.c.ts <= end,
                )
                .group_by(monitor_points.c.series_id, bucket)
                .order_by(monitor_points.c.series_id, bucket)
            )
            for series_id, index, mean, low, high, count in connection.execute(statement).all():
                found = out.get(series_id)
                if found is None:
                    found = out[series_id] = Aggregated([], [], [], [], [])
                found.ts.append(start + int(index) * step_s)
                found.mean.append(float(mean))
                found.min.append(float(low))
                found.max.append(float(high))
                found.count.append(int(count))
        return out

    def recent(self, connection: Connection, monitor: str, limit: int) -> list[dict[str, Any]]:
        """The monitor's last ``limit`` looks as rows of its monitor-wide (key ``all``) series."""
        rows = self.find(connection, monitors=[monitor], keys=[ALL])
        clock = next((r.id for r in rows if r.series == "rows"), None)
        if clock is None or limit <= 0:
            return []
        times = [
            float(t)
            for (t,) in connection.execute(
                select(monitor_points.c.ts)
                .where(monitor_points.c.series_id == clock)
                .order_by(monitor_points.c.ts.desc())
                .limit(limit)
            ).all()
        ]
        if not times:
            return []
        names = {r.id: r.series for r in rows}
        looks: dict[float, dict[str, Any]] = {t: {"ts": t} for t in sorted(times)}
        for series_id, ts, value in connection.execute(
            select(monitor_points.c.series_id, monitor_points.c.ts, monitor_points.c.value).where(
                monitor_points.c.series_id.in_(list(names)), monitor_points.c.ts >= min(times)
            )
        ).all():
            look = looks.get(float(ts))
            if look is not None:
                look[names[series_id]] = float(value)
        return list(looks.values())
