"""Dashboard benchmark (issue 11): page load, live latency, control-plane load per session, memory.

    .venv/bin/python benchmarks/dashboards.py                # ~30 minutes; prints the section
    .venv/bin/python benchmarks/dashboards.py --minutes 1    # a quick check (1 minute of the memory part)
    .venv/bin/python benchmarks/dashboards.py --write-docs   # also updates docs/benchmarks.md
    .venv/bin/python benchmarks/dashboards.py --render run.json --write-docs  # the section again, no run

One run on real processes (``_dashboard_stack.py``): a control plane in this process with its API on a
real port (every request counted by an ASGI middleware), the router, a replica per served version, 10
endpoints under paced load (``--rate`` requests a second each) plus an unloaded ``probe`` endpoint, a
monitor per endpoint looking every second, an hour of 1-second monitor history written into the state
store before the dashboard starts (so its feed backfills the hour), the dashboard server as its own
process, and Debian's Chromium through Playwright.

1. Page load: navigation to an endpoint page → its first chart drawn with data (the ``traffic-all``
   source has points and the figure drawing it has finished rendering), with a warm and a cleared
   browser cache; bytes over HTTP and the websocket up to that moment (CDP ``Network.*``); the page's
   stages (server answer, scripts, websocket, document, chart) and the server's own time from its log.
2. Live latency: a request served by ``probe`` → the overview's requests counter of ``probe`` changes;
   a rollback through the API → the endpoint page's summary shows the new revision, each on the next
   endpoint (its page opened for the trial), then repeated on one endpoint's open page, whose charts
   mark every revision of their window. Times in the page (``Date.now()`` when seen) against this
   process's clock when the call returned.
3. Control-plane requests/s with 1, then 20, then 1 page open (nothing else calls the API meanwhile).
4. Memory: JS heap after a forced GC (CDP) of an endpoint page and the overview, and the dashboard
   process's RSS, every 30 s for ``--minutes`` of live updates.
5. Profile (run after 2, while the repeated rollbacks' revisions are in ``e00``'s page window): a
   second dashboard server under cProfile serves a few endpoint pages, then one rollback of ``e00`` with
   its page open; where the time went.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import pstats
import random
import re
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from _dashboard_browser import (
    CHART_DRAWN,
    READ_STAGES,
    REVISION_SHOWN,
    STAGES_JS,
    TEXT_CHANGED,
    TEXT_OF,
    TIMEOUT_MS,
    Arrival,
    FrameLog,
    NetworkLog,
    heap_mb,
    launch,
    navigate,
    open_page,
    signed_in_context,
)
from _dashboard_stack import PROBE, ROLLBACK, DashboardServer, Setup, Stack, free_port, stack
from _docs import replace_section
from _procs import rss_mb
from playwright.sync_api import Browser, BrowserContext, CDPSession, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

SECTION = "## Dashboards (issue 11)"
FIRST_CHART_S = 1.5
LIVE_P95_S = 2.0
GROWTH_PCT = 10.0
SETTLE_S = 10.0
SAMPLE_EVERY_S = 30.0
REPEATED_TIMEOUT_S = 60.0
PROFILED_ROLLBACK_S = 180.0  # cProfile slows the dashboard down

PROBE_COUNTER = f"[data-testid=endpoint-card][data-endpoint={PROBE}] [data-testid=requests-total]"
SUMMARY = "[data-testid=endpoint-summary]"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ================================================================================ 1. page load
@dataclass(frozen=True)
class PageLoad:
    cache: str  # "warm" or "cold" (browser cache cleared before the navigation)
    ttfb_ms: float  # the dashboard's answer begins: it built the page's session
    dcl_ms: float  # DOMContentLoaded: Bokeh's and Panel's scripts ran
    ws_open_ms: float  # the page's websocket is open
    doc_ms: float  # the Bokeh document is in the page (pulled over the websocket)
    chart_ms: float  # the first chart is drawn with data
    points: int  # points in traffic-all when drawn
    http_bytes: int
    ws_in_bytes: int
    ws_out_bytes: int
    server_ms: float | None  # the dashboard's own time for the page's GET (its access log)


def _server_ms(log_path: Path, marker: str) -> float | None:
    match = re.search(rf"GET /endpoint\?name=\w+&load={marker} \(.*?\) ([0-9.]+)ms", log_path.read_text())
    return float(match.group(1)) if match else None


def load_once(stack_: Stack, context: BrowserContext, endpoint: str, index: int, *, cold: bool) -> PageLoad:
    page = context.new_page()
    page.add_init_script(STAGES_JS)
    cdp = context.new_cdp_session(page)
    net = NetworkLog(cdp)
    if cold:
        cdp.send("Network.clearBrowserCache")
    page.goto(f"{stack_.dashboard.url}/endpoint?name={endpoint}&load={index}", wait_until="commit")
    page.wait_for_function(CHART_DRAWN, timeout=TIMEOUT_MS, polling=100)
    page.wait_for_timeout(300)  # the CDP events up to the drawing arrive
    stages: dict[str, float] = page.evaluate(READ_STAGES)
    page.close()
    assert net.document_at is not None
    origin = net.document_at - stages["fetch"] / 1000  # navigation start on CDP's clock
    cutoff = origin + stages["chart"] / 1000
    return PageLoad(
        cache="cold" if cold else "warm",
        ttfb_ms=stages["ttfb"],
        dcl_ms=stages["dcl"],
        ws_open_ms=(net.ws_open_at - origin) * 1000 if net.ws_open_at else float("nan"),
        doc_ms=stages["doc"],
        chart_ms=stages["chart"],
        points=int(stages["points"]),
        http_bytes=NetworkLog.upto(net.http, cutoff),
        ws_in_bytes=NetworkLog.upto(net.ws_in, cutoff),
        ws_out_bytes=NetworkLog.upto(net.ws_out, cutoff),
        server_ms=_server_ms(stack_.dashboard.log, str(index)),
    )


def page_loads(stack_: Stack, browser: Browser, trials: int) -> list[PageLoad]:
    """``trials`` warm and ``trials`` cold loads, alternating, over the loaded endpoints."""
    context = signed_in_context(browser, stack_.dashboard.url, stack_.token)
    loads = []
    for i in range(2 * trials):
        endpoint = stack_.endpoints[1 + i % (len(stack_.endpoints) - 1)]
        loads.append(load_once(stack_, context, endpoint, i, cold=i % 2 == 1))
        log(f"  load {i}: {loads[-1].cache} first chart {loads[-1].chart_ms:.0f} ms")
        time.sleep(random.uniform(0.5, 1.5))
    context.close()
    return loads


# ============================================================================== 2. live latency
@dataclass(frozen=True)
class Trial:
    seen_s: float  # from the call's return to the page showing it
    call_s: float  # the call itself
    markers: int = 0  # rollbacks: revisions marked on the page's charts when it was made
    feed_s: float = math.nan  # rollbacks: the dashboard's feed had read the new state (its /endpoints call)
    frame_s: float = math.nan  # the websocket message carrying the change reached the browser
    patches: int = 0  # document patches the page received before that message
    marker_patches: int = 0  # of which changes to the charts' annotations (revision markers)

    @classmethod
    def of(cls, seen_s: float, call_s: float, arrival: Arrival, **more: Any) -> Trial:
        return cls(
            seen_s=seen_s,
            call_s=call_s,
            frame_s=arrival.after_s,
            patches=arrival.patches,
            marker_patches=arrival.marker_patches,
            **more,
        )


def _feed_read_state(stack_: Stack, after_wall: float) -> float:
    """Seconds after ``after_wall`` at which the feed's first state re-read (``/endpoints``) ended."""
    ends = [
        at
        for at, actor, path, _, _ in list(stack_.counter.recent)
        if actor == "dashboard" and path == "/endpoints" and at >= after_wall
    ]
    return min(ends) - after_wall if ends else math.nan


