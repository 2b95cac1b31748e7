"""The dashboard benchmark's section of docs/benchmarks.md, from a run's results (``dashboards.Result``)."""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING

from _dashboard_stack import ROLLBACK

if TYPE_CHECKING:
    from dashboards import PageLoad, Result, SessionWindow, Trial


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(v for v in values if not math.isnan(v))
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else math.nan


def _s(ms: float) -> str:
    return "-" if math.isnan(ms) else f"{ms / 1000:.2f} s"


def _kib(n: float) -> str:
    return f"{n / 1024:,.0f} KiB"


def _verdict(met: bool, partly: bool = False) -> str:
    return "**met**" if met else ("**met at the median**" if partly else "**not met**")


def _loads(result: Result, cache: str) -> list[PageLoad]:
    return [x for x in result.loads if x.cache == cache]


def _median(values: list[float]) -> float:
    clean = [v for v in values if not math.isnan(v)]
    return statistics.median(clean) if clean else math.nan


# ---------------------------------------------------------------------------------------- targets
def targets(result: Result, first_chart_s: float, live_p95_s: float, growth_pct: float) -> list[str]:
    rows = ["| target (issue 11) | result | |", "|---|---|---|"]
    charts = {cache: [x.chart_ms for x in _loads(result, cache)] for cache in ("warm", "cold")}
    chart_text = "; ".join(
        f"{cache} cache: p50 {_s(_median(v))}, max {_s(max(v))} ({len(v)} loads)"
        for cache, v in charts.items()
    )
    worst = max(max(v) for v in charts.values())
    medians = max(_median(v) for v in charts.values())
    rows.append(
        f"| navigation → first chart with data ≤ {first_chart_s:g} s | {chart_text} | "
        f"{_verdict(worst <= first_chart_s * 1000, medians <= first_chart_s * 1000)} |"
    )
    bytes_text = "; ".join(
        f"{cache} cache: {_kib(_median([x.http_bytes for x in loads]))} HTTP + "
        f"{_kib(_median([x.ws_in_bytes + x.ws_out_bytes for x in loads]))} websocket"
        for cache in ("warm", "cold")
        if (loads := _loads(result, cache))
    )
    rows.append(f"| bytes moved for that page load (median) | {bytes_text} | no target |")
    for what, trials in (
        ("a served request → the overview's counter", result.requests),
        ("a rollback through the API → the endpoint page (each on another endpoint)", result.rollbacks),
        ("the same, repeated on one endpoint's open page", result.repeated),
    ):
        if not trials:
            continue
        seen = [t.seen_s for t in trials]
        rows.append(
            f"| {what}, p95 ≤ {live_p95_s:g} s | p50 {_sec(statistics.median(seen))}, p95 "
            f"{_sec(_pct(seen, 0.95))}, max {_sec(max(seen))} ({len(seen)} trials) | "
            f"{_verdict(_pct(seen, 0.95) <= live_p95_s)} |"
        )
    rows.append(_sessions_target(result.windows))
    heap = [
        (label, _growth([getattr(s, attr) for s in result.samples]))
        for label, attr in (("endpoint page", "endpoint_heap_mb"), ("overview", "overview_heap_mb"))
    ]
    minutes = result.samples[-1].at_s / 60 if result.samples else 0
    rows.append(
        f"| browser JS heap growth over {minutes:.0f} min ≤ {growth_pct:g} % | "
        + "; ".join(
            f"{label}: {g['first']:.1f} → {g['last']:.1f} MB ({g['growth_pct']:+.1f} %)" for label, g in heap
        )
        + f" | {_verdict(all(g['growth_pct'] <= growth_pct for _, g in heap))} |"
    )
    rss = _growth([s.dashboard_rss_mb for s in result.samples])
    rows.append(
        f"| dashboard process RSS growth over {minutes:.0f} min ≤ {growth_pct:g} % | {rss['first']:.0f} → "
        f"{rss['last']:.0f} MB ({rss['growth_pct']:+.1f} %, max {rss['max']:.0f} MB) | "
        f"{_verdict(rss['growth_pct'] <= growth_pct)} |"
    )
    return rows


