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
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from workbench.errors import ConflictError, NotFoundError, UnavailableError, ValidationError, WorkbenchError
from workbench.registry.refs import ModelRef
from workbench.revisions import Change, RevisionCause
from workbench.rollouts.decide import (
    Action,
    Decision,
)
from workbench.rollouts.evaluation import RolloutEvaluator
from workbench.rollouts.gate import GateResult, input_columns, run_gate, smoke_bodies
from workbench.rollouts.phases import Phase
from workbench.specs.endpoint import EndpointSpec
from workbench.specs.rollout import RolloutSpec, Strategy
from workbench.store.rollouts import RolloutAnalysis, RolloutEvent, RolloutRecord, RolloutRepository

if TYPE_CHECKING:
    from workbench.rollouts.plane import RolloutPlane

log = logging.getLogger("workbench.rollouts")
CHAMPION, CHALLENGER = "champion", "challenger"
CONTROLLER = "rollout-controller"  # the actor of every change the analysis decides


class RolloutMovedError(ConflictError):
    """Somebody changed the rollout since this tick (or command) read it: its change was not made."""


@dataclasses.dataclass(frozen=True)
class _Then:
    """The transition committed in the same transaction as a route change."""

    phase: Phase
    message: str
    step_index: int | None = None
    evidence: Any = None