def request_to_overview(stack_: Stack, context: BrowserContext, trials: int) -> list[Trial]:
    page = context.new_page()
    frames = FrameLog(context, page)
    page.goto(f"{stack_.dashboard.url}/overview")
    page.wait_for_function(f"(sel) => ({TEXT_OF})(sel) !== null", arg=PROBE_COUNTER, timeout=TIMEOUT_MS)
    out = []
    with httpx.Client(timeout=30) as http:
        for _ in range(trials):
            time.sleep(random.uniform(0.3, 1.3))  # no alignment with the feed's one-second poll
            before = page.evaluate(TEXT_OF, PROBE_COUNTER)
            sent = time.time()
            http.post(
                stack_.invocations(PROBE), content=stack_.body, headers={"content-type": "application/json"}
            ).raise_for_status()
            served, served_mono = time.time(), time.monotonic()
            seen = page.wait_for_function(
                TEXT_CHANGED, arg=[PROBE_COUNTER, before], polling="raf", timeout=TIMEOUT_MS
            ).json_value()
            changed = re.compile(
                rf'data-endpoint="{PROBE}".*?data-testid="requests-total">(?!{re.escape(before)}<)', re.S
            )
            out.append(
                Trial.of(float(seen) / 1000 - served, served - sent, frames.first(served_mono, changed))
            )
    page.close()
    return out