def _growth(values: list[float]) -> dict[str, float]:
    if not values:
        return {"first": math.nan, "last": math.nan, "max": math.nan, "growth_pct": math.nan}
    return {
        "first": values[0],
        "last": values[-1],
        "max": max(values),
        "growth_pct": 100 * (values[-1] - values[0]) / values[0],
    }


#: What the feed reads when it re-reads the state (every 10 s, and after audit events); its calls to
#: ``/traffic``, ``/audit`` and ``/monitor-history`` run on their own clocks.
_STATE_PATHS = (
    "/endpoints",
    "/endpoints/{name}/status",
    "/rollouts",
    "/alert-rules",
    "/alerts",
    "/monitors",
    "/runbook-runs",
)


def _refresh_calls(windows: list[SessionWindow]) -> float:
    """Calls one state re-read makes (a window holds a whole number of them: its count's resolution)."""
    refreshes = sum(w.by_path.get("/endpoints", 0) for w in windows)
    calls = sum(w.by_path.get(path, 0) for w in windows for path in _STATE_PATHS)
    return calls / refreshes if refreshes else 0.0


def _sessions_target(windows: list[SessionWindow]) -> str:
    """Met when more pages bring no more requests than the 1-page windows differ by (at least 5 %), plus
    one state re-read: a 60 s window holds 5 or 6 of them whatever the pages, so counts step by that."""
    ones = [w.rate for w in windows if w.pages == 1]
    many = [w for w in windows if w.pages > 1]
    if not ones or not many:
        return "| control-plane requests/s, 1 vs 20 pages | not measured | |"
    base = statistics.mean(ones)
    step = _refresh_calls(windows) / statistics.mean(w.seconds for w in windows)
    noise = max(max(ones) - min(ones), 0.05 * base) + step
    text = ", ".join(
        f"{w.pages} page{'s' if w.pages > 1 else ''}: {w.rate:.2f}/s"
        + (f" ({100 * (w.rate / base - 1):+.1f} % of the 1-page mean)" if w.pages > 1 else "")
        for w in windows
    )
    if all(abs(w.rate - base) <= noise for w in many):
        verdict = _verdict(True)
    elif all(w.rate < base for w in many):
        polls = ", ".join(f"{w.by_path.get('/traffic', 0) / w.seconds:.2f}/s" for w in windows)
        verdict = f"**met**: fewer, not more (the feed's polls of `/traffic`: {polls})"
    else:
        verdict = _verdict(False)
    return (
        f"| control-plane requests/s with 1 and with {many[0].pages} pages open: equal within noise | {text}; "
        f"noise: the 1-page windows' spread, at least 5 %, plus one state re-read per window ({step:.2f}/s): "
        f"{noise:.2f}/s | {verdict} |"
    )


# ---------------------------------------------------------------------------------------- details
STAGES = (
    ("the dashboard's own time for the page's GET (its access log)", "server_ms"),
    ("the answer begins (TTFB)", "ttfb_ms"),
    ("scripts loaded and run (DOMContentLoaded)", "dcl_ms"),
    ("websocket open", "ws_open_ms"),
    ("Bokeh document in the page (pulled over the websocket)", "doc_ms"),
    ("first chart drawn with data", "chart_ms"),
)


