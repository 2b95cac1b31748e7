"""One A/B experiment (or the list of them): its state, units per variant, the sample-ratio check, the
decision and its comparisons, each primary comparison's estimate and confidence sequence look by look,
and what can be done to it.

Everything shown is a pure function of the feed's snapshot (``Snapshot.experiments``, each record with
its latest decision, and ``Snapshot.experiment_looks``); the page model only keeps the results and hands
the charts the looks they have not drawn yet. Actions are the shared intents of ``workbench.ui.intents``
(the JupyterLab sidebar runs the same ones), previewed from what the page shows and confirmed through
its desk; the control plane decides (a promote without a winner, a resume of a concluded experiment is
refused there, with its reason shown on the page).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import param

from workbench.client import Client
from workbench.errors import ValidationError, WorkbenchError
from workbench.records.endpoints import EndpointRecord
from workbench.records.experiments import ExperimentRecord, ExperimentState
from workbench.specs.experiment import ExperimentSpec, Metric
from workbench.ui import intents
from workbench.ui.feed import Snapshot, Update
from workbench.ui.models.base import PageModel
from workbench.ui.plans import Preview

#: Why, in the audit log, for what is done from the page.
REASON = "from the dashboard"
ACTIONS = ("pause", "resume", "conclude", "promote_canary", "promote_blue_green")
ACTIVE = (ExperimentState.RUNNING, ExperimentState.PAUSED)
#: One row per look and compared variant, as the chart's buffer holds it (all numbers: they stream).
CHART_COLUMNS = ("time", "units", "estimate", "lower", "upper", "n_control", "n_variant")
VERDICT_KIND = {
    "continue": "wb-info",
    "winner": "wb-ok",
    "futility": "wb-warn",
    "guardrail_breach": "wb-bad",
    "srm": "wb-bad",
}
STATE_KIND = {"draft": "", "running": "wb-info", "paused": "wb-warn", "concluded": "wb-ok"}
VERDICT_LABEL = {
    "continue": "continue",
    "winner": "winner",
    "futility": "futility",
    "guardrail_breach": "guardrail breached",
    "srm": "sample-ratio mismatch",
}

#: ``workbench.experiments.statistics.SRM_ALPHA``, written here: that module imports scipy (half a second
#: on a dashboard's first page), for one number in a sentence. A unit test keeps the two equal.
SRM_ALARM_BELOW = 0.001


# --------------------------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class ExperimentRow:
    """One line of the list of experiments."""

    name: str
    endpoint: str
    state: str
    variants: str  # "control churn v1 50% · treatment churn v2 50%"
    verdict: str | None  # the latest decision's, None before the first look
    winner: str | None
    units: int


def variants_label(spec: ExperimentSpec) -> str:
    return " · ".join(f"{v.name} {v.model} v{v.version} {v.weight:g}%" for v in spec.variants)


def experiment_rows(snapshot: Snapshot) -> list[ExperimentRow]:
    """Every experiment the feed holds, newest first, with its latest verdict and units."""
    rows = []
    for record in snapshot.experiments:
        decision = latest_decision(record, snapshot.experiment_looks.get(record.name, ()))
        rows.append(
            ExperimentRow(
                name=record.name,
                endpoint=record.endpoint,
                state=record.state.value,
                variants=variants_label(record.spec),
                verdict=str(decision["verdict"]) if decision else None,
                winner=decision.get("winner") if decision else None,
                units=sum(unit_counts(record, decision).values()),
            )
        )
    return rows


def choose_experiment(snapshot: Snapshot, name: str | None, endpoint: str | None) -> ExperimentRecord | None:
    """The named one; else the endpoint's active, else its newest; else the newest active, else the newest."""
    experiments = snapshot.experiments
    if name:
        return next((e for e in experiments if e.name == name), None)
    if endpoint:
        mine = [e for e in experiments if e.endpoint == endpoint]
        return next((e for e in mine if e.state in ACTIVE), mine[0] if mine else None)
    return next((e for e in experiments if e.state in ACTIVE), experiments[0] if experiments else None)


