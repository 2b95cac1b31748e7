"""A/B experiments as the control plane runs them: lifecycle, assignment, outcomes, looks, decisions.

An experiment takes its endpoint's traffic over while it runs: starting it routes the variants at their
weights with the experiment's own sticky salt, pausing or ending it puts back the routes it found (its
baseline). Every such change goes through :meth:`ControlPlane.apply_spec` like any traffic change, so
it has a revision, an audit event and replicas that are ready before they are routed, and the
experiment's own move is committed in that same transaction.

Units are assigned from the prediction log (:mod:`workbench.experiments.assignment`), fed by the same
tail that indexes requests for feedback. Outcomes are joined by unit or by request id, exactly once per
unit and metric. A loop looks at each running experiment, keeps the looks for the charts, audits each
new verdict with its evidence and, unless told not to, acts on a stopping one: a winner or futility
concludes the experiment, a guardrail breach or a sample-ratio mismatch pauses it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection

from workbench.errors import ConflictError, NotFoundError, ValidationError, WorkbenchError
from workbench.experiments.assignment import assignments
from workbench.experiments.decide import decision_dict
from workbench.experiments.looks import look
from workbench.records.experiments import ExperimentRecord, ExperimentState
from workbench.registry.refs import ModelRef
from workbench.revisions import Change, RevisionCause
from workbench.specs.endpoint import EndpointSpec
from workbench.specs.experiment import ExperimentSpec
from workbench.specs.rollout import RolloutSpec, Strategy
from workbench.store.experiments import ExperimentStore, Outcome

if TYPE_CHECKING:
    from workbench.control_plane import ControlPlane
    from workbench.store.rollouts import RolloutRecord

log = logging.getLogger("workbench.experiments")

ENGINE = "experiment-engine"  # the actor of what the loop decides
MAX_OUTCOMES = 10_000
ACTIVE = (ExperimentState.RUNNING, ExperimentState.PAUSED)
#: Verdicts the engine acts on (with ``auto_stop``), and how.
CONCLUDES = frozenset({"winner", "futility"})
PAUSES = frozenset({"guardrail_breach", "srm"})


class OutcomeItem(BaseModel):
    """One outcome: for a unit (the routing key, or a request id with ``unit: request``), or for the
    request that exposed it (its unit is found through the prediction log)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    unit: str | None = Field(default=None, min_length=1, max_length=200)
    request_id: str | None = Field(default=None, min_length=1, max_length=200)
    metric: str = Field(min_length=1, max_length=63)
    value: float = Field(allow_inf_nan=False)
    covariate: float | None = Field(
        default=None, allow_inf_nan=False, description="the unit's pre-experiment value, for CUPED"
    )

    @model_validator(mode="after")
    def _one_reference(self) -> OutcomeItem:
        if (self.unit is None) == (self.request_id is None):
            raise ValueError("an outcome names its unit or its request_id (one of them)")
        return self


class OutcomesRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    outcomes: list[OutcomeItem] = Field(min_length=1, max_length=MAX_OUTCOMES)


def _routes_of(spec: ExperimentSpec) -> list[dict[str, Any]]:
    return [{"model": v.model, "version": v.version, "weight": v.weight} for v in spec.variants]


def salt_of(name: str) -> str:
    return f"experiment:{name}"