def page_load_table(result: Result) -> list[str]:
    warm, cold = _loads(result, "warm"), _loads(result, "cold")

    def cell(loads: list[PageLoad], attr: str) -> str:
        values = [float(getattr(x, attr)) if getattr(x, attr) is not None else math.nan for x in loads]
        return f"{_median(values):,.0f} / {max(values):,.0f}" if loads else "-"

    return [
        "| from navigation, ms (p50 / max) | warm cache | cleared cache |",
        "|---|---:|---:|",
        *(f"| {label} | {cell(warm, attr)} | {cell(cold, attr)} |" for label, attr in STAGES),
        f"| points drawn (traffic-all) | {cell(warm, 'points')} | {cell(cold, 'points')} |",
        f"| bytes over HTTP | {cell(warm, 'http_bytes')} | {cell(cold, 'http_bytes')} |",
        f"| bytes received over the websocket | {cell(warm, 'ws_in_bytes')} | {cell(cold, 'ws_in_bytes')} |",
        f"| bytes sent over the websocket | {cell(warm, 'ws_out_bytes')} | {cell(cold, 'ws_out_bytes')} |",
    ]


def stage_shares(result: Result) -> str:
    warm = _loads(result, "warm") or result.loads
    med = {attr: _median([float(getattr(x, attr) or math.nan) for x in warm]) for _, attr in STAGES}
    steps = [
        ("the page's HTML (answered from a kept session)", med["ttfb_ms"]),
        ("the scripts (TTFB → DOMContentLoaded)", med["dcl_ms"] - med["ttfb_ms"]),
        (
            "opening the websocket and pulling the document (the page's session is built meanwhile, from "
            "the HTML's answer on)",
            med["doc_ms"] - med["dcl_ms"],
        ),
        ("building the views and drawing (document → chart)", med["chart_ms"] - med["doc_ms"]),
    ]
    total = med["chart_ms"]
    parts = ", ".join(f"{what} {ms:,.0f} ms ({100 * ms / total:.0f} %)" for what, ms in steps)
    return f"Warm-cache medians, {total:,.0f} ms in all: {parts}."


def first_chart_reading(result: Result, first_chart_s: float) -> str:
    """What the stages and the profile say about the first chart (an empty string when it is met)."""
    warm = _loads(result, "warm") or result.loads
    med = {attr: _median([float(getattr(x, attr) or math.nan) for x in warm]) for _, attr in STAGES}
    if med["chart_ms"] <= first_chart_s * 1000:
        return ""
    cold_mib = _median([float(x.http_bytes) for x in _loads(result, "cold")]) / 2**20
    rows = {p.what.strip(): p for p in result.profile}
    build = next((p for what, p in rows.items() if what.startswith("the page build")), None)
    figures = next((p for what, p in rows.items() if what.startswith("four Bokeh figures")), None)
    to_json = next((p for what, p in rows.items() if what.startswith("the document serialized")), None)
    profile = (
        f" Under cProfile a page build took {build.per_call_ms:,.0f} ms, of which "
        f"{figures.per_call_ms:,.0f} ms creating the four traffic figures' Bokeh models, and serializing "
        f"the page's whole document for the browser's pull {to_json.per_call_ms:,.0f} ms."
        if build and figures and to_json
        else ""
    )
    return (
        f"Not met: at the warm-cache median, the dashboard works {med['ttfb_ms']:,.0f} ms before its answer "
        f"begins (it builds the page's session: figures, sources, widgets) and "
        f"{med['doc_ms'] - med['dcl_ms']:,.0f} ms pass between the scripts having run and the document "
        "being in the page (the websocket opens, the server serializes the whole document, the browser "
        f"builds its models); the browser's drawing takes {med['chart_ms'] - med['doc_ms']:,.0f} ms and the "
        f"cached scripts {med['dcl_ms'] - med['ttfb_ms']:,.0f} ms.{profile} With a cleared cache the page "
        f"also loads {cold_mib:.1f} MiB of scripts and styles, sent uncompressed (encoded size = decoded "
        "size), which over this machine's loopback changes the total little."
    )


def live_table(result: Result) -> list[str]:
    rows = [
        "| change | trials | the feed had read it: p50 | its websocket message reached the browser: p50 | "
        "document patches the page received before it: p50 (of which marker changes) | "
        "seen on the page: p50 | p95 | max | the call itself: p50 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for what, trials in (
        ("one request served by `probe` → its requests counter on the overview", result.requests),
        (
            "a rollback through the API → the new revision in the endpoint page's summary; each trial on the "
            "next endpoint, its page opened for it",
            result.rollbacks,
        ),
        (f"the same, trial after trial on `{ROLLBACK}` with its page kept open", result.repeated),
    ):
        if trials:
            rows.append(_live_row(what, trials))
    return rows


