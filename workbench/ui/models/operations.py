"""Runbooks & audit: runbook runs as they go, one run's details, starting a runbook from a form built
from its declared parameters, cancelling a run, and the audit log filtered on what the feed holds.

The parsing, labelling and filtering are pure functions (tested without a server); the model follows
the feed like every page and acts only through its desk, as the signed-in user.
"""

from __future__ import annotations

import ast
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import param

from workbench.client import Client
from workbench.errors import WorkbenchError
from workbench.records.audit import AuditEvent
from workbench.records.runbooks import RunRecord
from workbench.specs.runbook import RunStatus, TriggerKind
from workbench.ui.feed import AUDIT_KEEP, Snapshot, Update
from workbench.ui.models.base import PageModel
from workbench.ui.plans import Preview, endpoint_routes, split_label

#: Declared types that get a typed widget; anything else is typed as a Python literal.
KINDS = ("str", "int", "float", "bool")
ENDPOINT_PARAMETER = "endpoint"
#: Audit events a page holds (the feed's recent ones, new ones, and older ones the user loaded).
AUDIT_HOLD = 5000
OLDER_BATCH = 200
#: Time-range presets of the audit filter, in seconds (0: the whole of what is held).
WINDOWS = {
    "all held": 0,
    "last 15 minutes": 900,
    "last hour": 3600,
    "last 24 hours": 86_400,
    "last 7 days": 604_800,
}

#: Summary fields a one-line summary starts with (after the outcome), when a runbook records them.
LEADING_FIELDS = ("recommendation", "message", "reason")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


# ------------------------------------------------------------------------------------------------ parameters
@dataclass(frozen=True)
class ParameterField:
    """One declared parameter as a form shows it: its widget kind, default and help."""

    name: str
    kind: str  # "str", "int", "float", "bool" or "literal" (typed as a Python literal)
    declared_type: str | None
    default: Any  # the default as a value; for "literal", the text as declared
    default_text: str
    help: str
    default_is_literal: bool = True  # False: the runbook computes it; left out unless the user changes it


def _literal(text: str) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None


def _fits(kind: str, value: Any) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "int":
        return isinstance(value, int)
    return isinstance(value, int | float) and math.isfinite(value)


def parameter_field(declared: Mapping[str, Any]) -> ParameterField:
    """A form field from the catalogue's ``{name, type, default, help}`` (``default`` a Python literal).

    A declared type the form cannot type (``list[str]``, none), or a default that does not fit it, makes
    the field a Python literal typed as text.
    """
    name = str(declared["name"])
    declared_type = declared.get("type") or None
    text = str(declared.get("default") or "").strip()
    ok, value = _literal(text)
    kind = declared_type if declared_type in KINDS else "literal"
    if kind != "literal" and not (ok and _fits(kind, value)):
        kind = "literal"
    if kind == "float":
        value = float(value)
    return ParameterField(
        name=name,
        kind=kind,
        declared_type=declared_type,
        default=text if kind == "literal" else value,
        default_text=text,
        help=str(declared.get("help") or ""),
        default_is_literal=ok,
    )


