"""Telemetry of the model server: the prediction log, one record per inference request (written as one
JSON line per batch of requests answered together, see ``batch_record``).

Records are handed over on the request path in about a microsecond and written by a background thread
to append-only JSON-lines segments that survive a SIGKILL or a full disk without corruption.
"""

from __future__ import annotations

from workbench.telemetry.prediction_log import PredictionLogWriter, WriterStats, list_segments, read_records

__all__ = ["PredictionLogWriter", "WriterStats", "list_segments", "read_records"]
