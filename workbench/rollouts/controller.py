"""The rollout controller: one tick at a time, read telemetry → analyse → decide → route → record.

Everything it knows lives in the state store (the rollout's phase and step) and in the prediction log
(the telemetry), so a control plane restarted mid-canary picks up exactly where the last one stopped:
the router kept its routes meanwhile, and the next tick re-reads both.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.errors import ConflictError, ValidationError, WorkbenchError
from workbench.registry.refs import ModelRef
from workbench.rollouts.analysis import Measurements, VariantSample, analyse
from workbench.rollouts.decide import Action, Decision, decide_canary
from workbench.rollouts.phases import Phase
from workbench.specs.rollout import RolloutSpec, Strategy
from workbench.store.rollouts import RolloutEvent, RolloutRecord, RolloutRepository
from workbench.telemetry import read_records

if TYPE_CHECKING:
    from workbench.control_plane import ControlPlane

log = logging.getLogger("workbench.rollouts")
CHAMPION, CHALLENGER = "champion", "challenger"


def measurements_from(records: Iterable[dict[str, Any]], stable: int, candidate: int) -> Measurements:
    """Cumulative telemetry of both versions from prediction-log records (shadow copies excluded).

    Server errors (5xx) count against a version; client errors (4xx) are the caller's and do not.
    """
    acc: dict[int, dict[str, Any]] = {
        v: {"requests": 0, "errors": 0, "latencies": [], "predictions": []} for v in (stable, candidate)
    }
    for record in records:
        version = record.get("version")
        if record.get("shadow") or version not in acc:
            continue
        status = int(record.get("status", 0))
        if 400 <= status < 500:
            continue
        bucket = acc[version]
        bucket["requests"] += 1
        if status >= 500:
            bucket["errors"] += 1
        if "latency_ms" in record:
            bucket["latencies"].append(float(record["latency_ms"]))
        outputs = record.get("outputs")
        if isinstance(outputs, dict) and outputs:
            first = next(iter(outputs.values()))
            values = np.asarray(first, dtype=np.float64).reshape(-1)
            if values.size:
                bucket["predictions"].append(float(values.mean()))

    def sample(version: int) -> VariantSample:
        bucket = acc[version]
        return VariantSample(
            requests=bucket["requests"],
            errors=bucket["errors"],
            latencies_ms=np.asarray(bucket["latencies"], dtype=np.float64),
            predictions=np.asarray(bucket["predictions"], dtype=np.float64),
        )

    return Measurements(baseline=sample(stable), candidate=sample(candidate))


class RolloutController:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.repo = RolloutRepository()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --------------------------------------------------------------- commands
    def start(self, spec: RolloutSpec, *, actor: str, reason: str | None = None) -> RolloutRecord:
        if spec.strategy != Strategy.CANARY:
            raise ValidationError(f"strategy {spec.strategy.value!r} is not available yet: use canary")
        endpoint = self.plane.get_endpoint(spec.endpoint).spec
        with self.plane.db.read() as connection:
            active = self.repo.active_for(connection, spec.endpoint)
        if active is not None:  # the database refuses it too; this says so before anything else
            raise ConflictError(
                f"endpoint {spec.endpoint!r} already has an active rollout ({active.id}, {active.phase.value})",
                endpoint=spec.endpoint,
                rollout=active.id,
            )
        live = [r for r in endpoint.routes if r.weight > 0]
        if len(live) != 1:
            raise ConflictError(
                f"endpoint {spec.endpoint!r} splits traffic over {len(live)} versions; a rollout starts from one",
                endpoint=spec.endpoint,
            )
        stable = live[0]
        candidate = self.plane.registry.resolve(ModelRef.parse(spec.candidate))
        if (candidate.name, candidate.version) == (stable.model, stable.version):
            raise ValidationError(f"{spec.candidate} is already the stable version of {spec.endpoint!r}")
        with self.plane.db.write() as connection:
            record = self.repo.create(
                connection,
                endpoint=spec.endpoint,
                strategy=spec.strategy.value,
                spec=spec.model_dump(mode="json"),
                stable=(stable.model, stable.version),
                candidate=(candidate.name, candidate.version),
                actor=actor,
                reason=reason,
            )
            self.plane.audit.record(
                connection,
                actor=actor,
                action="rollout.start",
                target=f"endpoint:{spec.endpoint}",
                before={"stable": f"models:/{stable.model}/{stable.version}"},
                after={
                    "candidate": candidate.uri,
                    "rollout": record.id,
                    "steps": [s.weight for s in spec.steps],
                },
                reason=reason,
                link=f"rollout:{record.id}",
            )
        try:
            self.plane.set_alias(
                candidate.name, CHALLENGER, candidate.version, actor=actor, reason=f"rollout {record.id}"
            )
            self._route(record, spec.steps[0].weight, actor, f"rollout {record.id}: step 0")
        except WorkbenchError as exc:
            self._transition(record.id, Phase.FAILED, f"candidate could not be started: {exc.message}")
            raise
        return self._transition(
            record.id, Phase.PROGRESSING, f"step 0: {spec.steps[0].weight:g}% to the candidate"
        )

    def advance(self, rollout_id: str, *, now: float | None = None) -> RolloutRecord:
        """One tick: analyse the canary so far and apply the decision."""
        record = self.get(rollout_id)
        if record.phase != Phase.PROGRESSING:
            return record
        spec = RolloutSpec.model_validate(record.spec)
        at = time.time() if now is None else now
        directory = self.plane.settings.home / "predictions" / record.endpoint
        records = read_records(directory, since=record.created_at.timestamp())
        measurements = measurements_from(records, record.stable_version, record.candidate_version)
        result = analyse(measurements, spec.analysis)
        decision = decide_canary(spec, record.step_index, record.step_started_at, result, at)
        return self._apply(record, spec, decision)

    def pause(self, rollout_id: str, *, actor: str) -> RolloutRecord:
        return self._transition(rollout_id, Phase.PAUSED, f"paused by {actor}")

    def resume(self, rollout_id: str, *, actor: str) -> RolloutRecord:
        return self._transition(rollout_id, Phase.PROGRESSING, f"resumed by {actor}")

    def promote(self, rollout_id: str, *, actor: str, reason: str | None = None) -> RolloutRecord:
        record = self.get(rollout_id)
        return self._promote(record, f"promoted by {actor}" + (f": {reason}" if reason else ""), actor)

    def abort(self, rollout_id: str, *, actor: str, reason: str | None = None) -> RolloutRecord:
        record = self.get(rollout_id)
        return self._rollback(record, f"aborted by {actor}" + (f": {reason}" if reason else ""), actor, None)

    # ------------------------------------------------------------------ reads
    def get(self, rollout_id: str) -> RolloutRecord:
        with self.plane.db.read() as connection:
            return self.repo.get(connection, rollout_id)

    def events(self, rollout_id: str) -> list[RolloutEvent]:
        with self.plane.db.read() as connection:
            return self.repo.events(connection, rollout_id)

    def find(self, *, endpoint: str | None = None, active_only: bool = False) -> list[RolloutRecord]:
        with self.plane.db.read() as connection:
            return self.repo.find(connection, endpoint=endpoint, active_only=active_only)

    # ------------------------------------------------------------------- loop
    def start_loop(self, every: float = 1.0) -> None:
        self._thread = threading.Thread(target=self._loop, args=(every,), name="rollouts", daemon=True)
        self._thread.start()

    def stop_loop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self, every: float) -> None:
        last: dict[str, float] = {}
        while not self._stop.wait(every):
            for record in self.find(active_only=True):
                if record.phase != Phase.PROGRESSING:
                    continue
                tick = float(record.spec.get("tick_s", 5.0))
                if time.monotonic() - last.get(record.id, 0.0) < tick:
                    continue
                last[record.id] = time.monotonic()
                try:
                    self.advance(record.id)
                except Exception:  # one broken rollout must not stop the others
                    log.exception("rollout %s: tick failed", record.id)
                    with contextlib.suppress(WorkbenchError):
                        self._transition(record.id, Phase.ERROR, "the controller failed to apply a step")

    # ---------------------------------------------------------------- applying
    def _apply(self, record: RolloutRecord, spec: RolloutSpec, decision: Decision) -> RolloutRecord:
        if decision.action == Action.WAIT:
            return record
        if decision.action == Action.ROLLBACK:
            return self._rollback(record, decision.reason, "rollout-controller", decision.evidence)
        if decision.action == Action.PROMOTE:
            return self._promote(record, decision.reason, "rollout-controller", decision.evidence)
        if decision.action == Action.INCONCLUSIVE:
            return self._transition(
                record.id, Phase.INCONCLUSIVE, decision.reason, evidence=decision.evidence
            )
        self._route(record, decision.candidate_weight, "rollout-controller", decision.reason)
        return self._transition(
            record.id,
            Phase.PROGRESSING,
            decision.reason,
            step_index=decision.step_index,
            evidence=decision.evidence,
        )

    def _route(self, record: RolloutRecord, candidate_weight: float, actor: str, reason: str) -> None:
        current = self.plane.get_endpoint(record.endpoint).spec
        routes = []
        if candidate_weight < 100:
            routes.append(
                {
                    "model": record.stable_model,
                    "version": record.stable_version,
                    "weight": 100 - candidate_weight,
                }
            )
        if candidate_weight > 0:
            routes.append(
                {
                    "model": record.candidate_model,
                    "version": record.candidate_version,
                    "weight": candidate_weight,
                }
            )
        spec = current.model_validate({**current.model_dump(), "routes": routes})
        self.plane.apply_spec(spec, action="endpoint.route", actor=actor, reason=reason)

    def _promote(self, record: RolloutRecord, reason: str, actor: str, evidence: Any = None) -> RolloutRecord:
        record = self._transition(record.id, Phase.PROMOTING, reason, evidence=evidence)
        self._route(record, 100.0, actor, f"rollout {record.id}: promote")
        self.plane.set_alias(
            record.candidate_model,
            CHAMPION,
            record.candidate_version,
            actor=actor,
            reason=f"rollout {record.id}",
        )
        with contextlib.suppress(WorkbenchError):
            self.plane.delete_alias(
                record.candidate_model, CHALLENGER, actor=actor, reason=f"rollout {record.id}"
            )
        self.plane.audit.append(
            actor=actor,
            action="rollout.promote",
            target=f"endpoint:{record.endpoint}",
            after={"champion": f"models:/{record.candidate_model}/{record.candidate_version}"},
            reason=reason,
            link=f"rollout:{record.id}",
        )
        return self._transition(record.id, Phase.SUCCEEDED, "candidate promoted to 100% and champion")

    def _rollback(self, record: RolloutRecord, reason: str, actor: str, evidence: Any) -> RolloutRecord:
        """Traffic first (one route change), then the record: within one tick of the verdict."""
        self._route(record, 0.0, actor, f"rollout {record.id}: roll back")
        with contextlib.suppress(WorkbenchError):
            self.plane.delete_alias(
                record.candidate_model, CHALLENGER, actor=actor, reason=f"rollout {record.id}"
            )
        self.plane.audit.append(
            actor=actor,
            action="rollout.rollback",
            target=f"endpoint:{record.endpoint}",
            before={"candidate": f"models:/{record.candidate_model}/{record.candidate_version}"},
            after={"stable": f"models:/{record.stable_model}/{record.stable_version}", "evidence": evidence},
            reason=reason,
            link=f"rollout:{record.id}",
        )
        return self._transition(record.id, Phase.ROLLED_BACK, reason, evidence=evidence)

    def _transition(
        self,
        rollout_id: str,
        phase: Phase,
        message: str,
        *,
        step_index: int | None = None,
        evidence: Any = None,
    ) -> RolloutRecord:
        with self.plane.db.write() as connection:
            current = self.repo.get(connection, rollout_id)
            return self.repo.transition(
                connection, current, phase, message=message, step_index=step_index, evidence=evidence
            )