def _json_value(name: str, value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise ValueError(
            f"parameter {name!r}: {value!r} cannot be sent (numbers, strings, True/False/None, lists and "
            "dicts of those only)"
        ) from None
    return value


def parse_value(field: ParameterField, raw: Any) -> Any:
    """The value to send for ``raw`` (a widget's value or text); ``ValueError`` names the parameter."""
    name = field.name
    if field.kind == "str":
        return "" if raw is None else str(raw)
    if field.kind == "bool":
        if isinstance(raw, bool):
            return raw
        word = str(raw).strip().lower()
        if word in _TRUE | _FALSE:
            return word in _TRUE
        raise ValueError(f"parameter {name!r} must be true or false, got {raw!r}")
    if field.kind == "int":
        if isinstance(raw, bool) or raw is None or (isinstance(raw, str) and not raw.strip()):
            raise ValueError(f"parameter {name!r} needs a whole number")
        if isinstance(raw, float):
            if not raw.is_integer():
                raise ValueError(f"parameter {name!r} must be a whole number, got {raw!r}")
            return int(raw)
        try:
            return int(str(raw).strip())
        except ValueError:
            raise ValueError(f"parameter {name!r} must be a whole number, got {raw!r}") from None
    if field.kind == "float":
        if isinstance(raw, bool) or raw is None or (isinstance(raw, str) and not raw.strip()):
            raise ValueError(f"parameter {name!r} needs a number")
        try:
            number = float(str(raw).strip()) if isinstance(raw, str) else float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {name!r} must be a number, got {raw!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"parameter {name!r} must be a finite number, got {raw!r}")
        return number
    if not isinstance(raw, str):
        return _json_value(name, raw)
    ok, value = _literal(raw.strip())
    if not ok:
        raise ValueError(
            f"parameter {name!r}: {raw!r} is not a Python literal (a number, a quoted string, True, False, "
            "None, or a list or dict of those)"
        )
    return _json_value(name, value)


def parse_parameters(fields: Sequence[ParameterField], values: Mapping[str, Any]) -> dict[str, Any]:
    """Every field's value, parsed; one ``ValueError`` naming each bad parameter.

    A field whose default the runbook computes (not a literal) is left out while its text is unchanged,
    so the runbook's own default applies.
    """
    known = {f.name for f in fields}
    problems = [f"{name!r} is not a parameter of this runbook" for name in values if name not in known]
    parsed: dict[str, Any] = {}
    for field in fields:
        if field.name not in values:
            continue
        raw = values[field.name]
        if (
            field.kind == "literal"
            and not field.default_is_literal
            and str(raw).strip() == field.default_text
        ):
            continue
        try:
            parsed[field.name] = parse_value(field, raw)
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError("; ".join(problems))
    return parsed


def describe_parameters(parameters: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in parameters.items()) or "no parameters (the runbook's defaults)"


def preview_run(
    runbook: Mapping[str, Any],
    fields: Sequence[ParameterField],
    parameters: Mapping[str, Any],
    snapshot: Snapshot,
) -> Preview:
    """What starting the run will do, from the catalogue entry and what the page shows."""
    name = str(runbook["name"])
    lines = [f"{runbook.get('title') or name} with {describe_parameters(parameters)}"]
    field = next((f for f in fields if f.name == ENDPOINT_PARAMETER), None)
    if field is None:
        return Preview(
            action=f"run {name}",
            endpoint="no endpoint",
            routes_before="not touched by this runbook",
            routes_after="not touched by this runbook",
            detail="\n".join(lines),
            expected_revision=None,
        )
    endpoint = parameters.get(ENDPOINT_PARAMETER, field.default if field.default_is_literal else "")
    endpoint = str(endpoint)
    record = snapshot.endpoint(endpoint)
    before = split_label(endpoint_routes(record)) if record is not None else f"(no endpoint named {endpoint})"
    locks = bool(runbook.get("locks_endpoint"))
    if locks:
        lines.append(
            f"it may change {endpoint}'s routes: it holds the endpoint's lock while it runs (no other "
            "runbook changes it meanwhile); the audit log and the run's notebook record what it did"
        )
    else:
        lines.append(f"it reads {endpoint} and does not change its routes")
    return Preview(
        action=f"run {name}",
        endpoint=endpoint,
        routes_before=before,
        routes_after="as the run decides" if locks else before,
        detail="\n".join(lines),
        expected_revision=record.revision if record is not None else None,
    )


# ------------------------------------------------------------------------------------------------------ runs
def trigger_label(run: RunRecord) -> str:
    """Who or what started the run: ``user alice``, ``alert churn-drift (event 12)``, ``schedule nightly``."""
    trigger = run.trigger
    if trigger.kind is TriggerKind.ALERT:
        event = f" (event {trigger.alert_event})" if trigger.alert_event is not None else ""
        return f"alert {trigger.rule or '?'}{event}"
    if trigger.kind is TriggerKind.SCHEDULE:
        return f"schedule {trigger.schedule or '?'}"
    return f"user {run.actor}"


def duration_label(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def summary_label(summary: Mapping[str, Any] | None, limit: int = 140) -> str:
    """``outcome: k=v, k=v`` on one line, cut at ``limit`` characters."""
    if not summary:
        return ""
    first = [k for k in LEADING_FIELDS if k in summary]
    fields = {k: summary[k] for k in [*first, *summary] if k != "outcome"}
    text = str(summary.get("outcome", ""))
    rest = ", ".join(f"{k}={_short(v)}" for k, v in fields.items())
    text = f"{text}: {rest}" if text and rest else text or rest
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, separators=(",", ":"))


# ----------------------------------------------------------------------------------------------------- audit
@dataclass(frozen=True)
class AuditFilter:
    """What the timeline shows: every text is matched case-insensitively; empty matches everything.

    ``action`` is a comma-separated list of prefixes (``endpoint., rollout.``); a prefix written
    ``-feedback.`` leaves those actions out. ``last_s`` (seconds before ``now``), ``since`` and ``until``
    bound the time; all bounds apply.
    """

    actor: str = ""
    action: str = ""
    target: str = ""
    last_s: float = 0.0
    since: datetime | None = None
    until: datetime | None = None

    @property
    def active(self) -> bool:
        return bool(
            self.actor.strip()
            or self.action.strip()
            or self.target.strip()
            or self.last_s
            or self.since
            or self.until
        )

    def matches(self, event: AuditEvent, *, now: float) -> bool:
        if self.actor.strip() and self.actor.strip().lower() not in event.actor.lower():
            return False
        if self.target.strip() and self.target.strip().lower() not in event.target.lower():
            return False
        prefixes = [p.strip().lower() for p in self.action.split(",") if p.strip()]
        include = [p for p in prefixes if not p.startswith("-")]
        exclude = [p[1:] for p in prefixes if p.startswith("-") and len(p) > 1]
        action = event.action.lower()
        if include and not any(action.startswith(p) for p in include):
            return False
        if any(action.startswith(p) for p in exclude):
            return False
        at = event.at.timestamp()
        if self.last_s and at < now - self.last_s:
            return False
        if self.since is not None and at < _utc(self.since).timestamp():
            return False
        return not (self.until is not None and at > _utc(self.until).timestamp())


def _utc(moment: datetime) -> datetime:
    """A naive time is read as UTC (the page shows UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def filter_events(events: Iterable[AuditEvent], rule: AuditFilter, *, now: float) -> list[AuditEvent]:
    return [e for e in events if rule.matches(e, now=now)]


def merge_events(
    held: Sequence[AuditEvent], new: Iterable[AuditEvent], *, keep: int = AUDIT_HOLD
) -> list[AuditEvent]:
    """``held`` (newest first) with ``new`` (any order) added once each, newest first, at most ``keep``."""
    seen = {e.id for e in held}
    fresh = [e for e in new if e.id not in seen]
    if not fresh:
        return list(held)[:keep]
    return sorted([*held, *{e.id: e for e in fresh}.values()], key=lambda e: -e.id)[:keep]


def _routes_text(value: Any) -> str | None:
    if isinstance(value, list) and all(
        isinstance(r, dict) and {"model", "version", "weight"} <= set(r) for r in value
    ):
        return split_label([(str(r["model"]), int(r["version"]), float(r["weight"])) for r in value])
    return None


def _compact(value: Any) -> str:
    routes = _routes_text(value)
    if routes is not None:
        return routes
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, separators=(", ", ": "))


def _set(value: Any) -> Any:
    """An object without its empty fields (a creation's ``null`` fields say nothing)."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v is not None}
    return value


def summary_value(value: Any) -> str:
    """A summary field as a table cell shows it."""
    if isinstance(value, list | tuple | dict) and not value:
        return "none"
    return _short(value)


def change_text(before: Any, after: Any, limit: int = 120) -> str:
    """``before → after`` in a line: only the fields that differ when both are objects; routes as a split."""
    if before is None and after is None:
        return ""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = [k for k in {**before, **after} if before.get(k) != after.get(k)]
        if not keys:
            return "no change"
        text = "; ".join(f"{k}: {_compact(before.get(k))} → {_compact(after.get(k))}" for k in keys)
    elif before is None:
        text = f"→ {_compact(_set(after))}"
    elif after is None:
        text = f"{_compact(_set(before))} →"
    else:
        text = f"{_compact(before)} → {_compact(after)}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def linked_run(event: AuditEvent) -> str | None:
    """The runbook run an event belongs to (``link`` is ``runbook-run:ID``), if any."""
    if event.link and event.link.startswith("runbook-run:"):
        return event.link.removeprefix("runbook-run:")
    return None


# ----------------------------------------------------------------------------------------------------- model
class OperationsModel(PageModel):
    runs = param.List(default=[], doc="runbook runs the feed holds, newest first")
    run_id = param.String(default="", doc="the run whose details are shown")
    run = param.ClassSelector(class_=RunRecord, default=None, allow_None=True)
    run_note = param.String(default="", doc="why the asked run is not shown, if it is not")
    runbooks = param.List(default=[], doc="the catalogue: name, title, description, parameters")
    runbook = param.String(default="", doc="the runbook whose form is shown")
    fields = param.List(default=[], doc="the chosen runbook's parameters as form fields")
    events = param.List(default=[], doc="audit events held, newest first")
    shown = param.List(default=[], doc="the held events that pass the filter, newest first")
    actor = param.String(default="", doc="audit filter: actor contains")
    action = param.String(
        default="", doc="audit filter: action prefixes, comma-separated; -prefix leaves out"
    )
    target = param.String(default="", doc="audit filter: target contains")
    last_s = param.Number(default=0.0, bounds=(0, None), doc="audit filter: seconds before now (0: all)")
    since = param.ClassSelector(
        class_=datetime, default=None, allow_None=True, doc="audit filter: from (UTC)"
    )
    until = param.ClassSelector(class_=datetime, default=None, allow_None=True, doc="audit filter: to (UTC)")
    older_note = param.String(default="", doc="what the last 'load older' found")

    def __init__(self, *args: Any, **params: Any) -> None:
        self._started: str | None = None  # a run this page started, selected when the feed brings it
        super().__init__(*args, **params)
        self.read_runbooks()

    # ------------------------------------------------------------------ data
    def load(self) -> None:
        super().load()
        self.runs = list(self.feed.snapshot.runs)
        self.events = merge_events([], self.feed.recent_audit(AUDIT_KEEP))
        self._refilter()
        self._select_run()

    def apply(self, update: Update) -> None:
        if update.audit:
            self.events = merge_events(self.events, update.audit)
            fresh = filter_events(reversed(update.audit), self.rule, now=time.time())
            if fresh:
                self.shown = merge_events(self.shown, fresh)
        if "state" in update.changed:
            self.set_if_changed(runs=list(update.snapshot.runs))  # re-read every few seconds
            started, self._started = self._started, None
            if started and any(r.id == started for r in self.runs):
                self.run_id = started
            elif started:
                self._started = started
            if self.run_id:
                current = next((r for r in self.runs if r.id == self.run_id), None)
                if current is not None:
                    self.set_if_changed(run=current)

    @property
    def rule(self) -> AuditFilter:
        return AuditFilter(
            actor=self.actor,
            action=self.action,
            target=self.target,
            last_s=float(self.last_s or 0.0),
            since=self.since,
            until=self.until,
        )

    @param.depends("actor", "action", "target", "last_s", "since", "until", watch=True)
    def _refilter(self) -> None:
        self.shown = filter_events(self.events, self.rule, now=time.time())

    @param.depends("run_id", watch=True)
    def _select_run(self) -> None:
        """The asked run from the feed; an older one is read once (opening a link is a user's read)."""
        self.run_note = ""
        if not self.run_id:
            self.run = None
            return
        held = next((r for r in self.runs if r.id == self.run_id), None)
        if held is not None:
            self.run = held
            return
        try:
            with self.desk.client() as client:
                self.run = client.runbook_run(self.run_id)
        except WorkbenchError as exc:
            self.run = None
            self.run_note = f"Run {self.run_id} cannot be shown: {exc}"

    # ------------------------------------------------------------ the form
    def read_runbooks(self) -> None:
        """The catalogue, read when the page opens (runbooks change with a deploy of files, not live)."""
        try:
            with self.desk.client() as client:
                self.runbooks = sorted(client.runbooks(), key=lambda r: str(r["name"]))
        except WorkbenchError as exc:
            self.desk.refuse(f"cannot read the runbook catalogue: {exc}")
            return
        names = [str(r["name"]) for r in self.runbooks]
        if self.runbook not in names:
            self.runbook = names[0] if names else ""
        else:
            self._build_fields()

    def info(self, name: str | None = None) -> dict[str, Any] | None:
        wanted = name or self.runbook
        return next((r for r in self.runbooks if r["name"] == wanted), None)

    @param.depends("runbook", watch=True)
    def _build_fields(self) -> None:
        info = self.info()
        self.fields = [parameter_field(p) for p in info.get("parameters", [])] if info else []

    def propose_run(self, values: Mapping[str, Any]) -> None:
        """Validate the form's values; then preview the run and, on confirm, start it as the user."""
        info = self.info()
        if info is None:
            self.desk.refuse(f"runbook {self.runbook!r} is not in the catalogue")
            return
        fields = list(self.fields)
        try:
            parameters = parse_parameters(fields, values)
        except ValueError as exc:
            self.desk.refuse(f"Cannot run {info['name']}: {exc}")
            return
        preview = preview_run(info, fields, parameters, self.snapshot)
        name = str(info["name"])

        def perform(client: Client, preview: Preview) -> str:
            run = client.run_runbook(name, parameters, reason="started from the dashboard")
            self._started = run.id  # shown once the feed has it (off the page's loop: no params here)
            return f"run {run.id} started"

        self.desk.propose(preview, perform)

    # -------------------------------------------------------------- cancel
    def propose_cancel(self, run_id: str | None = None) -> None:
        wanted = run_id or self.run_id
        run = self.run if self.run is not None and self.run.id == wanted else None
        run = run or next((r for r in self.runs if r.id == wanted), None)
        if run is None:
            self.desk.refuse(f"no run {wanted!r} to cancel")
            return
        if run.status is not RunStatus.RUNNING:
            self.desk.refuse(f"run {run.id} has ended ({run.status.value}): nothing to cancel")
            return
        record = self.snapshot.endpoint(run.endpoint) if run.endpoint else None
        routes = split_label(endpoint_routes(record)) if record is not None else "not held by this run"
        preview = Preview(
            action=f"cancel run {run.id} ({run.runbook})",
            endpoint=run.endpoint or "no endpoint",
            routes_before=routes,
            routes_after=routes,
            detail=(
                "stops its kernel; the notebook is archived as far as it got, and what it already changed "
                "stays" + (f"; {run.endpoint}'s lock is released" if run.endpoint else "")
            ),
            expected_revision=record.revision if record is not None else None,
        )

        def perform(client: Client, preview: Preview) -> str:
            ended = client.cancel_run(run.id)
            return f"run {ended.id}: {ended.status.value}"

        self.desk.propose(preview, perform)

    # ------------------------------------------------------- older events
    def load_older(self, limit: int = OLDER_BATCH) -> None:
        """Read further back than the feed holds (a user's read, not a poll)."""
        oldest = self.events[-1] if self.events else None
        try:
            with self.desk.client() as client:
                older = client.audit(until=oldest.at if oldest else None, limit=limit)
        except WorkbenchError as exc:
            self.desk.refuse(f"cannot read older audit events: {exc}")
            return
        if oldest is not None:
            older = [e for e in older if e.id < oldest.id]
        if not older:
            self.older_note = "no older events: this is the start of the audit log"
            return
        self.events = merge_events(self.events, older, keep=len(self.events) + len(older))
        matching = filter_events(older, self.rule, now=time.time())
        self.shown = merge_events(self.shown, matching, keep=len(self.shown) + len(matching))
        self.older_note = f"{len(older)} older events read, {len(matching)} pass the filter"