class ExperimentService:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.store = ExperimentStore()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()  # lifecycle commands and the loop's acting, one at a time
        self._verdicts: dict[str, str] = {}  # the last audited verdict per experiment
        self._last_look: dict[str, float] = {}
        #: Per experiment since this process started: requests a variant served that assigned no unit
        #: (``without_key``: a by-key experiment's request with no routing key; ``elsewhere``: a
        #: version that is no variant, an explicit ``x-workbench-version``). A client that forgets the
        #: header shows up here rather than silently shrinking the experiment.
        self._unassigned: dict[str, dict[str, int]] = {}
        self._counts_lock = threading.Lock()

    # --------------------------------------------------------------- reads
    def get(self, name: str) -> ExperimentRecord:
        with self.plane.db.read() as connection:
            return self.store.get(connection, name)

    def find(
        self, *, endpoint: str | None = None, state: ExperimentState | None = None
    ) -> list[ExperimentRecord]:
        with self.plane.db.read() as connection:
            return self.store.find(connection, endpoint=endpoint, state=state)

    def active_on(self, endpoint: str) -> ExperimentRecord | None:
        """The endpoint's running or paused experiment (there is at most one)."""
        for record in self.find(endpoint=endpoint):
            if record.state in ACTIVE:
                return record
        return None

    def status(self, name: str) -> dict[str, Any]:
        """The record, units per variant and a fresh look (decided now, from the store)."""
        self._poll_feed(self.get(name).endpoint)
        with self.plane.db.read() as connection:
            record = self.store.get(connection, name)
            decision = decision_dict(look(self.store, connection, name), at=time.time())
        with self._counts_lock:
            unassigned = dict(self._unassigned.get(name, {"without_key": 0, "elsewhere": 0}))
        return {
            "experiment": record.model_dump(mode="json"),
            "assigned": {v.name: decision["assigned"].get(v.name, 0) for v in record.spec.variants},
            "unassigned_requests": unassigned,
            "decision": decision,
        }

    def looks(self, name: str, *, limit: int = 500, after: float | None = None) -> list[dict[str, Any]]:
        with self.plane.db.read() as connection:
            self.store.get(connection, name)
            return self.store.looks(connection, name, limit=limit, after=after)

    # ----------------------------------------------------------- lifecycle
    def create(self, spec: ExperimentSpec, *, actor: str, reason: str | None = None) -> ExperimentRecord:
        self.plane.get_endpoint(spec.endpoint)  # 404 for an unknown endpoint
        for variant in spec.variants:
            try:
                self.plane.registry.resolve(ModelRef.parse(f"models:/{variant.model}/{variant.version}"))
            except NotFoundError as exc:
                raise ValidationError(
                    f"variant {variant.name!r}: {exc.message}", variant=variant.name
                ) from None
        with self.plane.db.write() as connection:
            record = self.store.create(connection, spec, actor=actor)
            self.plane.audit.record(
                connection,
                actor=actor,
                action="experiment.create",
                target=f"experiment:{spec.name}",
                after=spec.model_dump(mode="json"),
                reason=reason,
                link=f"endpoint:{spec.endpoint}",
            )
        return record

    def start(
        self,
        name: str,
        *,
        actor: str,
        reason: str | None = None,
        expected_revision: int | None = None,
    ) -> ExperimentRecord:
        """Start (or resume) it: the endpoint routes the variants at their weights, sticky per unit."""
        with self._lock:
            record = self.get(name)
            if record.state not in (ExperimentState.DRAFT, ExperimentState.PAUSED):
                raise ConflictError(
                    f"experiment {name!r} is {record.state.value}: only a draft or a paused one starts",
                    state=record.state.value,
                )
            other = self.active_on(record.endpoint)
            if other is not None and other.name != name:
                raise ConflictError(
                    f"endpoint {record.endpoint!r} already has experiment {other.name!r} "
                    f"({other.state.value}); conclude it first",
                    experiment=other.name,
                )
            active = self.plane.rollouts.find(endpoint=record.endpoint, active_only=True)
            if active:
                raise ConflictError(
                    f"endpoint {record.endpoint!r} has an active rollout ({active[0].id}); "
                    "an experiment needs the traffic to itself",
                    rollout=active[0].id,
                )
            endpoint = self.plane.get_endpoint(record.endpoint).spec
            baseline = record.baseline or [r.model_dump(mode="json") for r in endpoint.routes]
            wanted = self._endpoint_with(endpoint, _routes_of(record.spec), salt_of(name))
            verb = "resume" if record.state == ExperimentState.PAUSED else "start"
            moved = self._move_with_traffic(
                record,
                ExperimentState.RUNNING,
                wanted,
                actor=actor,
                action=f"experiment.{verb}",
                reason=reason,
                expected_revision=expected_revision,
                baseline=baseline,
            )
            self._verdicts.pop(name, None)
            return moved

    def pause(self, name: str, *, actor: str, reason: str | None = None) -> ExperimentRecord:
        """Stop assigning and put the baseline's routes back; outcomes of assigned units still join."""
        with self._lock:
            record = self.get(name)
            if record.state != ExperimentState.RUNNING:
                raise ConflictError(
                    f"experiment {name!r} is {record.state.value}: only a running one pauses",
                    state=record.state.value,
                )
            return self._move_with_traffic(
                record,
                ExperimentState.PAUSED,
                self._baseline_spec(record),
                actor=actor,
                action="experiment.pause",
                reason=reason,
            )

    def conclude(self, name: str, *, actor: str, reason: str | None = None) -> ExperimentRecord:
        """End it with the decision of a last look; a running one gives the baseline its routes back."""
        with self._lock:
            record = self.get(name)
            if record.state == ExperimentState.CONCLUDED:
                raise ConflictError(f"experiment {name!r} is already concluded", state="concluded")
            if record.state == ExperimentState.RUNNING:
                wanted: EndpointSpec | None = self._baseline_spec(record)
            else:  # a draft never had the traffic; a paused one gave it back already
                wanted = None
            return self._move_with_traffic(
                record,
                ExperimentState.CONCLUDED,
                wanted,
                actor=actor,
                action="experiment.conclude",
                reason=reason,
            )

    def promote(
        self,
        name: str,
        *,
        actor: str,
        strategy: Literal["canary", "blue_green"] = "canary",
        variant: str | None = None,
        reason: str | None = None,
        rollout: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Conclude the experiment if it is not, then roll its winner out with a canary or a blue-green.

        The winner is the last look's; ``variant`` names another one on purpose (audited as such).
        ``rollout``: more rollout spec fields (steps, analysis, blue_green options, tick_s)."""
        with self._lock:
            record = self.get(name)
            decision = self._latest_decision(record)
            winner = decision.get("winner")
            chosen = variant or winner
            if chosen is None:
                raise ConflictError(
                    f"experiment {name!r} has no winner (its last look: {decision.get('verdict')}: "
                    f"{decision.get('reason')}); name a variant to promote it anyway",
                    verdict=decision.get("verdict"),
                )
            found = [v for v in record.spec.variants if v.name == chosen]
            if not found:
                raise ValidationError(
                    f"experiment {name!r} has no variant {chosen!r}",
                    variants=[v.name for v in record.spec.variants],
                )
            target = found[0]
            if target.name == record.spec.control.name:
                raise ConflictError(
                    f"variant {chosen!r} is the control: there is nothing to roll out", variant=chosen
                )
            if record.state != ExperimentState.CONCLUDED:
                record = self.conclude(name, actor=actor, reason=reason or f"promoting {chosen}")
            fixed = {"endpoint", "candidate", "strategy"} & set(rollout or {})
            if fixed:
                raise ValidationError(
                    f"the rollout's {', '.join(sorted(fixed))} come from the experiment; leave them out"
                )
            spec = RolloutSpec.model_validate(
                {
                    **(rollout or {}),
                    "endpoint": record.endpoint,
                    "candidate": f"models:/{target.model}/{target.version}",
                    "strategy": Strategy(strategy),
                }
            )
            why = reason or (
                f"experiment {name}: {chosen} won"
                if chosen == winner
                else f"experiment {name}: {chosen} chosen"
            )
            started: RolloutRecord = self.plane.rollouts.start(spec, actor=actor, reason=why)
            with self.plane.db.write() as connection:
                self.plane.audit.record(
                    connection,
                    actor=actor,
                    action="experiment.promote",
                    target=f"experiment:{name}",
                    after={"variant": chosen, "winner": winner, "strategy": strategy, "rollout": started.id},
                    reason=why,
                    link=f"rollout:{started.id}",
                )
            return {
                "experiment": self.get(name).model_dump(mode="json"),
                "rollout": started.model_dump(mode="json"),
            }

    def end_with_endpoint(self, connection: Connection, endpoint: str, *, actor: str) -> list[str]:
        """Conclude the endpoint's unfinished experiments in the transaction that deletes it."""
        ended = []
        for record in self.store.find(connection, endpoint=endpoint):
            if record.state == ExperimentState.CONCLUDED:
                continue
            self.store.move(connection, record.name, ExperimentState.CONCLUDED)
            self.plane.audit.record(
                connection,
                actor=actor,
                action="experiment.conclude",
                target=f"experiment:{record.name}",
                before={"state": record.state.value},
                after={"state": ExperimentState.CONCLUDED.value},
                reason=f"its endpoint {endpoint!r} was deleted",
                link=f"endpoint:{endpoint}",
            )
            ended.append(record.name)
        return ended

    def interrupt(self, endpoint: str, *, actor: str, reason: str) -> ExperimentRecord | None:
        """Pause the endpoint's running experiment (a rollback comes first); None if none runs."""
        record = self.active_on(endpoint)
        if record is None or record.state != ExperimentState.RUNNING:
            return None
        return self.pause(record.name, actor=actor, reason=reason)

    # ------------------------------------------------------------ outcomes
    def add_outcomes(self, name: str, items: Sequence[OutcomeItem], *, actor: str) -> dict[str, Any]:
        """Join outcomes: an unknown metric or request id refuses the batch; an outcome repeated for a
        unit and metric is kept once; a unit the experiment never assigned is left out and reported."""
        record = self.get(name)
        if record.state == ExperimentState.DRAFT:
            raise ConflictError(f"experiment {name!r} has not started: it has no units yet", state="draft")
        units = self._units_of(record, items)
        outcomes = [
            Outcome(unit=unit, metric=item.metric, value=item.value, covariate=item.covariate)
            for unit, item in zip(units, items, strict=True)
        ]
        with self.plane.db.write() as connection:
            result = self.store.add_outcomes(connection, record, outcomes)
            self.plane.audit.record(
                connection,
                actor=actor,
                action="experiment.outcomes",
                target=f"experiment:{name}",
                after={
                    "joined": result.joined,
                    "repeated": result.repeated,
                    "unassigned": len(result.unassigned),
                },
            )
        unassigned = sorted(set(result.unassigned))
        return {
            "experiment": name,
            "joined": result.joined,
            "repeated": result.repeated,
            # Units no variant served while it ran (never exposed, or a wrong key): kept out, and named.
            "unassigned": len(unassigned),
            "unassigned_units": unassigned[:50],
        }

    def add_endpoint_outcomes(
        self, endpoint: str, items: Sequence[OutcomeItem], *, actor: str
    ) -> dict[str, Any]:
        """Outcomes sent to the feedback API: joined to the endpoint's running or paused experiment."""
        record = self.active_on(endpoint)
        if record is None:
            raise ConflictError(
                f"endpoint {endpoint!r} has no running or paused experiment to join outcomes to",
                endpoint=endpoint,
            )
        return self.add_outcomes(record.name, items, actor=actor)

    def _units_of(self, record: ExperimentRecord, items: Sequence[OutcomeItem]) -> list[str]:
        """Each outcome's unit; a request id is looked up in the prediction log's index."""
        by_request = [item.request_id for item in items if item.request_id is not None]
        if not by_request:
            self._poll_feed(record.endpoint)
            return [str(item.unit) for item in items]
        known = self.plane.monitoring.engine.feed(record.endpoint).lookup(by_request)
        unknown = sorted({r for r in by_request if r not in known})
        if unknown:
            raise NotFoundError(
                f"{len(unknown)} request id(s) are not in the prediction log of {record.endpoint!r}",
                unknown=unknown[:50],
            )
        units: list[str] = []
        keyless: list[str] = []
        for item in items:
            if item.request_id is None:
                units.append(str(item.unit))
            elif record.spec.unit == "request":
                units.append(item.request_id)
            else:
                key = known[item.request_id].routing_key
                if key is None:
                    keyless.append(item.request_id)
                units.append(key or "")
        if keyless:
            raise ValidationError(
                f"{len(keyless)} request(s) carried no routing key, and experiment {record.name!r} "
                "assigns by key: send their outcomes by unit",
                keyless=keyless[:50],
            )
        return units

    def _poll_feed(self, endpoint: str) -> None:
        """Bring assignment up to what the log holds now (the feed calls :meth:`observe`)."""
        try:
            self.plane.monitoring.engine.feed(endpoint).poll()
        except Exception:
            log.exception("experiments: polling the feed of %s failed", endpoint)

    # ---------------------------------------------------------- assignment
    def observe(self, endpoint: str, records: Sequence[dict[str, Any]]) -> None:
        """Called with what an endpoint's prediction log gained: assign the running experiment's units."""
        if not records:
            return
        with self.plane.db.read() as connection:
            running = self.store.find(connection, endpoint=endpoint, state=ExperimentState.RUNNING)
        for record in running:
            if record.running_since is None:
                continue
            found = assignments(record.spec, records, since=record.running_since.timestamp())
            if found.without_key or found.elsewhere:
                with self._counts_lock:
                    counts = self._unassigned.setdefault(record.name, {"without_key": 0, "elsewhere": 0})
                    counts["without_key"] += found.without_key
                    counts["elsewhere"] += found.elsewhere
            if found.units:
                with self.plane.db.write() as connection:
                    self.store.assign(connection, record.name, found.units)

    # ---------------------------------------------------------------- looks
    def look_now(self, name: str) -> dict[str, Any]:
        """One look, kept with the others and acted on (the loop calls this for every running experiment)."""
        record = self.get(name)
        self._poll_feed(record.endpoint)
        now = time.time()
        with self.plane.db.write() as connection:
            decision = decision_dict(look(self.store, connection, name), at=time.time())
            units = sum(self.store.assigned_counts(connection, name).values())
            self.store.add_look(connection, name, ts=now, units=units, decision=decision)
            self.store.save_decision(connection, name, decision)
            verdict = str(decision["verdict"])
            if name not in self._verdicts and record.decision is not None:
                # After a restart: the verdict kept with the record was audited by the last process.
                self._verdicts[name] = str(record.decision.get("verdict"))
            if self._verdicts.get(name) != verdict:
                previous = self._verdicts.get(name)
                self._verdicts[name] = verdict
                if previous is not None or verdict != "continue":
                    self.plane.audit.record(
                        connection,
                        actor=ENGINE,
                        action="experiment.decision",
                        target=f"experiment:{name}",
                        after=decision,
                        reason=str(decision["reason"]),
                    )
        if record.spec.auto_stop and record.state == ExperimentState.RUNNING:
            self._act(record, decision)
        return decision

    def _act(self, record: ExperimentRecord, decision: dict[str, Any]) -> None:
        verdict = decision["verdict"]
        why = f"{verdict}: {decision['reason']}"
        try:
            if verdict in CONCLUDES:
                self.conclude(record.name, actor=ENGINE, reason=why)
            elif verdict in PAUSES:
                self.pause(record.name, actor=ENGINE, reason=why)
        except ConflictError as exc:  # someone moved it meanwhile: their move stands
            log.info("experiment %s: %s", record.name, exc.message)

    def _check_traffic(self, record: ExperimentRecord) -> bool:
        """False (and the experiment paused, routes untouched) if someone changed the endpoint's traffic."""
        endpoint = self.plane.get_endpoint(record.endpoint).spec
        routes = sorted((r.model, r.version, r.weight) for r in endpoint.routes if r.weight > 0)
        planned = sorted((v.model, v.version, v.weight) for v in record.spec.variants)
        if routes == planned and endpoint.sticky_salt == salt_of(record.name):
            return True
        with self._lock, self.plane.db.write() as connection:
            try:
                self.store.move(
                    connection, record.name, ExperimentState.PAUSED, expected_revision=record.revision
                )
            except ConflictError:
                return False
            self.plane.audit.record(
                connection,
                actor=ENGINE,
                action="experiment.pause",
                target=f"experiment:{record.name}",
                reason=f"the traffic of {record.endpoint!r} was changed outside the experiment; "
                "its routes are left as they are",
            )
        return False

    def _latest_decision(self, record: ExperimentRecord) -> dict[str, Any]:
        if record.state == ExperimentState.CONCLUDED and record.decision is not None:
            return record.decision
        decision: dict[str, Any] = self.status(record.name)["decision"]
        return decision

    # ----------------------------------------------------------------- loop
    def start_loop(self, every: float = 1.0) -> None:
        self._thread = threading.Thread(target=self._loop, args=(every,), name="experiments", daemon=True)
        self._thread.start()

    def stop_loop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self, every: float) -> None:
        while not self._stop.wait(every):
            self.tick(time.monotonic())

    def tick(self, now: float) -> None:
        """Look at each running experiment whose look is due."""
        try:
            running = self.find(state=ExperimentState.RUNNING)
        except Exception:
            log.exception("experiments: cannot list the running experiments")
            return
        interval = self.plane.settings.experiment_look_s
        for record in running:
            if now - self._last_look.get(record.name, float("-inf")) < interval:
                continue
            self._last_look[record.name] = now
            try:
                if self._check_traffic(record):
                    self.look_now(record.name)
            except WorkbenchError as exc:
                log.warning("experiment %s: look skipped: %s", record.name, exc.message)
            except Exception:  # one broken experiment must not stop the others
                log.exception("experiment %s: look failed", record.name)

    # -------------------------------------------------------------- helpers
    @staticmethod
    def _endpoint_with(
        endpoint: EndpointSpec, routes: list[dict[str, Any]], salt: str | None
    ) -> EndpointSpec:
        return EndpointSpec.model_validate({**endpoint.model_dump(), "routes": routes, "sticky_salt": salt})

    def _baseline_spec(self, record: ExperimentRecord) -> EndpointSpec:
        endpoint = self.plane.get_endpoint(record.endpoint).spec
        baseline = record.baseline or [r.model_dump(mode="json") for r in endpoint.routes]
        return self._endpoint_with(endpoint, baseline, None)

    def _move_with_traffic(
        self,
        record: ExperimentRecord,
        to: ExperimentState,
        wanted: EndpointSpec | None,
        *,
        actor: str,
        action: str,
        reason: str | None,
        expected_revision: int | None = None,
        baseline: list[dict[str, Any]] | None = None,
    ) -> ExperimentRecord:
        """Move the experiment and change the endpoint's traffic in one transaction (no traffic change
        when ``wanted`` is None or already what the endpoint routes)."""
        moved: list[ExperimentRecord] = []
        decision: dict[str, Any] | None = None
        if to == ExperimentState.CONCLUDED and record.state != ExperimentState.DRAFT:
            with self.plane.db.read() as connection:
                decision = decision_dict(look(self.store, connection, record.name), at=time.time())

        def guard(connection: Connection) -> None:
            moved.append(
                self.store.move(
                    connection,
                    record.name,
                    to,
                    expected_revision=expected_revision if expected_revision is not None else record.revision,
                    decision=decision,
                    baseline=baseline,
                )
            )
            self.plane.audit.record(
                connection,
                actor=actor,
                action=action,
                target=f"experiment:{record.name}",
                before={"state": record.state.value},
                after={"state": to.value, **({"decision": decision} if decision is not None else {})},
                reason=reason,
                link=f"endpoint:{record.endpoint}",
            )

        current = self.plane.get_endpoint(record.endpoint).spec
        if wanted is None or wanted == current:
            with self.plane.db.write() as connection:
                guard(connection)
        else:
            self.plane.apply_spec(
                wanted,
                action="endpoint.route",
                actor=actor,
                reason=reason or f"{action} {record.name}",
                change=Change(RevisionCause.EXPERIMENT),
                guard=guard,
            )
        return moved[-1]