TO_V2 = [{"model": "models:/churn/1", "weight": 0}, {"model": "models:/churn/2", "weight": 100}]
#: Seconds of traffic an endpoint page draws, and so the revisions it marks on its charts.
PAGE_WINDOW_S = 900


def _markers(stack_: Stack, endpoint: str) -> int:
    """Revisions of ``endpoint`` inside the endpoint page's window: each is a marker on its charts."""
    since = time.time() - PAGE_WINDOW_S
    return sum(1 for r in stack_.client.history(endpoint, limit=500) if r.at.timestamp() >= since)


class NotSeenError(Exception):
    """The switch to v2 before a rollback never showed on the page: no trial could be made."""


def rollback_once(stack_: Stack, page: Page, frames: FrameLog, endpoint: str, timeout_ms: float) -> Trial:
    """Switch ``endpoint`` to v2 (not timed) and see the page show it; then roll back, timed. A rollback
    not seen within ``timeout_ms`` is a trial with ``seen_s`` infinite."""
    flipped = stack_.client.update_endpoint(endpoint, TO_V2, reason="benchmark: v2 before a rollback")
    try:
        page.wait_for_function(REVISION_SHOWN, arg=[SUMMARY, flipped.revision], timeout=timeout_ms)
    except PlaywrightTimeout:
        raise NotSeenError(f"the switch to v2 was not seen within {timeout_ms / 1000:g} s") from None
    time.sleep(random.uniform(0.3, 1.3))
    markers = _markers(stack_, endpoint) + 1  # with the rollback's own
    called = time.time()
    result = stack_.client.rollback(endpoint, reason="benchmark")
    done, done_mono = time.time(), time.monotonic()
    try:
        seen = float(
            page.wait_for_function(
                REVISION_SHOWN, arg=[SUMMARY, result.revision], polling="raf", timeout=timeout_ms
            ).json_value()
        )
    except PlaywrightTimeout:
        seen = math.inf
    return Trial.of(
        seen / 1000 - done,
        done - called,
        frames.first(done_mono, re.compile(rf"revision {result.revision}<")),
        markers=markers,
        feed_s=_feed_read_state(stack_, done),
    )


def rollbacks_rotating(stack_: Stack, context: BrowserContext, trials: int) -> list[Trial]:
    """Each trial on the next loaded endpoint, its page opened for it: a page with a few revisions."""
    out = []
    for i in range(trials):
        endpoint = stack_.endpoints[i % len(stack_.endpoints)]
        page = context.new_page()
        frames = FrameLog(context, page)
        navigate(page, f"{stack_.dashboard.url}/endpoint?name={endpoint}")
        out.append(rollback_once(stack_, page, frames, endpoint, TIMEOUT_MS))
        page.close()
    return out


