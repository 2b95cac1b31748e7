"""`workbench audit` and `workbench status` in an 80-column terminal: fewer and wrapped columns, no line wider
than the terminal, the key columns kept; `--wide` shows every column at its natural width."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from typer.testing import CliRunner

import workbench.client
from workbench.cli import _output, app
from workbench.cli import audit as audit_cmd
from workbench.store.audit import AuditEvent

EVENTS = [
    AuditEvent(
        id=1234,
        at=datetime(2026, 12, 5, 23, 50, 1, tzinfo=UTC),
        actor="alice",
        action="model.alias.set",
        target="models:/churn-classifier@champion",
        before={"version": 1},
        after={"version": 2, "by": "rollout:8f0c2a3b"},
        reason="rollout 8f0c2a3b: last step (50%) passed: promoting",
    ),
    AuditEvent(
        id=1235,
        at=datetime(2026, 12, 5, 23, 51, 2, tzinfo=UTC),
        actor="rollout-controller",
        action="endpoint.routes.set",
        target="endpoints:/churn",
        after={"routes": [{"model": "churn-classifier", "version": 3, "weight": 20}]},
        reason="demo: canary of models:/churn-classifier/3",
    ),
]

STATUS: dict[str, Any] = {
    "version": "0.6.0",
    "uptime_seconds": 1234.5,
    "state_store": "sqlite",
    "audit_events": 321,
    "models": [
        {"name": "churn-classifier", "latest_version": 3, "aliases": {"champion": 2, "challenger": 3}}
    ],
    "endpoints": [
        {
            "name": "churn",
            "revision": 7,
            "routes": [
                {"model": "churn-classifier", "version": 2, "weight": 80.0},
                {"model": "churn-classifier", "version": 3, "weight": 20.0},
            ],
        }
    ],
    "rollouts": [
        {
            "id": "r1",
            "endpoint": "churn",
            "strategy": "canary",
            "stable": "models:/churn-classifier/2",
            "candidate": "models:/churn-classifier/3",
            "phase": "rolled_back",
            "step_index": 0,
            "message": "analysis failed at 20%: latency_p95: candidate p95 2.31 ms vs baseline 0.7457 ms; 64% "
            "of candidate requests slower than the baseline p95 + 1 ms (1.746 ms), 5% expected",
        },
        {
            "id": "r2",
            "endpoint": "churn",
            "strategy": "canary",
            "stable": "models:/churn-classifier/1",
            "candidate": "models:/churn-classifier/2",
            "phase": "succeeded",
            "step_index": 1,
            "message": "last step (50%) passed: promoting (reported, not gating: prediction_shift fail)",
        },
    ],
    "runbook_runs": [
        {
            "id": "run-0f3a9c1e2b",
            "runbook": "retrain-and-canary",
            "status": "succeeded",
            "trigger": "alert",
            "duration_s": 41.2,
            "outcome": "retrained v4 (AUC 0.842 vs 0.801 on fed-back labels); canary promoted",
        }
    ],
}


class FakeClient:
    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        pass

    def audit(self, **_filters: Any) -> list[AuditEvent]:
        return EVENTS

    def status(self) -> dict[str, Any]:
        return STATUS


def _run(monkeypatch: pytest.MonkeyPatch, width: int, *args: str) -> list[str]:
    monkeypatch.setattr(audit_cmd, "Client", FakeClient)
    monkeypatch.setattr(workbench.client, "Client", FakeClient)
    monkeypatch.setattr(_output.console, "width", width)
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def _header(lines: list[str], first: str) -> list[str]:
    """The column names on the header line that starts with ``first``."""
    line = next(line for line in lines if line.strip(" ┃").startswith(first))
    return [cell for cell in line.replace("┃", "  ").split("  ") if cell.strip()]


def test_audit_fits_80_columns_with_its_key_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _run(monkeypatch, 80, "audit")
    assert max(len(line) for line in lines) <= 80
    assert [cell.strip() for cell in _header(lines, "#")] == [
        "#",
        "when (UTC)",
        "actor",
        "action",
        "target",
        "why",
    ]
    text = "\n".join(lines)
    assert "not shown at this width: before, after (--wide)" in text
    for value in ("1234", "2026-12-05", "23:50:01", "alice", "rollout-cont", "endpoints:/c"):
        assert value in text, value


def test_audit_wide_shows_every_column_unwrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _run(monkeypatch, 80, "audit", "--wide")
    assert max(len(line) for line in lines) > 80  # for a pager or a file: nothing is cut or wrapped
    header = [cell.strip() for cell in _header(lines, "#")]
    assert header == ["#", "when (UTC)", "actor", "action", "target", "before", "after", "why"]
    row = next(line for line in lines if "1235" in line)
    for value in ("2026-12-05 23:51:02", "rollout-controller", "endpoint.routes.set", "endpoints:/churn"):
        assert value in row, value
    assert "not shown" not in "\n".join(lines)


def test_audit_in_a_wide_terminal_needs_no_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _run(monkeypatch, 240, "audit")
    assert "before" in _header(lines, "#")[5]
    assert max(len(line) for line in lines) <= 240
    assert "not shown" not in "\n".join(lines)


def test_status_fits_80_columns_with_its_key_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _run(monkeypatch, 80, "status")
    assert max(len(line) for line in lines) <= 80
    text = "\n".join(lines)
    assert [c.strip() for c in _header(lines, "endpoint   stable")] == [
        "endpoint",
        "stable → candidate",
        "phase",
        "last event",
    ]
    assert [c.strip() for c in _header(lines, "runbook")] == ["runbook", "status", "took", "outcome / error"]
    for value in ("churn-classifier 2 → 3", "rolled_back", "succeeded", "latency_p95", "champion→v2"):
        assert value in text, value
    assert "not shown at this width: strategy, step (--wide)" in text
    assert "not shown at this width: run, trigger (--wide)" in text


def test_status_wide_shows_every_column(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _run(monkeypatch, 80, "status", "--wide")
    assert [c.strip() for c in _header(lines, "endpoint ┃ strategy")] == [
        "endpoint",
        "strategy",
        "stable → candidate",
        "phase",
        "step",
        "last event",
    ]
    assert "run-0f3a9c1e2b" in "\n".join(lines)
    message = STATUS["rollouts"][0]["message"]
    assert any(message in line for line in lines)  # one line, not clipped