def latest_decision(record: ExperimentRecord, looks: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The record's latest decision (kept at each look, and the final one when concluded), else the last
    kept look's; empty before the first look."""
    if record.decision:
        return dict(record.decision)
    if looks:
        return dict(looks[-1].get("decision") or {})
    return {}


def unit_counts(record: ExperimentRecord, decision: Mapping[str, Any]) -> dict[str, int]:
    """Units assigned per variant at the latest look, in the spec's order (every unit; the sample-ratio
    counts, shown by the check itself, leave out the last seconds' units: see experiments/looks.py)."""
    names = [v.name for v in record.spec.variants]
    everyone = decision.get("assigned") or {}
    if everyone:
        return {name: int(everyone.get(name, 0)) for name in names}
    counts = list((decision.get("sample_ratio") or {}).get("counts") or [])
    return {name: int(counts[i]) if i < len(counts) else 0 for i, name in enumerate(names)}


# ------------------------------------------------------------------------------------ sample ratio
@dataclass(frozen=True)
class VariantUnits:
    variant: str
    model: str
    version: int
    units: int
    share: float | None  # of all units, None with no units yet
    planned: float  # the spec's share


@dataclass(frozen=True)
class SampleRatioCheck:
    units: tuple[VariantUnits, ...]
    p_value: float | None
    sequential_p_value: float | None
    alarm: bool
    text: str  # in words, for the page


def sample_ratio_check(record: ExperimentRecord, decision: Mapping[str, Any]) -> SampleRatioCheck:
    """Were units assigned as planned? Units and shares per variant and the check's verdict."""
    counts = unit_counts(record, decision)
    total = sum(counts.values())
    units = tuple(
        VariantUnits(
            variant=v.name,
            model=v.model,
            version=v.version,
            units=counts[v.name],
            share=counts[v.name] / total if total else None,
            planned=v.weight / 100.0,
        )
        for v in record.spec.variants
    )
    ratio = decision.get("sample_ratio") or {}
    p_value, sequential = _number(ratio.get("p_value")), _number(ratio.get("sequential_p_value"))
    alarm = bool(ratio.get("alarm"))
    if not decision:
        text = "not checked yet: no look so far"
    elif total == 0:
        text = "no units assigned yet"
    elif alarm:
        text = (
            f"mismatch: units were not assigned as planned (sequential p = {format_p(sequential)}); "
            "no comparison can be trusted until the cause is found"
        )
    else:
        text = (
            f"no mismatch: sequential test p = {format_p(sequential)} (valid at every look; alarm below "
            f"{SRM_ALARM_BELOW:g}) · a one-off χ² test would read p = {format_p(p_value)}"
        )
    return SampleRatioCheck(units, p_value, sequential, alarm, text)


# ------------------------------------------------------------------------------------- comparisons
@dataclass(frozen=True)
class ComparisonRow:
    role: str  # "primary" or "guardrail"
    metric: str
    kind: str  # binary, continuous
    better: str  # higher, lower
    variant: str
    n_control: int
    n_variant: int
    control_mean: str
    variant_mean: str
    difference: str
    relative: str
    interval: str
    adjusted_p: str
    direction: str | None  # better, worse, None (not established)


def metric_of(spec: ExperimentSpec, name: str) -> Metric | None:
    if spec.primary.name == name:
        return spec.primary
    return next((g for g in spec.guardrails if g.name == name), None)


def format_value(value: Any, kind: str, *, difference: bool = False) -> str:
    """A mean (a rate for a binary metric, in percent) or a difference (percentage points)."""
    number = _number(value)
    if number is None:
        return "-"
    if kind == "binary":
        return f"{number * 100:+.2f} pp" if difference else f"{number * 100:.2f}%"
    return f"{number:+.4g}" if difference else f"{number:.4g}"


def format_interval(lower: Any, upper: Any, kind: str) -> str:
    """``[-1.20 pp, +3.40 pp]``; an undefined (infinite) end is written as ∞."""
    low, high = _number(lower), _number(upper)
    left = "-∞" if low is None else format_value(low, kind, difference=True)
    right = "+∞" if high is None else format_value(high, kind, difference=True)
    return f"[{left}, {right}]"


def format_p(value: Any) -> str:
    number = _number(value)
    if number is None:
        return "-"
    return "< 0.001" if number < 0.001 else f"{number:.3f}"


def comparison_rows(spec: ExperimentSpec, decision: Mapping[str, Any]) -> list[ComparisonRow]:
    """The decision's comparisons: the primary metric's first, then the guardrails', each against the
    control, with the always-valid interval and the adjusted p-value the verdict was taken on."""
    rows = []
    for role, key in (("primary", "primary"), ("guardrail", "guardrails")):
        for c in decision.get(key) or []:
            metric = metric_of(spec, str(c.get("metric")))
            kind = metric.kind if metric is not None else "continuous"
            relative = _number(c.get("relative"))
            rows.append(
                ComparisonRow(
                    role=role,
                    metric=str(c.get("metric")),
                    kind=kind,
                    better=metric.better if metric is not None else "higher",
                    variant=str(c.get("variant")),
                    n_control=int(c.get("n_control") or 0),
                    n_variant=int(c.get("n_variant") or 0),
                    control_mean=format_value(c.get("control_mean"), kind),
                    variant_mean=format_value(c.get("variant_mean"), kind),
                    difference=format_value(c.get("estimate"), kind, difference=True),
                    relative="-" if relative is None else f"{relative:+.1%}",
                    interval=format_interval(c.get("lower"), c.get("upper"), kind),
                    adjusted_p=format_p(c.get("adjusted_p")),
                    direction=c.get("direction"),
                )
            )
    return rows


def confidence_label(spec: ExperimentSpec) -> str:
    """What each interval shown is, at the Bonferroni level over the primary metric's comparisons."""
    family = max(len(spec.variants) - 1, 1)
    level = f"{1.0 - spec.alpha / family:.1%}".replace(".0%", "%")
    if spec.method == "sequential":
        return f"always-valid {level} confidence sequence"
    return f"fixed-horizon {level} confidence interval"


# ------------------------------------------------------------------------------------------ charts
def chart_scale(spec: ExperimentSpec) -> float:
    """A binary metric's difference is drawn in percentage points."""
    return 100.0 if spec.primary.kind == "binary" else 1.0


def look_rows(
    spec: ExperimentSpec, looks: Sequence[Mapping[str, Any]], *, after: float | None = None
) -> dict[str, dict[str, list[float]]]:
    """Per compared variant, a row per look (after ``after``, epoch seconds) of the primary comparison:
    time (epoch ms), units, estimate and the confidence sequence's bounds (NaN where not compared yet,
    or unbounded), scaled for the chart.

    A difference of two rates lies within ±100 percentage points, so a binary metric's early, wide bounds
    are drawn cut there (the table gives them as computed)."""
    scale = chart_scale(spec)
    limit = 1.0 if spec.primary.kind == "binary" else math.inf
    out: dict[str, dict[str, list[float]]] = {
        v.name: {k: [] for k in CHART_COLUMNS} for v in spec.variants[1:]
    }
    for look in looks:
        ts = _number(look.get("ts"))
        if ts is None or (after is not None and ts <= after):
            continue
        decision = look.get("decision") or {}
        found = {str(c.get("variant")): c for c in decision.get("primary") or []}
        for variant, column in out.items():
            comparison = found.get(variant, {})
            column["time"].append(ts * 1000.0)
            column["units"].append(float(look.get("units") or 0))
            for key in ("estimate", "lower", "upper"):
                value = _number(comparison.get(key))
                column[key].append(math.nan if value is None else min(max(value, -limit), limit) * scale)
            for key in ("n_control", "n_variant"):
                column[key].append(float(comparison.get(key) or 0))
    return out


def last_look_ts(looks: Sequence[Mapping[str, Any]]) -> float | None:
    return _number(looks[-1].get("ts")) if looks else None


# ----------------------------------------------------------------------------------------- actions
@dataclass(frozen=True)
class ActionState:
    enabled: bool
    why: str  # why not, when disabled; what it does, when enabled


def action_states(record: ExperimentRecord | None, decision: Mapping[str, Any]) -> dict[str, ActionState]:
    """Which buttons apply to the experiment as shown. A running or paused experiment's promote is left to
    the control plane, which takes a fresh look for it (the page's latest may be seconds old)."""
    if record is None:
        return {a: ActionState(False, "no experiment") for a in ACTIONS}
    state = record.state
    winner = decision.get("winner")
    promote_why = "rolls out the winner" if winner else "no winner at the latest look"
    if state == ExperimentState.CONCLUDED:
        promotable = ActionState(bool(winner), promote_why if winner else "concluded without a winner")
    elif state in ACTIVE:
        promotable = ActionState(True, promote_why)
    else:
        promotable = ActionState(False, "a draft has no results to promote")
    return {
        "pause": ActionState(state == ExperimentState.RUNNING, f"the experiment is {state.value}"),
        "resume": ActionState(state == ExperimentState.PAUSED, f"the experiment is {state.value}"),
        "conclude": ActionState(state in ACTIVE, f"the experiment is {state.value}"),
        "promote_canary": promotable,
        "promote_blue_green": promotable,
    }


def experiment_intent(record: ExperimentRecord, action: str) -> intents.ExperimentAction:
    """A button of the page (one of ``ACTIONS``) as the shared intent, on the experiment shown."""
    if action not in ACTIONS:
        raise ValidationError(f"unknown experiment action {action!r}; expected one of {', '.join(ACTIONS)}")
    verb, _, strategy = action.partition("_")  # promote_blue_green → promote, blue_green
    return intents.ExperimentAction(record.endpoint, verb, record.name, strategy=strategy or "canary")


# ------------------------------------------------------------------------------------------- model
class ExperimentModel(PageModel):
    experiment = param.String(default="", doc="the experiment shown (``name`` is param's own)")
    endpoint_name = param.String(default="", doc="the endpoint asked for, when no name was")
    rows = param.List(default=[], item_type=ExperimentRow, doc="every experiment, newest first")
    record = param.ClassSelector(class_=ExperimentRecord, default=None, allow_None=True)
    endpoint_record = param.ClassSelector(class_=EndpointRecord, default=None, allow_None=True)
    decision = param.Dict(default={}, doc="the latest decision: verdict, reason, winner, comparisons")
    looks = param.Integer(default=0, bounds=(0, None), doc="looks held for the experiment")
    last_look = param.Number(default=None, allow_None=True, doc="the latest look's time (epoch s)")
    series = param.Dict(
        default={}, doc="variant -> chart columns over every held look: what charts open with"
    )
    delta = param.Dict(
        default={}, doc="variant -> chart columns of the newest looks only: what charts stream"
    )

    def asks_for_unseen(self, snapshot: Snapshot) -> bool:
        return bool(self.experiment) and all(e.name != self.experiment for e in snapshot.experiments)

    def load(self) -> None:
        super().load()
        self._state(self.feed.snapshot, reset=True)

    def apply(self, update: Update) -> None:
        if update.changed & {"state", "experiments"}:
            self._state(update.snapshot)

    def _state(self, snapshot: Snapshot, *, reset: bool = False) -> None:
        chosen = choose_experiment(snapshot, self.experiment or None, self.endpoint_name or None)
        if chosen is not None and not self.experiment:
            self.experiment = chosen.name  # the page follows this one from now on
        looks = snapshot.experiment_looks.get(self.experiment, ()) if chosen is not None else ()
        drawn = self.last_look
        self.set_if_changed(
            rows=experiment_rows(snapshot),
            record=chosen,
            endpoint_record=snapshot.endpoint(chosen.endpoint) if chosen is not None else None,
            decision=latest_decision(chosen, looks) if chosen is not None else {},
        )
        if chosen is None:
            return
        newest = last_look_ts(looks)
        if reset or drawn is None or (newest is not None and newest < drawn):
            self.series = look_rows(chosen.spec, looks)
        elif newest is not None and newest > drawn:
            self.delta = look_rows(chosen.spec, looks, after=drawn)
        self.set_if_changed(looks=len(looks), last_look=newest)

    # -------------------------------------------------------------- actions
    def propose(self, action: str) -> None:
        record = self.record
        if record is None:
            self.desk.refuse("this experiment no longer exists")
            return
        state = action_states(record, self.decision)[action]
        if not state.enabled:
            self.desk.refuse(f"cannot {action.replace('_', ' ')} {record.name}: {state.why}")
            return
        view = intents.ExperimentView(record, self.endpoint_record, dict(self.decision))
        try:
            # names the winner the page shows, so what was confirmed is what is rolled out; with none
            # shown, the control plane's fresh look decides (and refuses if it finds no winner)
            intent = intents.pin(experiment_intent(record, action), view)
            preview = intents.preview(intent, view)
        except WorkbenchError as exc:
            self.desk.refuse(str(exc))
            return

        def perform(client: Client, preview: Preview) -> str:
            return intents.perform(client, intent, preview, reason=REASON).message

        self.desk.propose(preview, perform)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
