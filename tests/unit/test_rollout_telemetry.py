"""Rollout telemetry from a real prediction log: incremental, filtered, windowed and paired."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workbench.rollouts.telemetry import RolloutTelemetry
from workbench.telemetry import PredictionLogWriter


def _record(ts: float, version: int, status: int = 200, **extra: Any) -> dict[str, Any]:
    return {"ts": ts, "version": version, "status": status, "latency_ms": 1.0 + version, **extra}


def _log(directory: Path, writer_id: str, records: list[dict[str, Any]]) -> None:
    with PredictionLogWriter(directory, writer_id=writer_id) as writer:
        for record in records:
            writer.log(record)


def test_counts_versions_and_errors_ignoring_client_errors_and_other_versions(tmp_path: Path) -> None:
    telemetry = RolloutTelemetry(tmp_path, since=100.0, versions=(1, 2))
    _log(
        tmp_path,
        "r1",
        [
            _record(99.0, 1),  # before the rollout
            _record(101.0, 1),
            _record(102.0, 1, status=500),
            _record(103.0, 1, status=422),  # the caller's fault
            _record(104.0, 2, outputs={"score": [[0.25], [0.75]]}),
            _record(105.0, 3),  # not in this rollout
        ],
    )
    assert telemetry.refresh() == 6
    stable, candidate = telemetry.sample(1), telemetry.sample(2)
    assert (stable.requests, stable.errors) == (2, 1)
    assert stable.latencies_ms.tolist() == [2.0]  # a failed request has no meaningful latency
    assert (candidate.requests, candidate.predictions.tolist()) == (1, [0.5])
    assert telemetry.refresh() == 0
    _log(tmp_path, "r2", [_record(106.0, 2)])
    assert telemetry.refresh() == 1
    assert telemetry.sample(2).requests == 2


def test_windows_split_before_and_after_a_switch(tmp_path: Path) -> None:
    _log(tmp_path, "r1", [_record(float(t), 1 if t < 150 else 2) for t in range(100, 200)])
    telemetry = RolloutTelemetry(tmp_path, since=100.0, versions=(1, 2))
    telemetry.refresh()
    assert telemetry.sample(1, start=120.0, end=150.0).requests == 30
    assert telemetry.sample(2, start=150.0).requests == 50
    assert telemetry.sample(2, end=150.0).requests == 0


def test_shadow_copies_pair_with_their_primary_by_request_id(tmp_path: Path) -> None:
    primary = [_record(100.0 + i, 1, request_id=f"q{i}", outputs={"p": [0.5]}) for i in range(10)]
    mirrored = [
        _record(
            100.5 + i, 2, request_id=f"q{i}", shadow=True, outputs={"p": [0.5 + (0.3 if i < 3 else 0.01)]}
        )
        for i in range(8)
    ]
    mirrored.append(_record(120.0, 2, request_id="unknown", shadow=True, outputs={"p": [0.0]}))
    _log(tmp_path, "primary", primary)
    _log(tmp_path, "shadow", mirrored)
    telemetry = RolloutTelemetry(tmp_path, since=100.0, versions=(1, 2), pair_shadows=True)
    telemetry.refresh()
    agreement = telemetry.agreement(0.05)
    assert (agreement.pairs, agreement.disagreements) == (8, 3)
    assert agreement.max_abs_diff == pytest.approx(0.3)
    assert telemetry.sample(2, shadow=True).requests == 9
    assert telemetry.sample(2).requests == 0  # shadow copies are not live traffic
    assert telemetry.agreement(0.5).disagreements == 0


def test_outputs_of_different_shapes_disagree(tmp_path: Path) -> None:
    _log(
        tmp_path,
        "r1",
        [
            _record(100.0, 1, request_id="a", outputs={"p": [0.5]}),
            _record(100.1, 2, request_id="a", shadow=True, outputs={"p": [0.5, 0.5]}),
        ],
    )
    telemetry = RolloutTelemetry(tmp_path, since=0.0, versions=(1, 2), pair_shadows=True)
    telemetry.refresh()
    assert telemetry.agreement(1.0).disagreements == 1


def test_fed_back_labels_join_each_variants_answers_by_request_id(tmp_path: Path) -> None:
    records = [
        _record(100.0, 1, request_id="a", rows=1, outputs={"p": [[0.2, 0.8]]}),  # says 1
        _record(101.0, 1, request_id="b", rows=1, outputs={"p": [0.3]}),  # says 0
        _record(102.0, 2, request_id="c", rows=1, outputs={"p": [0.9]}),  # says 1
        _record(103.0, 2, request_id="d", rows=2, outputs={"p": [0.9, 0.1]}),  # a batch: not labelled
        _record(104.0, 2, request_id="e", rows=1, shadow=True, outputs={"p": [0.9]}),  # a shadow copy
        _record(105.0, 2, request_id="f", rows=1, status=500),  # no answer
    ]
    _log(tmp_path, "r1", records)
    telemetry = RolloutTelemetry(tmp_path, since=100.0, versions=(1, 2), track_scores=True)
    telemetry.refresh()
    labels = [("a", 1, 1.0, 100.0), ("b", 1, 1.0, 101.0), ("c", 2, 0.0, 102.0), ("d", 2, 1.0, 103.0)]
    labels += [("e", 2, 1.0, 104.0), ("f", 2, 1.0, 105.0), ("zzz", 1, 1.0, 100.0)]
    assert telemetry.add_labels(labels) == 3
    assert telemetry.add_labels([("a", 1, 0.0, 100.0)]) == 0  # an answer is judged once
    bounds = (0.0, 1.0)
    assert telemetry.labelled(1, "label_correct", bounds=bounds).tolist() == [1.0, 0.0]
    assert telemetry.labelled(1, "label_correct", bounds=bounds, start=100.5).tolist() == [0.0]
    assert telemetry.labelled(2, "label_correct", bounds=bounds).tolist() == [0.0]
    assert telemetry.labelled(1, "label_abs_error", bounds=bounds) == pytest.approx([0.2, 0.7])
    assert telemetry.labelled(2, "label_squared_error", bounds=(0.0, 0.5)).tolist() == [0.5]  # clipped
    assert telemetry.labelled(3, "label_correct", bounds=bounds).size == 0
