"""A rollout's evaluation: its telemetry followed incrementally, analysed, and decided by strategy.

Reads only (the prediction log, fed-back labels, the rollout's events); the controller applies what it
decides. One evaluator per controller keeps each rollout's telemetry between ticks; a restarted control
plane rebuilds it from the log.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from workbench.rollouts.analysis import Measurements, VariantSample, analyse
from workbench.rollouts.decide import Decision, decide_blue_green, decide_canary, decide_shadow
from workbench.rollouts.phases import Phase
from workbench.rollouts.shadow import with_agreement
from workbench.rollouts.telemetry import RolloutTelemetry
from workbench.specs.analysis import MetricCheck, MetricKind
from workbench.specs.rollout import RolloutSpec, Strategy
from workbench.store import Database
from workbench.store.rollouts import RolloutEvent, RolloutRecord, RolloutRepository


def label_checks(spec: RolloutSpec) -> list[MetricCheck]:
    """The custom checks the controller computes from fed-back labels."""
    return [c for c in spec.analysis.checks if c.kind is MetricKind.CUSTOM and c.source is not None]


class RolloutEvaluator:
    def __init__(self, predictions: Path, db: Database, repo: RolloutRepository) -> None:
        self.predictions = predictions
        self.db = db
        self.repo = repo
        self._telemetry: dict[str, RolloutTelemetry] = {}
        self._labels_seen: dict[str, float] = {}  # per rollout: the newest feedback already joined
        self._lock = threading.Lock()  # guards the two dictionaries, never held across a read

    def forget(self, rollout_id: str) -> None:
        with self._lock:
            self._telemetry.pop(rollout_id, None)
            self._labels_seen.pop(rollout_id, None)

    def _events(self, rollout_id: str) -> list[RolloutEvent]:
        with self.db.read() as connection:
            return self.repo.events(connection, rollout_id)

    def _telemetry_of(self, record: RolloutRecord, spec: RolloutSpec) -> RolloutTelemetry:
        with self._lock:
            telemetry = self._telemetry.get(record.id)
        if telemetry is None:
            since = record.created_at.timestamp()
            if spec.strategy == Strategy.BLUE_GREEN:
                since -= spec.blue_green.baseline_window_s
            telemetry = RolloutTelemetry(
                self.predictions / record.endpoint,
                since=since,
                versions=(record.stable_version, record.candidate_version),
                pair_shadows=spec.strategy == Strategy.SHADOW,
                track_scores=bool(label_checks(spec)),
            )
            with self._lock:
                self._telemetry[record.id] = telemetry
                self._labels_seen[record.id] = 0.0
        telemetry.refresh()
        if telemetry.track_scores:
            self._join_labels(record, telemetry)
        return telemetry

    def _join_labels(self, record: RolloutRecord, telemetry: RolloutTelemetry) -> None:
        """Labels fed back since the last tick, joined to the answers they judge."""
        from workbench.store.monitoring import MonitoringRepository

        with self.db.read() as connection:
            items = MonitoringRepository().feedback_received_after(
                connection,
                record.endpoint,
                predicted_since=telemetry.since,
                received_after=self._labels_seen.get(record.id, 0.0),
            )
        if items:
            self._labels_seen[record.id] = max(item.received_at for item in items)
            telemetry.add_labels((i.request_id, i.version, i.label, i.predicted_at) for i in items)

    def _sample(
        self,
        telemetry: RolloutTelemetry,
        spec: RolloutSpec,
        version: int,
        *,
        shadow: bool = False,
        start: float | None = None,
        end: float | None = None,
    ) -> VariantSample:
        sample = telemetry.sample(version, shadow=shadow, start=start, end=end)
        checks = label_checks(spec)
        if not checks or shadow:
            return sample
        custom = {
            c.name: telemetry.labelled(version, c.source or "", bounds=c.bounds, start=start) for c in checks
        }
        return dataclasses.replace(sample, custom=custom)

    def decide(self, record: RolloutRecord, spec: RolloutSpec, at: float) -> Decision:
        """Refresh the rollout's telemetry, analyse it and decide by its strategy (no change made)."""
        telemetry = self._telemetry_of(record, spec)
        stable, candidate = record.stable_version, record.candidate_version
        if spec.strategy == Strategy.CANARY:
            # The baseline starts when the candidate gets traffic: while its replicas load, the stable
            # version shares the machine with them, and its slower answers would blunt the latency check.
            routed_at = self._progressing_at(record)
            measured = Measurements(
                baseline=self._sample(telemetry, spec, stable, start=routed_at),
                candidate=self._sample(telemetry, spec, candidate),
            )
            result = analyse(measured, spec.analysis)
            return decide_canary(spec, record.step_index, record.step_started_at, result, at)
        if spec.strategy == Strategy.BLUE_GREEN:
            switched_at = self._switched_at(record)
            measured = Measurements(
                baseline=self._sample(
                    telemetry,
                    spec,
                    stable,
                    start=switched_at - spec.blue_green.baseline_window_s,
                    end=switched_at,
                ),
                candidate=self._sample(telemetry, spec, candidate, start=switched_at),
            )
            result = analyse(measured, spec.analysis)
            return decide_blue_green(spec, switched_at, result, at)
        mirrored_at = self._progressing_at(record)
        measured = Measurements(
            baseline=telemetry.sample(stable, start=mirrored_at),
            candidate=telemetry.sample(candidate, shadow=True),
        )
        result = with_agreement(
            analyse(measured, spec.analysis), telemetry.agreement(spec.shadow.tolerance), spec.shadow
        )
        return decide_shadow(spec, mirrored_at, result, at)

    def _switched_at(self, record: RolloutRecord) -> float:
        """When a blue-green rollout switched: its first event at step 1 (pausing does not move it)."""
        for event in self._events(record.id):
            if event.step_index == 1:
                return event.at.timestamp()
        return record.step_started_at

    def _progressing_at(self, record: RolloutRecord) -> float:
        """When the candidate first got traffic (a canary) or mirrored requests (a shadow)."""
        for event in self._events(record.id):
            if event.phase == Phase.PROGRESSING:
                return event.at.timestamp()
        return record.created_at.timestamp()
