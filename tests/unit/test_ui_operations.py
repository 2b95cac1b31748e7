"""The Runbooks & audit page's pure parts: parameter forms from declared parameters, the run preview,
run labels, and the audit timeline's filter, merge and before → after text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workbench.records.audit import AuditEvent
from workbench.records.endpoints import EndpointRecord
from workbench.records.runbooks import RunRecord
from workbench.specs.endpoint import EndpointSpec
from workbench.specs.runbook import RunStatus, Trigger, TriggerKind
from workbench.ui.feed import Snapshot
from workbench.ui.models.operations import (
    AuditFilter,
    change_text,
    describe_parameters,
    duration_label,
    filter_events,
    linked_run,
    merge_events,
    parameter_field,
    parse_parameters,
    parse_value,
    preview_run,
    summary_label,
    summary_value,
    trigger_label,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# As the catalogue serves them (GET /runbooks): defaults are Python literals written as text.
CANARY = {
    "name": "canary-rollout",
    "title": "Canary rollout of a candidate version",
    "locks_endpoint": True,
    "parameters": [
        {"name": "endpoint", "type": "str", "default": '"churn"', "help": "endpoint to change"},
        {"name": "steps", "type": "str", "default": '"10,50"', "help": "percent per step"},
        {"name": "step_duration_s", "type": "float", "default": "30.0", "help": "minimum time at each step"},
        {"name": "min_samples", "type": "int", "default": "200", "help": "requests per variant"},
        {"name": "wait", "type": "bool", "default": "True", "help": "follow the rollout to its end"},
    ],
}


def _fields(runbook: dict[str, Any]) -> list[Any]:
    return [parameter_field(p) for p in runbook["parameters"]]


def _event(
    id: int,
    action: str,
    *,
    actor: str = "alice",
    target: str = "endpoint:churn",
    minutes_ago: float = 0.0,
    **extra: Any,
) -> AuditEvent:
    return AuditEvent(
        id=id, at=NOW - timedelta(minutes=minutes_ago), actor=actor, action=action, target=target, **extra
    )


def _endpoint(name: str = "churn") -> EndpointRecord:
    spec = EndpointSpec.model_validate(
        {
            "name": name,
            "routes": [
                {"model": "churn", "version": 1, "weight": 90.0},
                {"model": "churn", "version": 2, "weight": 10.0},
            ],
        }
    )
    return EndpointRecord(spec=spec, revision=7, created_at=NOW, updated_at=NOW)


def _run(**overrides: Any) -> RunRecord:
    values: dict[str, Any] = {
        "id": "run-1",
        "runbook": "rollback",
        "parameters": {"endpoint": "churn"},
        "trigger": Trigger(),
        "actor": "alice",
        "endpoint": "churn",
        "status": RunStatus.SUCCEEDED,
        "created_at": NOW,
        "started_at": NOW,
        "finished_at": NOW + timedelta(seconds=75),
        "timeout_s": 600.0,
        "summary": None,
        "error": None,
        "failed_cell": None,
        "archive_dir": "/tmp/run-1",
    }
    return RunRecord(**{**values, **overrides})


# ------------------------------------------------------------------------------------------- parameters
def test_declared_types_choose_the_widget_kind_and_defaults_become_values() -> None:
    endpoint, steps, duration, samples, wait = _fields(CANARY)
    assert (endpoint.kind, endpoint.default, endpoint.help) == ("str", "churn", "endpoint to change")
    assert (steps.kind, steps.default) == ("str", "10,50")
    assert (duration.kind, duration.default) == ("float", 30.0)
    assert (samples.kind, samples.default) == ("int", 200)
    assert (wait.kind, wait.default) == ("bool", True)
    assert endpoint.default_text == '"churn"'


@pytest.mark.parametrize(
    ("declared", "kind", "default"),
    [
        ({"name": "cols", "type": "list[str]", "default": '["a", "b"]'}, "literal", '["a", "b"]'),
        ({"name": "x", "type": None, "default": "None"}, "literal", "None"),
        ({"name": "n", "type": "int", "default": "None"}, "literal", "None"),  # does not fit the type
        ({"name": "f", "type": "float", "default": "30"}, "float", 30.0),  # an int literal is a float
        ({"name": "t", "type": "str", "default": "os.environ['X']"}, "literal", "os.environ['X']"),
    ],
)
def test_other_types_and_unfitting_defaults_are_python_literals_as_text(
    declared: dict[str, Any], kind: str, default: Any
) -> None:
    field = parameter_field({**declared, "help": "h"})
    assert (field.kind, field.default) == (kind, default)


@pytest.mark.parametrize(
    ("type_", "raw", "value"),
    [
        ("int", 5, 5),
        ("int", " 12 ", 12),
        ("int", 3.0, 3),
        ("float", 2, 2.0),
        ("float", "0.25", 0.25),
        ("bool", False, False),
        ("bool", "yes", True),
        ("str", "  keep spaces ", "  keep spaces "),
        ("list[str]", '["a", "b"]', ["a", "b"]),
        ("list[str]", "{'k': 1.5, 'n': None}", {"k": 1.5, "n": None}),
    ],
)
def test_values_are_parsed_by_kind(type_: str, raw: Any, value: Any) -> None:
    default = {"int": "1", "float": "1.0", "bool": "True", "str": '""'}.get(type_, "[]")
    field = parameter_field({"name": "p", "type": type_, "default": default, "help": ""})
    parsed = parse_value(field, raw)
    assert parsed == value
    assert type(parsed) is type(value)


@pytest.mark.parametrize(
    ("type_", "raw", "message"),
    [
        ("int", None, "'p' needs a whole number"),
        ("int", "2.5", "'p' must be a whole number"),
        ("int", 2.5, "'p' must be a whole number"),
        ("int", True, "'p' needs a whole number"),
        ("float", "fast", "'p' must be a number"),
        ("float", "nan", "'p' must be a finite number"),
        ("bool", "maybe", "'p' must be true or false"),
        ("list[str]", "[a, b]", r"'p': '\[a, b\]' is not a Python literal"),
        ("list[str]", "{1, 2}", "cannot be sent"),  # a set is no JSON value
    ],
)
def test_bad_values_are_refused_naming_the_parameter(type_: str, raw: Any, message: str) -> None:
    default = {"int": "1", "float": "1.0", "bool": "True"}.get(type_, "[]")
    field = parameter_field({"name": "p", "type": type_, "default": default, "help": ""})
    with pytest.raises(ValueError, match=message):
        parse_value(field, raw)


def test_a_form_is_parsed_whole_and_every_bad_parameter_is_named_at_once() -> None:
    fields = _fields(CANARY)
    values = {"endpoint": "churn", "steps": "5,25", "step_duration_s": 10, "min_samples": 50, "wait": False}
    assert parse_parameters(fields, values) == {
        "endpoint": "churn",
        "steps": "5,25",
        "step_duration_s": 10.0,
        "min_samples": 50,
        "wait": False,
    }
    with pytest.raises(ValueError, match="typo") as info:
        parse_parameters(fields, {**values, "step_duration_s": None, "min_samples": "many", "typo": 1})
    message = str(info.value)
    assert "'typo' is not a parameter of this runbook" in message
    assert "'step_duration_s' needs a number" in message
    assert "'min_samples' must be a whole number" in message


def test_a_default_the_runbook_computes_is_left_to_it_unless_changed() -> None:
    [field] = _fields(
        {"parameters": [{"name": "data", "type": "str", "default": "default_path()", "help": ""}]}
    )
    assert not field.default_is_literal
    assert parse_parameters([field], {"data": "default_path()"}) == {}
    assert parse_parameters([field], {"data": "'/data/x.parquet'"}) == {"data": "/data/x.parquet"}


def test_the_preview_names_the_runbook_parameters_and_the_endpoints_routes() -> None:
    fields = _fields(CANARY)
    snapshot = Snapshot(endpoints=(_endpoint(),))
    preview = preview_run(CANARY, fields, {"endpoint": "churn", "min_samples": 50}, snapshot)
    assert preview.action == "run canary-rollout"
    assert preview.endpoint == "churn"
    assert preview.routes_before == "churn v1 90% / v2 10%"
    assert preview.routes_after == "as the run decides"
    assert preview.changes_traffic
    assert "endpoint='churn', min_samples=50" in preview.detail
    assert "may change churn's routes" in preview.detail
    assert preview.expected_revision == 7
    # The endpoint parameter left at its default still names the endpoint.
    assert preview_run(CANARY, fields, {}, snapshot).endpoint == "churn"


def test_the_preview_of_a_read_only_or_endpointless_runbook_says_traffic_is_unchanged() -> None:
    triage = {**CANARY, "name": "incident-triage", "locks_endpoint": False}
    snapshot = Snapshot(endpoints=(_endpoint(),))
    preview = preview_run(triage, _fields(triage), {"endpoint": "churn"}, snapshot)
    assert not preview.changes_traffic
    assert "reads churn and does not change its routes" in preview.detail
    missing = preview_run(CANARY, _fields(CANARY), {"endpoint": "new-one"}, snapshot)
    assert missing.routes_before == "(no endpoint named new-one)"
    assert missing.expected_revision is None
    plain = {"name": "report", "parameters": [{"name": "top_k", "type": "int", "default": "5", "help": ""}]}
    preview = preview_run(plain, _fields(plain), {"top_k": 3}, snapshot)
    assert (preview.endpoint, preview.changes_traffic) == ("no endpoint", False)
    assert describe_parameters({}) == "no parameters (the runbook's defaults)"


# ------------------------------------------------------------------------------------------------- runs
def test_run_labels_say_who_or_what_started_it_how_long_and_what_it_found() -> None:
    assert trigger_label(_run()) == "user alice"
    alert = Trigger(kind=TriggerKind.ALERT, rule="churn-drift", alert_event=12)
    assert trigger_label(_run(trigger=alert, actor="alert:churn-drift")) == "alert churn-drift (event 12)"
    assert (
        trigger_label(_run(trigger=Trigger(kind=TriggerKind.SCHEDULE, schedule="nightly")))
        == "schedule nightly"
    )
    assert duration_label(_run().duration_s) == "1 min 15 s"
    assert duration_label(4.25) == "4.2 s"
    assert duration_label(3 * 3600 + 120) == "3 h 02 min"
    assert duration_label(None) == "-"
    summary = {"outcome": "triaged", "problems": [], "recommendation": "keep watching", "alerts": 0}
    assert summary_label(summary) == "triaged: recommendation=keep watching, problems=[], alerts=0"
    assert summary_label({"outcome": "x", "text": "y" * 300}, limit=40).endswith("…")
    assert len(summary_label({"outcome": "x", "text": "y" * 300}, limit=40)) == 40
    assert summary_label(None) == ""
    assert (summary_value(None), summary_value([]), summary_value(0.123456)) == ("-", "none", "0.1235")


# ------------------------------------------------------------------------------------------------ audit
EVENTS = [
    _event(
        6,
        "runbook.run.succeeded",
        actor="runbook:rollback/run-1",
        target="runbook:rollback",
        link="runbook-run:run-1",
    ),
    _event(5, "feedback.add", actor="root", minutes_ago=1),
    _event(4, "endpoint.route", actor="rollout-controller", minutes_ago=5),
    _event(3, "rollout.promote", actor="rollout-controller", minutes_ago=30),
    _event(2, "endpoint.deploy", target="endpoint:fraud", minutes_ago=90),
    _event(1, "model.register", target="models:/churn/1", minutes_ago=600),
]


def _ids(rule: AuditFilter) -> list[int]:
    return [e.id for e in filter_events(EVENTS, rule, now=NOW.timestamp())]


def test_the_audit_filter_by_actor_action_prefix_target_and_time() -> None:
    assert _ids(AuditFilter()) == [6, 5, 4, 3, 2, 1]
    assert not AuditFilter().active
    assert _ids(AuditFilter(actor="ROLLOUT")) == [4, 3]
    assert _ids(AuditFilter(actor="runbook:")) == [6]
    assert _ids(AuditFilter(action="endpoint., rollout.")) == [4, 3, 2]
    assert _ids(AuditFilter(action="-feedback.")) == [6, 4, 3, 2, 1]
    assert _ids(AuditFilter(action="endpoint.,-endpoint.deploy")) == [4]
    assert _ids(AuditFilter(target="churn")) == [5, 4, 3, 1]
    assert _ids(AuditFilter(last_s=3600)) == [6, 5, 4, 3]
    assert _ids(AuditFilter(since=NOW - timedelta(minutes=100), until=NOW - timedelta(minutes=2))) == [
        4,
        3,
        2,
    ]
    # A naive time is read as UTC, as the page shows times.
    naive = (NOW - timedelta(minutes=10)).replace(tzinfo=None)
    assert _ids(AuditFilter(since=naive)) == [6, 5, 4]
    assert _ids(AuditFilter(actor="rollout", action="endpoint.", last_s=600)) == [4]
    assert AuditFilter(target=" x ").active


def test_new_and_older_events_are_merged_once_each_newest_first_within_the_limit() -> None:
    held = EVENTS[2:4]
    merged = merge_events(held, [EVENTS[1], EVENTS[0], EVENTS[2]])  # oldest first, one already held
    assert [e.id for e in merged] == [6, 5, 4, 3]
    assert [e.id for e in merge_events(merged, EVENTS[4:])] == [6, 5, 4, 3, 2, 1]
    assert [e.id for e in merge_events(merged, EVENTS, keep=3)] == [6, 5, 4]
    assert merge_events(held, []) == held


def test_before_and_after_show_what_changed_in_a_line() -> None:
    route = {"model": "churn", "version": 1, "weight": 100.0}
    before = {"name": "churn", "routes": [route], "replicas": 1}
    after = {
        "name": "churn",
        "routes": [{**route, "weight": 90.0}, {"model": "churn", "version": 2, "weight": 10.0}],
        "replicas": 1,
    }
    assert change_text(before, after) == "routes: churn v1 100% → churn v1 90% / v2 10%"
    assert change_text({"version": 1}, {"version": 2}) == "version: 1 → 2"
    assert change_text({"stable": "v1"}, {"candidate": "v2"}) == "stable: v1 → -; candidate: - → v2"
    assert change_text(None, {"labels": 200, "error": None}) == '→ {"labels": 200}'
    assert change_text({"replica": "r0"}, None) == '{"replica": "r0"} →'
    assert change_text(None, None) == ""
    assert change_text({"a": 1}, {"a": 1}) == "no change"
    assert change_text("x" * 50, "y" * 200, limit=60).endswith("…")
    assert len(change_text("x" * 50, "y" * 200, limit=60)) == 60
    assert linked_run(EVENTS[0]) == "run-1"
    assert linked_run(EVENTS[1]) is None
