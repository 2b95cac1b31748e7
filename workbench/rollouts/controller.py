"""The rollout controller: one tick at a time, read telemetry → analyse → decide → route → record.

Everything it knows lives in the state store (the rollout's phase and step) and in the prediction log
(the telemetry), so a control plane restarted mid-rollout picks up exactly where the last one stopped:
the router kept its routes meanwhile, and the next tick re-reads both. The telemetry is followed
incrementally (:mod:`workbench.rollouts.telemetry`); a restart rebuilds it from the log.

Per strategy (see :mod:`workbench.specs.rollout`), as steps of the recorded ``step_index``:

* canary: step *i* is ``spec.steps[i]``'s weight; the last passing step promotes;
* blue-green: step 0 is the candidate warm and gated at 0 %, step 1 the switch to 100 % with the stable
  version kept warm; a controller that dies between the two finishes the switch on its next tick;
* shadow: step 0 is the candidate mirrored; a pass completes the rollout with live traffic unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from workbench.errors import ConflictError, NotFoundError, UnavailableError, ValidationError, WorkbenchError
from workbench.registry.refs import ModelRef
from workbench.revisions import Change, RevisionCause
from workbench.rollouts.analysis import Measurements, VariantSample, analyse
from workbench.rollouts.decide import (
    Action,
    Decision,
    decide_blue_green,
    decide_canary,
    decide_shadow,
)
from workbench.rollouts.gate import GateResult, input_columns, run_gate, smoke_bodies
from workbench.rollouts.phases import Phase
from workbench.rollouts.shadow import with_agreement
from workbench.rollouts.telemetry import RolloutTelemetry
from workbench.specs.analysis import MetricCheck, MetricKind
from workbench.specs.endpoint import EndpointSpec
from workbench.specs.rollout import RolloutSpec, Strategy
from workbench.store.rollouts import RolloutEvent, RolloutRecord, RolloutRepository

if TYPE_CHECKING:
    from workbench.control_plane import ControlPlane

log = logging.getLogger("workbench.rollouts")
CHAMPION, CHALLENGER = "champion", "challenger"
CONTROLLER = "rollout-controller"  # the actor of every change the analysis decides


def _label_checks(spec: RolloutSpec) -> list[MetricCheck]:
    """The custom checks the controller computes from fed-back labels."""
    return [c for c in spec.analysis.checks if c.kind is MetricKind.CUSTOM and c.source is not None]


class RolloutController:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.repo = RolloutRepository()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._telemetry: dict[str, RolloutTelemetry] = {}
        self._labels_seen: dict[str, float] = {}  # per rollout: the newest feedback already joined
        self._latest: dict[str, dict[str, Any]] = {}
        # One change of a rollout at a time: a tick that read PROGRESSING must not route traffic after an
        # operator's abort (or promote, pause) committed meanwhile. Re-entrant: a tick may promote.
        self._tick_lock = threading.RLock()

    # --------------------------------------------------------------- commands
    def start(
        self, spec: RolloutSpec, *, actor: str, reason: str | None = None, force: bool = False
    ) -> RolloutRecord:
        """``force``: start even though an analysis rejected the candidate on this endpoint before."""
        with self._tick_lock:  # the loop must not tick a blue-green between its gate and its switch
            return self._start(spec, actor=actor, reason=reason, force=force)

    def _start(self, spec: RolloutSpec, *, actor: str, reason: str | None, force: bool) -> RolloutRecord:
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
        with self.plane.db.read() as connection:
            rejection = self.plane.rejections.get(
                connection, spec.endpoint, candidate.name, candidate.version
            )
        if rejection is not None and not force:
            raise ConflictError(
                f"{candidate.uri} was rejected on {spec.endpoint!r} by rollout {rejection.rollout_id}: "
                f"{rejection.reason}; pass force to roll it out again",
                endpoint=spec.endpoint,
                rollout=rejection.rollout_id,
                rejected=candidate.uri,
            )
        if spec.strategy == Strategy.SHADOW and len(endpoint.shadows) >= 4:
            raise ConflictError(f"endpoint {spec.endpoint!r} already mirrors to 4 shadows, the most it may")
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
                    "strategy": spec.strategy.value,
                    "steps": [s.weight for s in spec.steps] if spec.strategy == Strategy.CANARY else None,
                },
                reason=reason,
                link=f"rollout:{record.id}",
            )
        try:
            self.plane.set_alias(
                candidate.name, CHALLENGER, candidate.version, actor=actor, reason=f"rollout {record.id}"
            )
            if spec.strategy == Strategy.CANARY:
                self._traffic(record, spec.steps[0].weight, actor, f"rollout {record.id}: step 0")
                message = f"step 0: {spec.steps[0].weight:g}% to the candidate"
            elif spec.strategy == Strategy.SHADOW:
                self._traffic(
                    record, 0.0, actor, f"rollout {record.id}: mirror", mirror=spec.shadow.sample_percent
                )
                message = (
                    f"mirroring {spec.shadow.sample_percent:g}% of requests to the candidate "
                    f"for {spec.shadow.duration_s:g}s"
                )
            else:
                self._traffic(record, 0.0, actor, f"rollout {record.id}: warm", candidate_warm=True)
                gate = self._gate(record, spec)
                if not gate.passed:
                    raise UnavailableError(f"the candidate failed its health gate: {gate.summary}")
                message = f"candidate warm at 0%, health gate passed: {gate.summary}"
        except WorkbenchError as exc:
            self._undo_start(record, actor)
            self._transition(record.id, Phase.FAILED, f"candidate could not be started: {exc.message}")
            raise
        record = self._transition(record.id, Phase.PROGRESSING, message)
        if spec.strategy == Strategy.BLUE_GREEN:
            record = self._switch(record, spec, actor)
        return record

    def advance(self, rollout_id: str, *, now: float | None = None) -> RolloutRecord:
        """One tick: analyse the rollout so far and apply the decision."""
        with self._tick_lock:  # the loop and a test (or two API calls) must not tick one rollout twice
            record = self.get(rollout_id)
            if record.phase != Phase.PROGRESSING:
                return record
            spec = RolloutSpec.model_validate(record.spec)
            at = time.time() if now is None else now
            if spec.strategy == Strategy.BLUE_GREEN and record.step_index == 0:
                return self._switch(record, spec, CONTROLLER)  # a crash came between gate and switch
            decision = self._decide(record, spec, at)
            self._latest[record.id] = {
                "at": at,
                "decision": decision.action.value,
                "reason": decision.reason,
                **decision.evidence,
            }
            return self._apply(record, decision)

    def analysis(self, rollout_id: str) -> dict[str, Any] | None:
        """The latest analysis of a rollout: from this controller's last tick, else its last evidence."""
        if rollout_id in self._latest:
            return self._latest[rollout_id]
        for event in reversed(self.events(rollout_id)):
            if isinstance(event.evidence, dict) and "metrics" in event.evidence:
                return {"at": event.at.timestamp(), "reason": event.message, **event.evidence}
        return None

    def pause(self, rollout_id: str, *, actor: str) -> RolloutRecord:
        with self._tick_lock:
            return self._transition(rollout_id, Phase.PAUSED, f"paused by {actor}")

    def resume(self, rollout_id: str, *, actor: str) -> RolloutRecord:
        with self._tick_lock:
            return self._transition(rollout_id, Phase.PROGRESSING, f"resumed by {actor}")

    def promote(self, rollout_id: str, *, actor: str, reason: str | None = None) -> RolloutRecord:
        with self._tick_lock:
            record = self.get(rollout_id)
            if record.phase.is_terminal:
                raise ConflictError(
                    f"rollout {rollout_id} has ended ({record.phase.value})", rollout=rollout_id
                )
            return self._promote(record, f"promoted by {actor}" + (f": {reason}" if reason else ""), actor)

    def abort(self, rollout_id: str, *, actor: str, reason: str | None = None) -> RolloutRecord:
        with self._tick_lock:
            record = self.get(rollout_id)
            if record.phase.is_terminal:
                raise ConflictError(
                    f"rollout {rollout_id} has ended ({record.phase.value})", rollout=rollout_id
                )
            reason_text = f"aborted by {actor}" + (f": {reason}" if reason else "")
            return self._rollback(record, reason_text, actor, None)

    # ------------------------------------------------------------------ reads
    def get(self, rollout_id: str) -> RolloutRecord:
        with self.plane.db.read() as connection:
            return self.repo.get(connection, rollout_id)

    def events(self, rollout_id: str) -> list[RolloutEvent]:
        with self.plane.db.read() as connection:
            return self.repo.events(connection, rollout_id)

    def find(
        self, *, endpoint: str | None = None, active_only: bool = False, limit: int = 100
    ) -> list[RolloutRecord]:
        with self.plane.db.read() as connection:
            return self.repo.find(connection, endpoint=endpoint, active_only=active_only, limit=limit)

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

    # ---------------------------------------------------------------- deciding
    def _telemetry_of(self, record: RolloutRecord, spec: RolloutSpec) -> RolloutTelemetry:
        telemetry = self._telemetry.get(record.id)
        if telemetry is None:
            since = record.created_at.timestamp()
            if spec.strategy == Strategy.BLUE_GREEN:
                since -= spec.blue_green.baseline_window_s
            telemetry = RolloutTelemetry(
                self.plane.settings.home / "predictions" / record.endpoint,
                since=since,
                versions=(record.stable_version, record.candidate_version),
                pair_shadows=spec.strategy == Strategy.SHADOW,
                track_scores=bool(_label_checks(spec)),
            )
            self._telemetry[record.id] = telemetry
            self._labels_seen[record.id] = 0.0
        telemetry.refresh()
        if telemetry.track_scores:
            self._join_labels(record, telemetry)
        return telemetry

    def _join_labels(self, record: RolloutRecord, telemetry: RolloutTelemetry) -> None:
        """Labels fed back since the last tick, joined to the answers they judge."""
        from workbench.store.monitoring import MonitoringRepository

        with self.plane.db.read() as connection:
            items = MonitoringRepository().feedback_received_after(
                connection,
                record.endpoint,
                predicted_since=telemetry.since,
                received_after=self._labels_seen[record.id],
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
        checks = _label_checks(spec)
        if not checks or shadow:
            return sample
        custom = {
            c.name: telemetry.labelled(version, c.source or "", bounds=c.bounds, start=start) for c in checks
        }
        return dataclasses.replace(sample, custom=custom)

    def _decide(self, record: RolloutRecord, spec: RolloutSpec, at: float) -> Decision:
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
        for event in self.events(record.id):
            if event.step_index == 1:
                return event.at.timestamp()
        return record.step_started_at

    def _progressing_at(self, record: RolloutRecord) -> float:
        """When the candidate first got traffic (a canary) or mirrored requests (a shadow)."""
        for event in self.events(record.id):
            if event.phase == Phase.PROGRESSING:
                return event.at.timestamp()
        return record.created_at.timestamp()

    def _gate(self, record: RolloutRecord, spec: RolloutSpec) -> GateResult:
        """Smoke requests to the warm candidate, with rows of a registered reference dataset."""
        router = self.plane.serving.status().get("router_url")
        if not router:
            return GateResult(passed=True, requests=0, failures=(), source="no router: not served")
        info = self.plane.registry.get_version(record.candidate_model, record.candidate_version)
        bodies: list[bytes] = []
        source = "no reference dataset"
        for model, version in (
            (record.candidate_model, record.candidate_version),
            (record.stable_model, record.stable_version),
        ):
            try:
                frame = self.plane.registry.load_reference(model, version)
            except NotFoundError:
                continue
            bodies = smoke_bodies(frame, input_columns(info.signature, frame), spec.blue_green.gate_requests)
            source = f"reference rows of models:/{model}/{version}"
            break
        result = run_gate(str(router), record.endpoint, record.candidate_version, bodies, source)
        with self.plane.db.write() as connection:
            self.repo.add_event(
                connection, record.id, record.phase, 0, "gate", result.summary, evidence=result.evidence()
            )
        return result

    # ---------------------------------------------------------------- applying
    def _apply(self, record: RolloutRecord, decision: Decision) -> RolloutRecord:
        if decision.action == Action.WAIT:
            return record
        if decision.action == Action.ROLLBACK:
            return self._rollback(record, decision.reason, CONTROLLER, decision.evidence)
        if decision.action == Action.PROMOTE:
            return self._promote(record, decision.reason, CONTROLLER, decision.evidence)
        if decision.action == Action.COMPLETE:
            return self._complete(record, decision.reason, decision.evidence)
        if decision.action == Action.INCONCLUSIVE:
            return self._transition(
                record.id, Phase.INCONCLUSIVE, decision.reason, evidence=decision.evidence
            )
        self._traffic(record, decision.candidate_weight, CONTROLLER, decision.reason)
        return self._transition(
            record.id,
            Phase.PROGRESSING,
            decision.reason,
            step_index=decision.step_index,
            evidence=decision.evidence,
        )

    def _switch(self, record: RolloutRecord, spec: RolloutSpec, actor: str) -> RolloutRecord:
        """Blue-green: all traffic to the candidate in one route swap, the stable version kept warm."""
        self._traffic(record, 100.0, actor, f"rollout {record.id}: switch", stable_warm=True)
        return self._transition(
            record.id,
            Phase.PROGRESSING,
            f"switched: 100% to the candidate; v{record.stable_version} kept warm for "
            f"{spec.blue_green.keep_warm_s:g}s",
            step_index=1,
        )

    def _traffic(
        self,
        record: RolloutRecord,
        candidate_weight: float,
        actor: str,
        reason: str,
        *,
        candidate_warm: bool = False,
        stable_warm: bool = False,
        mirror: float | None = None,
        cause: RevisionCause = RevisionCause.ROLLOUT_STEP,
    ) -> None:
        """Route the endpoint between the rollout's two versions; other shadows of it are kept.

        A version routed at 0 % keeps its replicas running (warm) without traffic; ``mirror`` makes the
        candidate a shadow of that share of requests instead of a route.
        """
        current = self.plane.get_endpoint(record.endpoint).spec
        stable_weight = 100.0 - candidate_weight
        routes = []
        if stable_weight > 0 or stable_warm:
            routes.append(
                {"model": record.stable_model, "version": record.stable_version, "weight": stable_weight}
            )
        if candidate_weight > 0 or candidate_warm:
            routes.append(
                {
                    "model": record.candidate_model,
                    "version": record.candidate_version,
                    "weight": candidate_weight,
                }
            )
        candidate = (record.candidate_model, record.candidate_version)
        shadows = [s.model_dump() for s in current.shadows if (s.model, s.version) != candidate]
        if mirror is not None:
            shadows.append({"model": candidate[0], "version": candidate[1], "sample_percent": mirror})
        spec = EndpointSpec.model_validate({**current.model_dump(), "routes": routes, "shadows": shadows})
        change = Change(cause, rollout_id=record.id)
        self.plane.apply_spec(spec, action="endpoint.route", actor=actor, reason=reason, change=change)

    def _undo_start(self, record: RolloutRecord, actor: str) -> None:
        """After a failed start: the stable version alone again, and no challenger."""
        with contextlib.suppress(WorkbenchError):
            self._traffic(
                record,
                0.0,
                actor,
                f"rollout {record.id}: start failed",
                cause=RevisionCause.AUTOMATIC_ROLLBACK,
            )
        with contextlib.suppress(WorkbenchError):
            self.plane.delete_alias(
                record.candidate_model, CHALLENGER, actor=actor, reason=f"rollout {record.id}"
            )

    def _promote(self, record: RolloutRecord, reason: str, actor: str, evidence: Any = None) -> RolloutRecord:
        record = self._transition(record.id, Phase.PROMOTING, reason, evidence=evidence)
        self._traffic(record, 100.0, actor, f"rollout {record.id}: promote", cause=RevisionCause.PROMOTE)
        self.plane.clear_rejection(
            record.endpoint,
            record.candidate_model,
            record.candidate_version,
            actor=actor,
            reason=f"promoted by rollout {record.id}",
        )
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
        self._forget(record.id)
        return self._transition(record.id, Phase.SUCCEEDED, "candidate promoted to 100% and champion")

    def _complete(self, record: RolloutRecord, reason: str, evidence: Any) -> RolloutRecord:
        """A shadow that passed: stop mirroring; live traffic and champion stay as they were."""
        self._traffic(record, 0.0, CONTROLLER, f"rollout {record.id}: shadow done")
        with contextlib.suppress(WorkbenchError):
            self.plane.delete_alias(
                record.candidate_model, CHALLENGER, actor=CONTROLLER, reason=f"rollout {record.id}"
            )
        self.plane.audit.append(
            actor=CONTROLLER,
            action="rollout.complete",
            target=f"endpoint:{record.endpoint}",
            after={
                "shadow": f"models:/{record.candidate_model}/{record.candidate_version}",
                "evidence": evidence,
            },
            reason=reason,
            link=f"rollout:{record.id}",
        )
        self._forget(record.id)
        return self._transition(record.id, Phase.SUCCEEDED, reason, evidence=evidence)

    def _rollback(self, record: RolloutRecord, reason: str, actor: str, evidence: Any) -> RolloutRecord:
        """Traffic first (one route change), then the record: within one tick of the verdict.

        A rollback decided by the analysis (not an operator's abort) rejects the candidate on this
        endpoint, with the failing checks' evidence.
        """
        automatic = actor == CONTROLLER
        cause = RevisionCause.AUTOMATIC_ROLLBACK if automatic else RevisionCause.MANUAL_ROLLBACK
        self._traffic(record, 0.0, actor, f"rollout {record.id}: roll back", cause=cause)
        if automatic:
            self.plane.reject_version(
                record.endpoint,
                record.candidate_model,
                record.candidate_version,
                rollout_id=record.id,
                actor=actor,
                reason=reason,
                evidence=evidence,
            )
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
        self._forget(record.id)
        return self._transition(record.id, Phase.ROLLED_BACK, reason, evidence=evidence)

    def _forget(self, rollout_id: str) -> None:
        self._telemetry.pop(rollout_id, None)
        self._labels_seen.pop(rollout_id, None)

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