def rollbacks_repeated(
    stack_: Stack, context: BrowserContext, trials: int, timeout_s: float
) -> tuple[list[Trial], str]:
    """Trial after trial on one endpoint and one open page: its revisions, so its markers, accumulate.
    Stops at the first change not seen within ``timeout_s``; returns the trials and why it stopped."""
    page = context.new_page()
    frames = FrameLog(context, page)
    navigate(page, f"{stack_.dashboard.url}/endpoint?name={ROLLBACK}")
    out: list[Trial] = []
    stopped = ""
    for _ in range(trials):
        try:
            out.append(rollback_once(stack_, page, frames, ROLLBACK, timeout_s * 1000))
        except NotSeenError as exc:
            stopped = f"before trial {len(out) + 1}, {exc}"
            break
        log(f"  {out[-1].markers} revisions in the window: seen after {out[-1].seen_s:.2f} s")
        if math.isinf(out[-1].seen_s):
            stopped = f"trial {len(out)} was not seen within {timeout_s:g} s"
            break
    if stopped:
        log(f"  stopped: {stopped}")
    page.close()
    return out, stopped


# ==================================================================== 3. control-plane load
@dataclass(frozen=True)
class SessionWindow:
    pages: int
    seconds: float
    requests: int  # every request the control plane received in the window
    from_feed: int  # of which from the dashboard's feed (actor ``dashboard``)
    by_path: dict[str, int]
    refused: dict[str, int]  # answers >= 400 to the feed, by path and status
    opening: int  # requests the pages made themselves while they were opened (not the feed's)
    dashboard_cpu_pct: float
    dashboard_rss_mb: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def count_window(stack_: Stack, pages: int, opening: int, window_s: float) -> SessionWindow:
    """What the control plane received, and what the dashboard process used, over ``window_s``."""
    process = psutil.Process(stack_.dashboard.pid)
    start, cpu, began = stack_.counter.snapshot(), process.cpu_times(), time.monotonic()
    time.sleep(window_s)
    counts = stack_.counter.snapshot() - start
    seconds = time.monotonic() - began
    used = sum(process.cpu_times()[:2]) - sum(cpu[:2])
    feed = {key: n for key, n in counts.items() if key[0] == "dashboard"}
    by_path: dict[str, int] = {}
    for (_, path, _), n in feed.items():
        by_path[path] = by_path.get(path, 0) + n
    return SessionWindow(
        pages=pages,
        seconds=seconds,
        requests=sum(counts.values()),
        from_feed=sum(feed.values()),
        by_path=dict(sorted(by_path.items(), key=lambda kv: -kv[1])),
        refused={f"{path} → {status}": n for (_, path, status), n in feed.items() if status >= 400},
        opening=opening,
        dashboard_cpu_pct=100 * used / seconds,
        dashboard_rss_mb=rss_mb(stack_.dashboard.pid, tree=False),
    )


def sessions(stack_: Stack, browser: Browser, plan: tuple[int, ...], window_s: float) -> list[SessionWindow]:
    """For each count of ``plan``, that many pages open, then a counted window. Pages alternate endpoint
    pages (each endpoint in turn) and overviews, over two browser contexts."""
    contexts = [signed_in_context(browser, stack_.dashboard.url, stack_.token) for _ in range(2)]
    urls = [
        f"{stack_.dashboard.url}/endpoint?name={stack_.endpoints[i // 2 % len(stack_.endpoints)]}"
        if i % 2 == 0
        else f"{stack_.dashboard.url}/overview"
        for i in range(max(plan))
    ]
    pages: list[Page] = []
    windows = []
    for count in plan:
        before = stack_.counter.snapshot()
        while len(pages) > count:
            pages.pop().close()
        while len(pages) < count:
            pages.append(open_page(contexts[len(pages) % 2], urls[len(pages)]))
        opened = stack_.counter.snapshot() - before
        opening = sum(n for (actor, _, _), n in opened.items() if actor != "dashboard")
        time.sleep(SETTLE_S)
        windows.append(count_window(stack_, count, opening, window_s))
        log(f"  {count} page(s): {windows[-1].rate:.2f} requests/s at the control plane")
    for context in contexts:
        context.close()
    return windows


