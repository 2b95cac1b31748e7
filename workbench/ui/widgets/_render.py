"""HTML for the widgets, as pure functions of what was read: no widgets, no I/O.

Kept apart so the pictures (a split bar, a sparkline, a status line) can be checked without a
frontend, and so every string that came from the control plane is escaped in one place.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from workbench.errors import WorkbenchError
from workbench.ui.plans import Preview, split_label

OK = "#1b7f3b"
WARN = "#b26a00"
ERROR = "#b00020"
MUTED = "#666"
# One colour per version number, so v2 keeps its colour as the split moves.
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b", "#9d755d")

_ERROR_LABELS = {
    404: "Not found",
    409: "Conflict",
    422: "Invalid",
    400: "Bad request",
    401: "Not authorised",
    403: "Forbidden",
    503: "Unavailable",
}
_ERROR_HINTS = {
    404: "nothing was changed",
    409: "nothing was changed; preview again to see the current state",
}


def text(value: object) -> str:
    return html.escape(str(value), quote=True)


def message(body: str, colour: str = MUTED) -> str:
    return f'<div style="color:{colour};white-space:pre-wrap">{text(body)}</div>'


def success(body: str) -> str:
    return message(body, OK)


def error_text(exc: WorkbenchError) -> str:
    """What a person reads instead of a traceback: the kind of refusal, the API's own words, and
    whether anything changed (a 404 or 409 from the control plane changed nothing)."""
    label = _ERROR_LABELS.get(exc.status_code, "Error")
    hint = _ERROR_HINTS.get(exc.status_code)
    return f"{label} ({exc.status_code}): {exc.message}" + (f" — {hint}" if hint else "")


def failure(body: str) -> str:
    return message(body, ERROR)


def preview_box(preview: Preview) -> str:
    return (
        '<div style="border:1px solid #bbb;border-radius:4px;padding:6px 8px;margin:4px 0;'
        'font-family:monospace;white-space:pre-wrap">'
        f"<b>Confirm:</b> {text(preview.text())}</div>"
    )


def version_colour(version: int) -> str:
    return PALETTE[(version - 1) % len(PALETTE)]


def split_bar(routes: Sequence[tuple[str, int, float]], width_px: int = 320) -> str:
    """The traffic split as one bar of coloured segments, each as wide as its share."""
    live = [(m, v, w) for m, v, w in routes if w > 0]
    if not live:
        return message("no traffic")
    segments = []
    for model, version, weight in sorted(live, key=lambda r: (r[0], r[1])):
        label = f"{model} v{version} {weight:g}%"
        segments.append(
            f'<div title="{text(label)}" style="width:{weight:g}%;background:{version_colour(version)};'
            'color:white;font-size:11px;text-align:center;overflow:hidden;white-space:nowrap">'
            f"v{version} {weight:g}%</div>"
        )
    bar = (
        f'<div style="display:flex;width:{width_px}px;height:18px;border-radius:3px;overflow:hidden">'
        + "".join(segments)
        + "</div>"
    )
    return bar + f'<div style="color:{MUTED};font-size:11px">{text(split_label(live))}</div>'


def sparkline(
    values: Sequence[float | None], *, width: int = 240, height: int = 40, colour: str = "#4c78a8"
) -> str:
    """An inline SVG of ``values`` (None: no data at that step, drawn as a gap), scaled to its range.

    Each run of consecutive values is one polyline; a lone value between gaps is a dot.
    """
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return ""
    low, high = min(finite), max(finite)
    span = high - low or 1.0
    pad = 2.0
    step = (width - 2 * pad) / max(len(values) - 1, 1)

    def point(index: int, value: float) -> tuple[float, float]:
        y = height - pad - (value - low) / span * (height - 2 * pad)
        return pad + index * step, y

    runs: list[list[tuple[float, float]]] = [[]]
    for index, value in enumerate(values):
        if value is None or not math.isfinite(value):
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append(point(index, value))
    shapes = []
    for run in runs:
        if len(run) == 1:
            x, y = run[0]
            shapes.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{colour}"/>')
        elif run:
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
            shapes.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>')
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" style="background:#fafafa;border:1px solid #eee">'
        + "".join(shapes)
        + "</svg>"
    )
