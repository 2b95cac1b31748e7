"""Small HTML pieces several pages draw: a traffic split bar, badges, numbers, times."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from workbench.ui.views.shell import esc, version_color


def split_bar(routes: Sequence[tuple[str, int, float]]) -> str:
    if not routes:
        return '<div class="wb-split"><div style="width:100%;background:#9ca3af">no traffic</div></div>'
    cells = "".join(
        f'<div style="width:{weight:g}%;background:{version_color(version)}" title="{esc(model)} v{version} '
        f'{weight:g}%">v{version} {weight:g}%</div>'
        for model, version, weight in sorted(routes, key=lambda r: r[1])
    )
    return f'<div class="wb-split" data-testid="split">{cells}</div>'


def badge(text: str, kind: str = "") -> str:
    return f'<span class="wb-badge {kind}">{esc(text)}</span>'


def number(value: float | None, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{unit}"


def when(value: datetime | float | None) -> str:
    if value is None:
        return "-"
    moment = datetime.fromtimestamp(value, tz=UTC) if isinstance(value, int | float) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def stat(value: str, label: str, testid: str = "") -> str:
    attribute = f' data-testid="{testid}"' if testid else ""
    return f'<div class="wb-stat"><b{attribute}>{value}</b><span>{esc(label)}</span></div>'