# ================================================================================= 4. memory
@dataclass(frozen=True)
class MemorySample:
    at_s: float
    endpoint_heap_mb: float
    overview_heap_mb: float
    dashboard_rss_mb: float
    endpoint_points: int  # points held by the endpoint page's traffic-all (bounded by the rollover)


def memory(stack_: Stack, browser: Browser, minutes: float) -> list[MemorySample]:
    endpoint = stack_.endpoints[1]
    watched: list[tuple[Page, CDPSession]] = []
    for path in (f"/endpoint?name={endpoint}", "/overview"):
        context = signed_in_context(browser, stack_.dashboard.url, stack_.token)
        page = open_page(context, f"{stack_.dashboard.url}{path}")
        cdp = context.new_cdp_session(page)
        for domain in ("Performance", "HeapProfiler"):
            cdp.send(f"{domain}.enable")
        watched.append((page, cdp))
    time.sleep(SETTLE_S)
    samples = []
    began = time.monotonic()
    while True:
        at = time.monotonic() - began
        points = int(
            watched[0][0].evaluate("() => Bokeh.documents[0].get_model_by_name('traffic-all').data.x.length")
        )
        samples.append(
            MemorySample(
                at_s=at,
                endpoint_heap_mb=heap_mb(watched[0][1]),
                overview_heap_mb=heap_mb(watched[1][1]),
                dashboard_rss_mb=rss_mb(stack_.dashboard.pid, tree=False),
                endpoint_points=points,
            )
        )
        log(
            f"  {at:5.0f} s: heap {samples[-1].endpoint_heap_mb:.1f} / {samples[-1].overview_heap_mb:.1f} MB, "
            f"dashboard RSS {samples[-1].dashboard_rss_mb:.0f} MB"
        )
        if at >= minutes * 60 - 1:
            break
        time.sleep(max(0.0, began + len(samples) * SAMPLE_EVERY_S - time.monotonic()))
    for page, _ in watched:
        page.context.close()
    return samples


# ================================================================================ 5. profile
#: What a served endpoint page costs its server, by function (file suffix, function name).
PROFILED = (
    ("the page build (`app._endpoint`), imports excluded", "workbench/ui/app.py", "_endpoint"),
    ("  its view (`EndpointView.__init__`)", "workbench/ui/views/endpoint.py", "__init__"),
    ("    four Bokeh figures (`VersionCharts.__init__`)", "workbench/ui/views/charts.py", "__init__"),
    ("    the revision strip figure", "workbench/ui/views/charts.py", "revision_strip"),
    ("    sources and lines for the points (`_on_points`)", "workbench/ui/views/endpoint.py", "_on_points"),
    (
        "    versions for the deploy form (`versions_of`)",
        "workbench/ui/models/endpoint.py",
        "versions_of",
    ),
    ("the document serialized for the browser (`Document.to_json`)", "bokeh/document/document.py", "to_json"),
    ("applying one feed update to a page (`session._apply`)", "workbench/ui/session.py", "_apply"),
    (
        "  of which re-drawing the revision markers (`VersionCharts.mark`)",
        "workbench/ui/views/charts.py",
        "mark",
    ),
    (
        "building one websocket message (`bokeh.protocol.Protocol.create`)",
        "bokeh/protocol/__init__.py",
        "create",
    ),
)


@dataclass(frozen=True)
class Profiled:
    what: str
    calls: int
    total_s: float

    @property
    def per_call_ms(self) -> float:
        return 1000 * self.total_s / self.calls if self.calls else float("nan")