def repeated_table(result: Result) -> list[str]:
    """Per trial: revisions marked on the page's charts, and how long the rollback took to show."""
    if not result.repeated:
        return []
    stopped = result.notes.get("repeated_stopped")
    wait = result.notes.get("repeated_timeout_s", 60)
    after = [
        "",
        f'Trials on `{ROLLBACK}`\'s open page, in order ("never": not seen within {wait:g} s)'
        + (f"; stopped: {stopped}." if stopped else "."),
    ]
    header = "| trial | " + " | ".join(str(i + 1) for i in range(len(result.repeated))) + " |"
    return [
        header,
        "|---|" + "---:|" * len(result.repeated),
        "| revisions in the page's 15-min window | "
        + " | ".join(str(t.markers) for t in result.repeated)
        + " |",
        "| the feed had read it (s) | " + " | ".join(_sec(t.feed_s, 1, "") for t in result.repeated) + " |",
        "| patches received before it (marker changes) | "
        + " | ".join(f"{t.patches} ({t.marker_patches})" for t in result.repeated)
        + " |",
        "| its message reached the browser (s) | "
        + " | ".join(_sec(t.frame_s, 1, "") for t in result.repeated)
        + " |",
        "| seen on the page (s) | " + " | ".join(_sec(t.seen_s, 1, "") for t in result.repeated) + " |",
        *after,
    ]


def _live_row(what: str, trials: list[Trial]) -> str:
    seen = [t.seen_s for t in trials]
    calls = [t.call_s * 1000 for t in trials]
    feed, frame = _median([t.feed_s for t in trials]), _median([t.frame_s for t in trials])
    return (
        f"| {what} | {len(trials)} | {_sec(feed)} | {_sec(frame)} | "
        f"{statistics.median([t.patches for t in trials]):.0f} "
        f"({statistics.median([t.marker_patches for t in trials]):.0f}) | {_sec(statistics.median(seen))} | "
        f"{_sec(_pct(seen, 0.95))} | {_sec(max(seen))} | {statistics.median(calls):.0f} ms |"
    )


def _sec(value: float, digits: int = 2, unit: str = " s") -> str:
    """Seconds; infinite is a change never seen (within the benchmark's wait), NaN a stage not observed."""
    if math.isnan(value):
        return "-"
    return "never" if math.isinf(value) else f"{value:.{digits}f}{unit}"


