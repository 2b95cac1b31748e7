"""``EndpointCard``: one endpoint at a glance: its split, its replicas, its recent latency and load."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets  # type: ignore[import-untyped]

from workbench.client import Client
from workbench.errors import WorkbenchError
from workbench.records.endpoints import EndpointRecord
from workbench.ui.plans import endpoint_routes
from workbench.ui.widgets import _layout
from workbench.ui.widgets import _render as render
from workbench.ui.widgets._viewer import Viewer


def replica_summary(
    record: EndpointRecord, replicas: list[dict[str, Any]]
) -> tuple[str, str, list[tuple[int, int]]]:
    """``(health, colour, [(version, ready replicas)])``: healthy when every routed version has a ready
    replica (a version with none answers with errors)."""
    ready: dict[int, int] = {}
    for replica in replicas:
        if replica.get("state") == "ready" and replica.get("version") is not None:
            ready[int(replica["version"])] = ready.get(int(replica["version"]), 0) + 1
    routed = sorted({version for _, version, _ in endpoint_routes(record)})
    counts = [(version, ready.get(version, 0)) for version in routed]
    missing = [version for version, count in counts if count == 0]
    if not missing:
        return "healthy", render.OK, counts
    if len(missing) < len(routed):
        return f"degraded: no ready replica of v{', v'.join(map(str, missing))}", render.WARN, counts
    return "down: no ready replica", render.ERROR, counts


class EndpointCard(Viewer):
    """The endpoint's traffic split, replica health, and p95 latency and requests/s of the last minutes.

    The series comes from the prediction log (``client.series``), so evaluation requests sent as
    probes (``client.predict``'s default) do not show here: what is drawn is live traffic.
    """

    def __init__(
        self, client: Client, endpoint: str, *, window_s: float = 300.0, step_s: float = 10.0
    ) -> None:
        self.client = client
        self.endpoint = endpoint
        self.window_s = window_s
        self.step_s = step_s
        self.record: EndpointRecord | None = None
        self.latency_p95_ms: list[float | None] = []
        self.requests_per_s: float | None = None
        self.heading = _layout.title(f"Endpoint {render.text(endpoint)}")
        self.routes = widgets.HTML()
        self.health = widgets.HTML()
        self.latency = widgets.HTML()
        self.view = _layout.card(self)
        self.refresh()

    def refresh(self) -> None:
        """Re-read the definition, the replicas and the series."""
        try:
            status = self.client.endpoint_status(self.endpoint)
            series = self.client.series(self.endpoint, window_s=self.window_s, step_s=self.step_s)
        except WorkbenchError as exc:
            self.record = None
            self.routes.value = render.failure(render.error_text(exc))
            self.health.value = self.latency.value = ""
            return
        self.record = EndpointRecord.model_validate(status["endpoint"])
        self.routes.value = render.split_bar(endpoint_routes(self.record)) + self._shadows()
        self._show_health(status.get("replicas", []))
        self._show_latency(series.get("series", {}).get("all", []))

    def _shadows(self) -> str:
        assert self.record is not None
        shadows = [f"{s.model} v{s.version} ({s.sample_percent:g}%)" for s in self.record.spec.shadows]
        return render.message("shadow: " + ", ".join(shadows)) if shadows else ""

    def _show_health(self, replicas: list[dict[str, Any]]) -> None:
        assert self.record is not None
        health, colour, counts = replica_summary(self.record, replicas)
        per_version = ", ".join(f"v{version}: {count} ready" for version, count in counts)
        restarts = sum(int(r.get("restarts") or 0) for r in replicas)
        self.health.value = (
            f'<span style="color:{colour}">● {render.text(health)}</span> '
            f'<span style="color:{render.MUTED}">{render.text(per_version)}'
            f"{f', {restarts} restarts' if restarts else ''} · revision {self.record.revision}</span>"
        )

    def _show_latency(self, points: list[dict[str, Any]]) -> None:
        self.latency_p95_ms = [p.get("latency_p95_ms") for p in points]
        rates = [p["requests_per_s"] for p in points if p.get("requests_per_s") is not None]
        self.requests_per_s = rates[-1] if rates else None
        drawn = [v for v in self.latency_p95_ms if v is not None]
        minutes = f"{self.window_s / 60:g} min"
        if not drawn:
            self.latency.value = render.message(f"no live traffic in the last {minutes}")
            return
        rate = f"{self.requests_per_s:.1f} req/s" if self.requests_per_s is not None else ""
        self.latency.value = (
            f'<div style="display:flex;gap:8px;align-items:center">{render.sparkline(self.latency_p95_ms)}'
            f'<div style="font-size:12px">p95 {drawn[-1]:.1f} ms<br>{rate}<br>'
            f'<span style="color:{render.MUTED}">last {minutes}</span></div></div>'
        )