def _profile_rows(path: Path) -> list[Profiled]:
    stats: dict[Any, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    rows = []
    for what, suffix, name in PROFILED:
        found = [(key, value) for key, value in stats.items() if key[0].endswith(suffix) and key[2] == name]
        calls = sum(value[1] for _, value in found)
        total = sum(value[3] for _, value in found)
        for key, _ in found:  # time spent importing modules on the first call is not the page's
            for callee, value in stats.items():
                if callee[2] == "_find_and_load" and key in value[4]:
                    total -= value[4][key][3]
        rows.append(Profiled(what, calls, total))
    return rows


def profile(stack_: Stack, browser: Browser, pages: int) -> list[Profiled]:
    """``pages`` endpoint pages, then a rollback of ``ROLLBACK`` with its page open, on a second dashboard
    server under cProfile."""
    path = stack_.workdir / "dashboard.prof"
    server = DashboardServer(
        stack_.plane.settings.home, stack_.api_url, stack_.workdir / "profiled.log", free_port(), profile=path
    )
    try:
        context = signed_in_context(browser, server.url, stack_.token)
        for i in range(pages):
            page = open_page(context, f"{server.url}/endpoint?name={stack_.endpoints[1 + i % 9]}")
            page.wait_for_timeout(3000)  # a few live updates applied
            page.close()
        page = context.new_page()
        frames = FrameLog(context, page)
        navigate(page, f"{server.url}/endpoint?name={ROLLBACK}")
        try:  # its charts mark the revisions of the repeated trials, just made
            rollback_once(stack_, page, frames, ROLLBACK, PROFILED_ROLLBACK_S * 1000)
        except NotSeenError as exc:
            log(f"  profiled rollback: {exc}")
        context.close()
    finally:
        server.stop()
    return _profile_rows(path)


# ======================================================================================= run
@dataclass
class Result:
    setup: dict[str, Any]
    loads: list[PageLoad] = field(default_factory=list)
    requests: list[Trial] = field(default_factory=list)
    rollbacks: list[Trial] = field(default_factory=list)
    repeated: list[Trial] = field(default_factory=list)
    windows: list[SessionWindow] = field(default_factory=list)
    samples: list[MemorySample] = field(default_factory=list)
    profile: list[Profiled] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)


