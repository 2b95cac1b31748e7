"""``workbench audit``: the append-only log of every change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import typer

from workbench.cli._output import Column, fail, handle_errors, print_json, print_table
from workbench.client import Client

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(raw: str | None, option: str) -> datetime | None:
    """ISO 8601 timestamps, or a look-back such as ``15m``, ``2h``, ``7d``."""
    if raw is None:
        return None
    text = raw.strip()
    if text and text[-1] in _UNITS and text[:-1].isdigit():
        return datetime.now(tz=UTC) - timedelta(seconds=int(text[:-1]) * _UNITS[text[-1]])
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise fail(
            f"{option}: expected an ISO time (2026-01-31T12:00) or a look-back like 15m, 2h, 7d", 2
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _short(value: object, width: int = 60) -> str:
    if value is None:
        return ""
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


@handle_errors
def audit(
    target: str | None = typer.Option(None, "--target", help="exact target, e.g. models:/churn@champion"),
    target_prefix: str | None = typer.Option(None, "--prefix", help="target prefix, e.g. models:/churn"),
    action: str | None = typer.Option(None, "--action", help="e.g. model.alias.set"),
    actor: str | None = typer.Option(None, "--actor"),
    since: str | None = typer.Option(None, "--since", help="ISO time or look-back (15m, 2h, 7d)"),
    until: str | None = typer.Option(None, "--until", help="ISO time or look-back"),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=10000),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    wide: bool = typer.Option(False, "--wide", help="every column (before, after), however wide"),
) -> None:
    """Who changed what, when and why: newest first."""
    with Client() as client:
        events = client.audit(
            target=target,
            target_prefix=target_prefix,
            action=action,
            actor=actor,
            since=parse_time(since, "--since"),
            until=parse_time(until, "--until"),
            limit=limit,
        )
    if as_json:
        print_json(events)
        return
    print_table(
        "Audit log",
        [
            Column("#", no_wrap=True),
            Column("when (UTC)"),
            Column("actor", fold=True),
            Column("action", fold=True),
            Column("target", fold=True),
            Column("before", wide_only=True, fold=True),
            Column("after", wide_only=True, fold=True),
            Column("why"),
        ],
        [
            (
                e.id,
                # Date and time wrap apart in a narrow terminal.
                e.at.strftime("%Y-%m-%d %H:%M:%S"),
                e.actor,
                e.action,
                e.target,
                _short(e.before, 30) if not wide else _short(e.before, 200),
                _short(e.after, 40) if not wide else _short(e.after, 200),
                _short(e.reason, 60) if not wide else e.reason or "",
            )
            for e in events
        ],
        wide=wide,
    )