def sessions_table(result: Result) -> list[str]:
    rows = [
        "| pages open | window | requests/s at the control plane | of which the feed's | the pages' own "
        "requests while they opened | dashboard CPU | dashboard RSS |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in result.windows:
        rows.append(
            f"| {w.pages} | {w.seconds:.0f} s | {w.rate:.2f} | {w.from_feed / w.seconds:.2f} | {w.opening} | "
            f"{w.dashboard_cpu_pct:.0f} % | {w.dashboard_rss_mb:.0f} MB |"
        )
    return rows


def feed_calls(result: Result) -> str:
    if not result.windows:
        return ""
    w = result.windows[0]
    calls = ", ".join(f"`{path}` {n / w.seconds:.2f}/s" for path, n in w.by_path.items())
    refused = ", ".join(f"`{what}`: {n} times" for what, n in w.refused.items())
    per_refresh = _refresh_calls(result.windows)
    return (
        f"The feed's calls in the first window: {calls}. Every call is the one feed's, whatever the pages: "
        f"it re-reads the state every 10 s (about {per_refresh:.0f} calls), so a {w.seconds:.0f} s window holds "
        "5 or 6 re-reads and its count steps by one of them."
        + (f" Refused by the control plane in that window: {refused}." if refused else "")
    )


def memory_table(result: Result) -> list[str]:
    rows = [
        "| at | endpoint page JS heap | overview JS heap | dashboard RSS | points in the endpoint page's chart |",
        "|---:|---:|---:|---:|---:|",
    ]
    for s in result.samples:
        rows.append(
            f"| {s.at_s / 60:.1f} min | {s.endpoint_heap_mb:.1f} MB | {s.overview_heap_mb:.1f} MB | "
            f"{s.dashboard_rss_mb:.0f} MB | {s.endpoint_points} |"
        )
    return rows


def profile_table(result: Result) -> list[str]:
    if not result.profile:
        return []
    rows = ["| what (dashboard process, main thread, under cProfile) | calls | per call |", "|---|---:|---:|"]
    rows += [f"| {p.what} | {p.calls} | {p.per_call_ms:,.0f} ms |" for p in result.profile]
    return rows


# ---------------------------------------------------------------------------------------- section
def markdown(result: Result, first_chart_s: float, live_p95_s: float, growth_pct: float) -> str:
    s, n = result.setup, result.notes
    lines = [
        "## Dashboards (issue 11)",
        "",
        "Command: `make bench-dashboards` (`.venv/bin/python benchmarks/dashboards.py --write-docs`; "
        "`--minutes 1` shortens the memory part for a quick check). This run: "
        f"`.venv/bin/python {n['command']}`" + (f" {n['how']}" if n.get("how") else "") + ".",
        "",
        f"Measured {n['date']} ({n.get('code', 'code version not recorded')}) on the development machine "
        f"({n['machine']}), shared with {n.get('other_work', 'other work')}: load "
        f"average {n['load_start']:.1f} at the start and {n['load_end']:.1f} at the end; whole run "
        f"{n['run_s'] / 60:.0f} min. Everything real: a control plane (API on a real port, every request it "
        f"received counted by an ASGI middleware), the router, {s['endpoints']} endpoints serving the demo's "
        f"churn MLP (a replica each; `e00` also keeps v2 warm at 0 % for the rollbacks) under "
        f"{s['rate']:g} requests/s each through the router ({n['sent']:,} requests sent, {n['failed']} "
        "failed), an unloaded `probe` endpoint (called by the request trials, and once before the dashboard "
        "starts, a habit from before 665baf8 fixed the feed's cursor for an endpoint with no traffic yet), "
        f"a monitor per endpoint looking every {s['every_s']:g} s, and "
        f"{s['history_points']:,} points "
        "of monitor history written into the state store for the hour before (a look a second: traffic per "
        "version, the monitor-wide series, drift of 20 columns), which the dashboard's feed backfills when it "
        f"starts. The dashboard server (`python -m workbench.ui.server`, its own process) answered "
        f"{s['dashboard_answered_s']:.1f} s after its start; the pages ran in Debian's Chromium (headless, "
        "Playwright).",
        "",
        "### Against the targets",
        "",
        *targets(result, first_chart_s, live_p95_s, growth_pct),
        "",
        "### 1. Page load: an endpoint page",
        "",
        "Each load is a new tab of a signed-in browser context; a cleared cache means "
        "`Network.clearBrowserCache` before the navigation. Stages are read in the page (Navigation Timing, "
        "and a script that notes when the Bokeh document exists and when the figure drawing `traffic-all` "
        "has finished rendering with points in it); bytes are CDP's encoded sizes of HTTP responses and "
        "websocket payloads up to the moment the chart was drawn.",
        "",
        *page_load_table(result),
        "",
        stage_shares(result),
        "",
        first_chart_reading(result, first_chart_s),
        "",
        "What made the first chart sooner (commit ed5ee9a): measured with this benchmark on 8c38ee3, "
        "it took 2.69 s at the warm-cache median (max 3.93 s), the machine also running other work "
        "(load average 5.0). The dashboard built the whole page before answering the HTML (1.11 s), and "
        "the browser then pulled and built all of it: 299 Bokeh models (counted in-process), columns as "
        "JSON numbers. Now the "
        "columns are binary numpy arrays (values float32), the page's five figures share one datetime "
        "ticker and formatter (Bokeh's default is 13 models per axis), and lines are drawn without the "
        "selection and mute glyph models Bokeh adds by default; the first screen (summary, revision strip, "
        "latency and requests/s) is sent first, and error rate, batch size, the actions and the tables "
        "follow once the browser reports it drawn (`pn.state.onload`); and the HTML is answered from a kept "
        "session per page while the person's own session is built as the browser loads the scripts (Panel's "
        "`reuse_sessions='warm'`). The document the browser pulls first is now 130 Bokeh models (the "
        "whole page 212, counted in-process); it was the whole page, 299.",
        "",
        "The endpoint page opens with its default 15-minute window (`EndpointModel.window_s` = 900), so it "
        "draws 900 of the 3,600 points a series has in the feed's hour.",
        "",
        "### 2. From a change to the page",
        "",
        "Times from the moment the call returned (the request served, the rollback committed) to the page "
        "showing it (`Date.now()` in the page, checked every animation frame; same clock). Trials are spaced "
        "by a random 0.3-1.3 s so they do not align with the feed's one-second poll. Before each rollback, "
        "the endpoint is switched to v2 (not timed) and the page is seen to show it, so each rollback adds "
        "two revisions. The endpoint page marks every revision of its 15-minute window on its charts.",
        "",
        *live_table(result),
        "",
        *repeated_table(result),
        "",
        "Before commit b9914c7 (measured with this benchmark the same day), each revision was a `Span` "
        "annotation added to each of the four figures, and every change of the revisions removed and re-added "
        "all of them one document event at a time, each its own websocket message and re-layout: a rollback "
        "took 2.53 s to show at the median (p95 5.06 s) on a freshly opened page, and on one open page 0.4 to "
        "20.2 s as its window filled with revisions, until the 9th repeated trial (26 revisions) was not seen "
        "within 60 s. The summary's message waited behind hundreds of annotation patches (644 counted during "
        "eight changes on one page). Marks are now one source drawn by every chart: no patch precedes the "
        "summary's in the tables above.",
        "",
        "### 3. Control-plane load per open page",
        "",
        "Requests the control plane received while 1, then 20, then 1 page(s) were open (endpoint pages and "
        "overviews alternating, in two browser contexts), counted after a 10 s settle; nothing else called "
        "the API meanwhile (the load goes to the router).",
        "",
        *sessions_table(result),
        "",
        feed_calls(result),
        "",
        "### 4. Memory over live updates",
        "",
        "An endpoint page and the overview open (separate contexts) under the steady load; every 30 s the "
        "JS heap of each after a forced GC (CDP `HeapProfiler.collectGarbage`, then "
        "`Performance.getMetrics` → `JSHeapUsedSize`) and the dashboard process's RSS.",
        "",
        *memory_table(result),
        "",
        "The dashboard process held 180 MB before commit b9914c7, when its feed's read of the monitors' last "
        "hour was refused (422: 297 series x 3,601 steps is more than the API's 500,000 points per answer) "
        "every 5 s and it held none of that hour; it now reads it monitor by monitor and keeps it.",
        "",
    ]
    if result.profile:
        lines += [
            "### Where a page's server time goes",
            "",
            "A second dashboard server on the same control plane, under cProfile, serving "
            "endpoint pages one after the other (each open 3 s), then one rollback of `e00` with its page "
            "open, right after the repeated trials (their revisions marked on its charts); time per call, "
            "the first call's imports excluded. cProfile slows Python down, so these are shares rather "
            "than times to compare with the stages above.",
            "",
            *profile_table(result),
            "",
        ]
    if n.get("feed_warnings") or n.get("feed_errors"):
        lines += [
            f"The dashboard's log holds {n['feed_warnings']} warnings and {n['feed_errors']} errors of "
            "`workbench.ui` for the run.",
            "",
        ]
    return "\n".join(lines)