def code_version() -> str:
    """The workbench code measured: its commit, and whether its files differ from it."""
    import workbench

    where = Path(workbench.__file__).resolve().parent
    git = ["git", "-C", str(where)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return f"workbench from {where} (no git checkout)"
    dirty = subprocess.run([*git, "status", "--porcelain", "."], capture_output=True, text=True).stdout
    return f"commit {head.stdout.strip()}" + (" with uncommitted changes to workbench/" if dirty else "")


def run(args: argparse.Namespace) -> Result:
    setup = Setup(endpoints=args.endpoints, rate=args.rate)
    began, load_start, code = time.monotonic(), os.getloadavg()[0], code_version()
    with stack(setup, log=log) as stack_, sync_playwright() as playwright:
        browser = launch(playwright)
        result = Result(
            setup={
                **asdict(setup),
                "history_points": stack_.history_points,
                "setup_s": stack_.setup_s,
                "dashboard_answered_s": stack_.dashboard.answered_s,
            }
        )
        log("1. page loads")
        result.loads = page_loads(stack_, browser, args.loads)
        stopped = ""
        if args.loads_only:
            browser.close()
            tallies = stack_.load.stop()
            feed_log = stack_.dashboard.log.read_text()
            return _finish(result, args, began, load_start, code, tallies, feed_log, stopped)
        context = signed_in_context(browser, stack_.dashboard.url, stack_.token)
        log("2. request → overview, rollback → endpoint page")
        result.requests = request_to_overview(stack_, context, args.trials)
        result.rollbacks = rollbacks_rotating(stack_, context, args.trials)
        log("   rollbacks repeated on one endpoint's page")
        result.repeated, stopped = rollbacks_repeated(stack_, context, args.repeated, REPEATED_TIMEOUT_S)
        context.close()
        if args.profile_pages:  # while the repeated rollbacks' revisions are in the endpoint page's window
            log(
                "5. profile: a second dashboard server, under cProfile, serving endpoint pages and a rollback"
            )
            result.profile = profile(stack_, browser, args.profile_pages)
        log("3. control-plane requests with 1 and 20 pages open")
        result.windows = sessions(stack_, browser, (1, 20, 1), args.window)
        log(f"4. memory over {args.minutes:g} minutes")
        result.samples = memory(stack_, browser, args.minutes)
        browser.close()
        feed_log = stack_.dashboard.log.read_text()
        tallies = stack_.load.stop()
    return _finish(result, args, began, load_start, code, tallies, feed_log, stopped)


def _finish(
    result: Result,
    args: argparse.Namespace,
    began: float,
    load_start: float,
    code: str,
    tallies: dict[str, Any],
    feed_log: str,
    stopped: str,
) -> Result:
    result.notes = {
        "date": time.strftime("%Y-%m-%d"),
        "code": code,
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "run_s": time.monotonic() - began,
        "sent": sum(t["sent"] for t in tallies.values()),
        "failed": sum(t["failed"] for t in tallies.values()),
        "feed_warnings": len(re.findall(r"WARNING workbench\.ui", feed_log)),
        "feed_errors": len(re.findall(r"ERROR workbench\.ui", feed_log)),
        "command": " ".join(["benchmarks/dashboards.py", *sys.argv[1:]]),
        "repeated_stopped": stopped,
        "repeated_timeout_s": REPEATED_TIMEOUT_S,
    }
    return result


def load_result(path: Path) -> Result:
    raw = json.loads(path.read_text())
    return Result(
        setup=raw["setup"],
        loads=[PageLoad(**x) for x in raw["loads"]],
        requests=[Trial(**x) for x in raw["requests"]],
        rollbacks=[Trial(**x) for x in raw["rollbacks"]],
        repeated=[Trial(**x) for x in raw["repeated"]],
        windows=[SessionWindow(**x) for x in raw["windows"]],
        samples=[MemorySample(**x) for x in raw["samples"]],
        profile=[Profiled(**x) for x in raw["profile"]],
        notes=raw["notes"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the memory part")
    parser.add_argument("--loads", type=int, default=10, help="page loads per cache state")
    parser.add_argument(
        "--loads-only", action="store_true", help="only the page loads (a quick check; not for --write-docs)"
    )
    parser.add_argument("--trials", type=int, default=25, help="requests and rollbacks timed")
    parser.add_argument("--repeated", type=int, default=10, help="rollbacks repeated on one endpoint's page")
    parser.add_argument("--window", type=float, default=60.0, help="seconds per control-plane count")
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--rate", type=float, default=4.0, help="requests/s per loaded endpoint")
    parser.add_argument("--profile-pages", type=int, default=5, help="endpoint pages profiled (0: none)")
    parser.add_argument("--json", type=Path, help="also save the raw results here")
    parser.add_argument("--render", type=Path, help="no run: the section from a saved --json")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    from _dashboard_report import markdown

    if args.loads_only and args.write_docs:
        parser.error("--loads-only measures one part: it cannot replace the whole section in the docs")
    result = load_result(args.render) if args.render else run(args)
    if args.json and not args.render:
        args.json.write_text(json.dumps(asdict(result), indent=1))
    if args.loads_only:
        for cache in ("warm", "cold"):
            loads = [load for load in result.loads if load.cache == cache]
            print(
                f"{cache}: first chart p50 {statistics.median(x.chart_ms for x in loads):.0f} ms, "
                f"max {max(x.chart_ms for x in loads):.0f} ms; "
                f"TTFB p50 {statistics.median(x.ttfb_ms for x in loads):.0f}, "
                f"DOMContentLoaded {statistics.median(x.dcl_ms for x in loads):.0f}, "
                f"document {statistics.median(x.doc_ms for x in loads):.0f} ms ({len(loads)} loads)"
            )
        return
    section = markdown(result, FIRST_CHART_S, LIVE_P95_S, GROWTH_PCT)
    print(section)
    if args.write_docs:
        replace_section(SECTION, section)
        log("updated docs/benchmarks.md")


if __name__ == "__main__":
    main()