class RolloutController:
    """Commands and ticks, with no lock held across a replica's warm-up or an HTTP call.

    Concurrency: a rollout's ``revision`` in the store decides. Every route change made for a rollout
    re-reads it in the transaction that commits the change and either records the step there (a canary
    step, a blue-green switch) or holds the rollout (bumps its revision) for the ending that follows; a
    tick or command that read an older revision is refused (:class:`RolloutMovedError`) and changes nothing.
    So a tick that read PROGRESSING never routes traffic after an abort (or pause, promote) committed
    meanwhile, whatever the interleaving. Endings (promote, complete, roll back) are claimed in memory
    first, so an operator's command arriving while one is in progress is refused at once instead of
    interleaving with it. The only lock is per rollout and only ticks take it (one tick of a rollout
    at a time, and none while its start is in progress); ticks of different rollouts never wait on
    each other, and commands never wait on a tick.
    """

    def __init__(self, plane: RolloutPlane) -> None:
        self.plane = plane
        self.repo = RolloutRepository()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.evaluator = RolloutEvaluator(plane.settings.home / "predictions", plane.db, self.repo)
        self._latest: dict[str, dict[str, Any]] = {}
        self._guard = threading.Lock()  # guards the collections below, never held across anything
        self._tick_locks: dict[str, threading.RLock] = {}
        self._ending: set[str] = set()
        self._ticking: dict[str, threading.Thread] = {}  # the loop's ticks in flight, by rollout

    def _tick_lock(self, rollout_id: str) -> threading.RLock:
        with self._guard:
            return self._tick_locks.setdefault(rollout_id, threading.RLock())

    @contextlib.contextmanager
    def _claim_ending(self, rollout_id: str) -> Iterator[bool]:
        """Claim the right to end a rollout (promote, complete, roll back); False if another holds it."""
        with self._guard:
            claimed = rollout_id not in self._ending
            self._ending.add(rollout_id)
        try:
            yield claimed
        finally:
            if claimed:
                with self._guard:
                    self._ending.discard(rollout_id)

    def _check_not_ending(self, record: RolloutRecord) -> None:
        with self._guard:
            ending = record.id in self._ending
        if ending:
            raise ConflictError(
                f"rollout {record.id} is ending (being promoted or rolled back) right now", rollout=record.id
            )

    # --------------------------------------------------------------- commands
    def start(
        self,
        spec: RolloutSpec,
        *,
        actor: str,
        reason: str | None = None,
        force: bool = False,
        expected_revision: int | None = None,
    ) -> RolloutRecord:
        """``force``: start even though an analysis rejected the candidate on this endpoint before.
        ``expected_revision``: refuse unless the endpoint is still what the caller confirmed."""
        spec = self._with_endpoint_objective(spec)
        record = self._create(
            spec, actor=actor, reason=reason, force=force, expected_revision=expected_revision
        )
        with self._tick_lock(record.id):  # the loop must not tick a blue-green between its gate and switch
            return self._begin(record, spec, actor)

    def _with_endpoint_objective(self, spec: RolloutSpec) -> RolloutSpec:
        """Checks stated against the endpoint's latency objective get its value now, recorded with the spec."""
        objective = self.plane.get_endpoint(spec.endpoint).spec.latency_objective_ms
        try:
            analysis = spec.analysis.with_endpoint_objective(objective, spec.endpoint)
        except ValueError as exc:
            raise ValidationError(str(exc), endpoint=spec.endpoint) from None
        return spec if analysis is spec.analysis else spec.model_copy(update={"analysis": analysis})

    def _create(
        self,
        spec: RolloutSpec,
        *,
        actor: str,
        reason: str | None,
        force: bool,
        expected_revision: int | None = None,
    ) -> RolloutRecord:
        current = self.plane.get_endpoint(spec.endpoint)
        if expected_revision is not None and current.revision != expected_revision:
            raise ConflictError(
                f"endpoint {spec.endpoint!r} changed meanwhile: revision is {current.revision}, "
                f"expected {expected_revision}",
                endpoint=spec.endpoint,
                revision=current.revision,
            )
        endpoint = current.spec
        with self.plane.db.read() as connection:
            active = self.repo.active_for(connection, spec.endpoint)
        if active is not None:  # the database refuses it too; this says so before anything else
            raise ConflictError(
                f"endpoint {spec.endpoint!r} already has an active rollout ({active.id}, {active.phase.value})",
                endpoint=spec.endpoint,
                rollout=active.id,
            )
        experiment = self.plane.experiments.active_on(spec.endpoint)
        if experiment is not None:
            raise ConflictError(
                f"endpoint {spec.endpoint!r} has experiment {experiment.name!r} ({experiment.state.value}); "
                "conclude it (or promote its winner) before a rollout",
                endpoint=spec.endpoint,
                experiment=experiment.name,
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
        rejection = next(
            (
                r
                for r in self.plane.rejected_versions(spec.endpoint)
                if (r.model, r.version) == (candidate.name, candidate.version)
            ),
            None,
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
        return record

    def _begin(self, record: RolloutRecord, spec: RolloutSpec, actor: str) -> RolloutRecord:
        """The candidate's first traffic (canary), mirror (shadow) or warm-up and gate (blue-green)."""
        try:
            self.plane.set_alias(
                record.candidate_model,
                CHALLENGER,
                record.candidate_version,
                actor=actor,
                reason=f"rollout {record.id}",
            )
            if spec.strategy == Strategy.CANARY:
                message = f"step 0: {spec.steps[0].weight:g}% to the candidate"
                then = _Then(Phase.PROGRESSING, message)
                return self._traffic(
                    record, spec.steps[0].weight, actor, f"rollout {record.id}: step 0", then=then
                )
            if spec.strategy == Strategy.SHADOW:
                message = (
                    f"mirroring {spec.shadow.sample_percent:g}% of requests to the candidate "
                    f"for {spec.shadow.duration_s:g}s"
                )
                then = _Then(Phase.PROGRESSING, message)
                mirror = spec.shadow.sample_percent
                return self._traffic(
                    record, 0.0, actor, f"rollout {record.id}: mirror", mirror=mirror, then=then
                )
            record = self._traffic(record, 0.0, actor, f"rollout {record.id}: warm", candidate_warm=True)
            gate = self._gate(record, spec)
            if not gate.passed:
                raise UnavailableError(f"the candidate failed its health gate: {gate.summary}")
            message = f"candidate warm at 0%, health gate passed: {gate.summary}"
            record = self._transition_from(record, Phase.PROGRESSING, message)
        except RolloutMovedError:
            # Aborted while it started: the abort routed traffic back; only the alias may be left.
            with contextlib.suppress(WorkbenchError):
                self.plane.delete_alias(
                    record.candidate_model, CHALLENGER, actor=actor, reason=f"rollout {record.id}"
                )
            raise
        except WorkbenchError as exc:
            self._undo_start(record, actor)
            self._transition(record.id, Phase.FAILED, f"candidate could not be started: {exc.message}")
            raise
        return self._switch(record, spec, actor)

    def advance(self, rollout_id: str, *, now: float | None = None) -> RolloutRecord:
        """One tick: analyse the rollout so far and apply the decision."""
        with self._tick_lock(rollout_id):  # the loop and a test must not tick one rollout twice at once
            record = self.get(rollout_id)
            if record.phase != Phase.PROGRESSING:
                return record
            spec = RolloutSpec.model_validate(record.spec)
            at = time.time() if now is None else now
            try:
                if spec.strategy == Strategy.BLUE_GREEN and record.step_index == 0:
                    return self._switch(record, spec, CONTROLLER)  # a crash came between gate and switch
                decision = self.evaluator.decide(record, spec, at)
                self._latest[record.id] = {
                    "at": at,
                    "decision": decision.action.value,
                    "reason": decision.reason,
                    **decision.evidence,
                }
                self._record_analysis(record, decision, at)
                return self._apply(record, decision)
            except RolloutMovedError:
                return self.get(rollout_id)  # an operator's command came first: this tick changed nothing

    def _record_analysis(self, record: RolloutRecord, decision: Decision, at: float) -> None:
        """Every tick's analysis in its own row, for charts of the estimates and bounds over time.

        Not an event (events are transitions), and written before the decision is applied, so the tick
        that decides a rollback or promotion has its row too. A failed write is logged; the tick goes on.
        """
        evidence = decision.evidence
        if "metrics" not in evidence:
            return
        try:
            with self.plane.db.write() as connection:
                self.repo.add_analysis(
                    connection,
                    record.id,
                    at=at,
                    step_index=int(evidence.get("step", record.step_index)),
                    weight=evidence.get("weight"),
                    decision=decision.action.value,
                    reason=decision.reason,
                    evidence=evidence,
                )
        except Exception:
            log.exception("rollout %s: the analysis of this tick was not recorded", record.id)

    def analysis(self, rollout_id: str) -> dict[str, Any] | None:
        """The latest analysis of a rollout: from this controller's last tick, else the newest recorded
        analysis, else its last evidence."""
        if rollout_id in self._latest:
            return self._latest[rollout_id]
        with self.plane.db.read() as connection:
            latest = self.repo.latest_analysis(connection, rollout_id)
        if latest is not None:
            return {
                "at": latest.at.timestamp(),
                "decision": latest.decision,
                "reason": latest.reason,
                **latest.evidence,
            }
        for event in reversed(self.events(rollout_id)):
            if isinstance(event.evidence, dict) and "metrics" in event.evidence:
                return {"at": event.at.timestamp(), "reason": event.message, **event.evidence}
        return None

    def pause(self, rollout_id: str, *, actor: str) -> RolloutRecord:
        return self._transition(rollout_id, Phase.PAUSED, f"paused by {actor}")

    def resume(self, rollout_id: str, *, actor: str) -> RolloutRecord:
        return self._transition(rollout_id, Phase.PROGRESSING, f"resumed by {actor}")

    def promote(self, rollout_id: str, *, actor: str, reason: str | None = None) -> RolloutRecord:
        record = self._unended(rollout_id)
        with self._claim_ending(rollout_id) as claimed:
            if not claimed:
                self._check_not_ending(record)
            return self._promote(record, f"promoted by {actor}" + (f": {reason}" if reason else ""), actor)

    def abort(self, rollout_id: str, *, actor: str, reason: str | None = None) -> RolloutRecord:
        """Back to the stable version; a tick that read the rollout before the abort changes nothing."""
        reason_text = f"aborted by {actor}" + (f": {reason}" if reason else "")
        for _ in range(5):
            record = self._unended(rollout_id)
            with self._claim_ending(rollout_id) as claimed:
                if not claimed:
                    self._check_not_ending(record)
                try:
                    return self._rollback(record, reason_text, actor, None)
                except RolloutMovedError:
                    continue  # a tick stepped meanwhile: abort from where it got
        raise ConflictError(f"rollout {rollout_id} kept changing; try again", rollout=rollout_id)

    def _unended(self, rollout_id: str) -> RolloutRecord:
        record = self.get(rollout_id)
        if record.phase.is_terminal:
            raise ConflictError(f"rollout {rollout_id} has ended ({record.phase.value})", rollout=rollout_id)
        return record

    # ------------------------------------------------------------------ reads
    def get(self, rollout_id: str) -> RolloutRecord:
        with self.plane.db.read() as connection:
            return self.repo.get(connection, rollout_id)

    def events(self, rollout_id: str) -> list[RolloutEvent]:
        with self.plane.db.read() as connection:
            return self.repo.events(connection, rollout_id)

    def analyses(
        self, rollout_id: str, *, after_id: int | None = None, limit: int = 1000
    ) -> list[RolloutAnalysis]:
        """Every tick's analysis, oldest first (at most ``limit``, after ``after_id``); unknown id: 404."""
        with self.plane.db.read() as connection:
            self.repo.get(connection, rollout_id)
            return self.repo.analyses(connection, rollout_id, after_id=after_id, limit=limit)

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
        with self._guard:
            ticking = list(self._ticking.values())
        for thread in ticking:
            thread.join(timeout=10)

    def _loop(self, every: float) -> None:
        """Each due rollout ticks in a thread of its own: one waiting for replicas holds up no other."""
        last: dict[str, float] = {}
        while not self._stop.wait(every):
            try:
                records = self.find(active_only=True)
            except Exception:
                log.exception("rollouts: cannot list the active rollouts")
                continue
            for record in records:
                if record.phase != Phase.PROGRESSING:
                    continue
                tick = float(record.spec.get("tick_s", 5.0))
                if time.monotonic() - last.get(record.id, 0.0) < tick:
                    continue
                with self._guard:
                    if record.id in self._ticking:
                        continue  # its previous tick is still running
                    thread = threading.Thread(
                        target=self._loop_tick, args=(record.id,), name=f"rollout-{record.id}", daemon=True
                    )
                    self._ticking[record.id] = thread
                last[record.id] = time.monotonic()
                thread.start()

    def _loop_tick(self, rollout_id: str) -> None:
        try:
            self.advance(rollout_id)
        except ConflictError as exc:  # lost a race with a command: the next tick re-reads
            log.info("rollout %s: tick skipped: %s", rollout_id, exc.message)
        except Exception:  # one broken rollout must not stop the others
            log.exception("rollout %s: tick failed", rollout_id)
            with contextlib.suppress(WorkbenchError):
                self._transition(rollout_id, Phase.ERROR, "the controller failed to apply a step")
        finally:
            with self._guard:
                self._ticking.pop(rollout_id, None)

    # ---------------------------------------------------------------- deciding
    def _gate(self, record: RolloutRecord, spec: RolloutSpec) -> GateResult:
        """Smoke requests to the warm candidate, with rows of a registered reference dataset."""
        router = self.plane.endpoint_status(record.endpoint).get("router_url")
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
        if decision.action == Action.INCONCLUSIVE:
            return self._transition_from(
                record, Phase.INCONCLUSIVE, decision.reason, evidence=decision.evidence
            )
        if decision.action == Action.ADVANCE:
            then = _Then(Phase.PROGRESSING, decision.reason, decision.step_index, decision.evidence)
            return self._traffic(record, decision.candidate_weight, CONTROLLER, decision.reason, then=then)
        with self._claim_ending(record.id) as claimed:
            if not claimed:  # an operator is promoting or aborting it right now
                return self.get(record.id)
            if decision.action == Action.ROLLBACK:
                return self._rollback(record, decision.reason, CONTROLLER, decision.evidence)
            if decision.action == Action.PROMOTE:
                return self._promote(record, decision.reason, CONTROLLER, decision.evidence)
            return self._complete(record, decision.reason, decision.evidence)

    def _switch(self, record: RolloutRecord, spec: RolloutSpec, actor: str) -> RolloutRecord:
        """Blue-green: all traffic to the candidate in one route swap, the stable version kept warm."""
        message = (
            f"switched: 100% to the candidate; v{record.stable_version} kept warm for "
            f"{spec.blue_green.keep_warm_s:g}s"
        )
        then = _Then(Phase.PROGRESSING, message, step_index=1)
        return self._traffic(
            record, 100.0, actor, f"rollout {record.id}: switch", stable_warm=True, then=then
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
        then: _Then | None = None,
        guarded: bool = True,
    ) -> RolloutRecord:
        """Route the endpoint between the rollout's two versions; other shadows of it are kept.

        A version routed at 0 % keeps its replicas running (warm) without traffic; ``mirror`` makes the
        candidate a shadow of that share of requests instead of a route. ``guarded`` (the default): the
        change commits only if ``record`` is still the rollout's latest revision, and ``then`` is recorded
        in the same transaction (else the rollout is held: its revision bumped). Returns the rollout as
        committed with the change.
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
        committed: list[RolloutRecord] = []

        def guard(connection: Connection) -> None:
            latest = self.repo.get(connection, record.id)
            if latest.revision != record.revision:
                raise RolloutMovedError(
                    f"rollout {record.id} changed meanwhile (now {latest.phase.value}); "
                    "its traffic was left as it is",
                    rollout=record.id,
                    phase=latest.phase.value,
                )
            if then is None:
                committed.append(self.repo.hold(connection, latest))
            else:
                committed.append(
                    self.repo.transition(
                        connection,
                        latest,
                        then.phase,
                        message=then.message,
                        step_index=then.step_index,
                        evidence=then.evidence,
                    )
                )

        self.plane.apply_spec(
            spec,
            action="endpoint.route",
            actor=actor,
            reason=reason,
            change=change,
            guard=guard if guarded else None,
        )
        return committed[0] if committed else record

    def _undo_start(self, record: RolloutRecord, actor: str) -> None:
        """After a failed start: the stable version alone again, and no challenger."""
        with contextlib.suppress(WorkbenchError):
            self._traffic(
                record,
                0.0,
                actor,
                f"rollout {record.id}: start failed",
                cause=RevisionCause.AUTOMATIC_ROLLBACK,
                guarded=False,
            )
        with contextlib.suppress(WorkbenchError):
            self.plane.delete_alias(
                record.candidate_model, CHALLENGER, actor=actor, reason=f"rollout {record.id}"
            )

    def _promote(self, record: RolloutRecord, reason: str, actor: str, evidence: Any = None) -> RolloutRecord:
        """Candidate to 100 % and champion; the caller holds the rollout's ending claim."""
        record = self._transition_from(record, Phase.PROMOTING, reason, evidence=evidence)
        record = self._traffic(
            record, 100.0, actor, f"rollout {record.id}: promote", cause=RevisionCause.PROMOTE
        )
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
        return self._transition_from(record, Phase.SUCCEEDED, "candidate promoted to 100% and champion")

    def _complete(self, record: RolloutRecord, reason: str, evidence: Any) -> RolloutRecord:
        """A shadow that passed: stop mirroring; live traffic and champion stay as they were."""
        record = self._traffic(record, 0.0, CONTROLLER, f"rollout {record.id}: shadow done")
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
        return self._transition_from(record, Phase.SUCCEEDED, reason, evidence=evidence)

    def _rollback(self, record: RolloutRecord, reason: str, actor: str, evidence: Any) -> RolloutRecord:
        """Traffic first (one route change), then the record: within one tick of the verdict.

        A rollback decided by the analysis (not an operator's abort) rejects the candidate on this
        endpoint, with the failing checks' evidence. The caller holds the rollout's ending claim.
        """
        automatic = actor == CONTROLLER
        # An alert's rollback action is automatic too (no person decided it), but only the analysis rejects.
        by_machine = automatic or actor.startswith("alert:")
        cause = RevisionCause.AUTOMATIC_ROLLBACK if by_machine else RevisionCause.MANUAL_ROLLBACK
        record = self._traffic(record, 0.0, actor, f"rollout {record.id}: roll back", cause=cause)
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
        return self._transition_from(record, Phase.ROLLED_BACK, reason, evidence=evidence)

    def _forget(self, rollout_id: str) -> None:
        self.evaluator.forget(rollout_id)

    def _transition(
        self,
        rollout_id: str,
        phase: Phase,
        message: str,
        *,
        step_index: int | None = None,
        evidence: Any = None,
    ) -> RolloutRecord:
        """A command's transition, from the rollout as it is now (refused while an ending is under way)."""
        record = self.get(rollout_id)
        self._check_not_ending(record)
        return self._transition_from(record, phase, message, step_index=step_index, evidence=evidence)

    def _transition_from(
        self,
        record: RolloutRecord,
        phase: Phase,
        message: str,
        *,
        step_index: int | None = None,
        evidence: Any = None,
    ) -> RolloutRecord:
        """``record`` (as read) to ``phase``, refused if the rollout changed since it was read."""
        with self.plane.db.write() as connection:
            return self.repo.transition(
                connection, record, phase, message=message, step_index=step_index, evidence=evidence
            )
