"""Progressive-delivery benchmark: breach-to-stable time of automatic rollbacks, and requests lost in switches.

    .venv/bin/python benchmarks/rollouts.py               # ~5 minutes; prints tables
    .venv/bin/python benchmarks/rollouts.py --write-docs  # also updates docs/benchmarks.md
    .venv/bin/python benchmarks/rollouts.py --render --write-docs  # the section again from --json, no run

One run, on real processes (control plane in this process, router and replica processes, the load in a
separate process):

1. Automatic rollback. The candidate (``benchmarks/_models.py: TriggerNet``) answers correctly until a
   trigger file exists, then raises on every real batch. Under a steady paced load, the benchmark
   starts a rollout (canary at 10 %, or blue-green: warm, gated, switched to 100 %), creates the trigger
   file a few seconds in (the breach) and lets the controller's loop run by itself. Per run: detection
   (the rollback's route change committed, from the audit log), stable (the last response not from the
   stable version), recorded (the rollout's ROLLED_BACK event) and the requests that failed meanwhile,
   all measured from the breach.
2. Switches under closed-loop load (``--switch-rate``), every non-200 and transport error counted: a
   canary 10 → 50 % then promoted; a blue-green switch then an immediate manual rollback
   (``ControlPlane.rollback``); a blue-green promoted after a short keep-warm window (the old version's
   replica retired under load).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
ACTOR = "bench"
MODEL = "churn"
TICK_S = 1.0
BASELINE_S = 3.0  # load on the stable version alone before each scenario (blue-green's baseline)
PRE_BREACH_S = 4.0  # the candidate serves correctly this long before the breach
POST_S = 2.0  # load kept on after a rollout ends, to see that nothing else fails
ROLLOUT_TIMEOUT_S = 90.0
SECTION = "## Progressive delivery (issue 4)"
FIRST_TICK = "the rollout's first controller tick (reads the endpoint's prediction log)"
FIRST_READ = "of which: reading the prediction log"
WAITED = "rollback call: waiting for a running tick of the rollout to end"


def _mono_offset() -> float:
    """``time.time() - time.monotonic()``, to place wall-clock event times on the monotonic clock."""
    best: tuple[float, float] | None = None
    for _ in range(5):
        before = time.monotonic()
        wall = time.time()
        after = time.monotonic()
        if best is None or after - before < best[0]:
            best = (after - before, wall - (before + after) / 2)
    assert best is not None
    return best[1]


# ================================================================== the load (separate process)
def load_worker(config_path: Path) -> None:
    """Paced concurrent POSTs until a line (or EOF) on stdin; then write every response to ``out``.

    Runs in its own process so that the load's Python work does not compete for the control plane's
    GIL (in production they are on different machines). Per response: monotonic send and completion
    times, status (-1 for a transport error) and ``x-workbench-model-version`` (-1 if absent).
    """
    config = json.loads(config_path.read_text())
    url: str = config["url"]
    bodies = [body.encode() for body in config["bodies"]]
    threads: int = config["threads"]
    rate: float = config["rate"]
    stop = threading.Event()
    rows: list[list[tuple[float, float, int, int]]] = [[] for _ in range(threads)]
    details: list[dict[str, Any]] = []
    first = threading.Event()

    def run(offset: int) -> None:
        period = threads / rate if rate > 0 else 0.0
        next_at = time.monotonic() + offset * period / threads
        sent_count = offset
        out = rows[offset]
        with httpx.Client(timeout=10.0) as client:
            while not stop.is_set():
                if period:
                    now = time.monotonic()
                    if next_at > now:
                        time.sleep(next_at - now)
                    next_at = max(next_at + period, time.monotonic() - period)  # no catch-up bursts
                body = bodies[sent_count % len(bodies)]
                sent_count += threads
                sent = time.monotonic()
                version = -1
                try:
                    response = client.post(url, content=body, headers={"content-type": "application/json"})
                    status = response.status_code
                    header = response.headers.get("x-workbench-model-version")
                    version = int(header) if header and header.isdigit() else -1
                    if status != 200 and len(details) < 500:
                        details.append(
                            {"t": time.monotonic(), "status": status, "detail": response.text[:300]}
                        )
                except httpx.HTTPError as exc:
                    status = -1
                    if len(details) < 500:
                        details.append(
                            {"t": time.monotonic(), "status": -1, "detail": f"{type(exc).__name__}: {exc}"}
                        )
                out.append((sent, time.monotonic(), status, version))
                first.set()

    workers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    first.wait(30)
    print("ready", flush=True)
    sys.stdin.readline()  # "stop", or EOF when the parent is gone
    stop.set()
    for worker in workers:
        worker.join(timeout=15)
    merged = sorted(row for part in rows for row in part)
    array = np.asarray(merged, dtype=np.float64).reshape(-1, 4)
    np.save(config["out"], array)
    Path(config["out"] + ".errors.json").write_text(json.dumps(details))


@dataclass
class Responses:
    sent: np.ndarray[Any, np.dtype[np.float64]]
    done: np.ndarray[Any, np.dtype[np.float64]]
    status: np.ndarray[Any, np.dtype[np.int64]]
    version: np.ndarray[Any, np.dtype[np.int64]]
    details: list[dict[str, Any]]

    @property
    def failed(self) -> np.ndarray[Any, np.dtype[np.bool_]]:
        failed: np.ndarray[Any, np.dtype[np.bool_]] = self.status != 200
        return failed

    def rate(self) -> float:
        span = float(self.done[-1] - self.done[0]) if self.done.size > 1 else 0.0
        return self.done.size / span if span > 0 else 0.0


class Load:
    """The load-generator process: ``with Load(...) as load: ...; responses = load.stop()``."""

    def __init__(self, url: str, bodies: list[bytes], workdir: Path, *, rate: float, threads: int) -> None:
        self.url = url
        self.workdir = workdir
        self.rate = rate
        self.threads = threads
        self.bodies = bodies
        self._process: subprocess.Popen[bytes] | None = None
        self._out = str(workdir / f"load-{time.monotonic_ns()}.npy")

    def __enter__(self) -> Load:
        config = self.workdir / f"{Path(self._out).stem}.json"
        config.write_text(
            json.dumps(
                {
                    "url": self.url,
                    "bodies": [b.decode() for b in self.bodies],
                    "threads": self.threads,
                    "rate": self.rate,
                    "out": self._out,
                }
            )
        )
        log = (self.workdir / "load.log").open("ab")
        try:
            self._process = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--load-worker", str(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        finally:
            log.close()
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], 60)
        line = self._process.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            self._kill()
            raise RuntimeError(f"the load generator did not start; see {self.workdir / 'load.log'}")
        return self

    def stop(self) -> Responses:
        process = self._process
        assert process is not None
        assert process.stdin is not None
        process.stdin.write(b"stop\n")
        process.stdin.close()
        process.wait(timeout=60)
        self._process = None
        array = np.load(self._out)
        details = json.loads(Path(self._out + ".errors.json").read_text())
        return Responses(
            sent=array[:, 0],
            done=array[:, 1],
            status=array[:, 2].astype(np.int64),
            version=array[:, 3].astype(np.int64),
            details=details,
        )

    def _kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None

    def __exit__(self, *_: object) -> None:
        self._kill()  # only if stop() was not reached (an error)


# ====================================================================== the world
@dataclass(frozen=True)
class Tick:
    """One controller tick of a rollout, as seen from outside (the controller itself is unchanged)."""

    rollout: str
    start: float
    end: float
    decision: str | None
    read_s: float = 0.0  # of which: reading the prediction log (``RolloutTelemetry.refresh``)
    read_mb: float = 0.0  # bytes of log those reads consumed, MB
    records: int = 0  # records those reads parsed (every version, the tail's margin included)
    log_mb: float = float("nan")  # the endpoint's whole prediction log as the tick began (first ticks only)


def _dir_mb(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.glob("*.jsonl")) / 1e6 if directory.is_dir() else 0.0


def record_ticks(plane: Any) -> list[Tick]:
    """Wrap the controller's ``advance`` (the loop calls ``self.advance``) to time every tick, and the
    telemetry's ``refresh`` (class-wide, for this process) and the tail's ``seek_time`` to see what each
    tick read from the prediction log: seconds, records parsed, and bytes from where the read began (a
    segment's first read begins where ``seek_time`` put it) to where it stopped."""
    import workbench.telemetry.tail as tail_module
    from workbench.rollouts.telemetry import RolloutTelemetry

    ticks: list[Tick] = []
    controller = plane.rollouts
    original = controller.advance
    original_refresh = RolloutTelemetry.refresh
    original_seek = tail_module.seek_time
    seeks: dict[str, int] = {}  # segment path -> where this refresh's first read of it began
    reading = threading.local()  # [seconds, bytes, records] of the tick running in this thread

    def seek_time(handle: Any, size: int, since: float) -> int:
        offset = original_seek(handle, size, since)
        seeks[str(handle.name)] = offset
        return offset

    def refresh(self: Any) -> int:
        offsets = self._tail._offsets
        before = dict(offsets)
        seeks.clear()  # another rollout's tail may have sought the same segment; this one may skip it
        began = time.monotonic()
        count = original_refresh(self)
        seconds = time.monotonic() - began
        consumed = sum(
            end - (before[segment] if segment in before else seeks.get(str(segment), end))
            for segment, end in offsets.items()
        )
        totals = getattr(reading, "totals", None)
        if totals is not None:
            totals[0] += seconds
            totals[1] += consumed
            totals[2] += count
        return int(count)

    def advance(rollout_id: str, *, now: float | None = None) -> Any:
        log_mb = float("nan")
        if not any(t.rollout == rollout_id for t in ticks):  # the first: it builds the telemetry
            endpoint = controller.get(rollout_id).endpoint
            log_mb = _dir_mb(plane.settings.home / "predictions" / endpoint)
        reading.totals = totals = [0.0, 0, 0]
        start = time.monotonic()
        try:
            record = original(rollout_id, now=now)
        finally:
            reading.totals = None
        end = time.monotonic()
        latest = controller.analysis(rollout_id) or {}
        ticks.append(
            Tick(
                rollout_id,
                start,
                end,
                latest.get("decision"),
                read_s=float(totals[0]),
                read_mb=totals[1] / 1e6,
                records=int(totals[2]),
                log_mb=log_mb,
            )
        )
        return record

    tail_module.seek_time = seek_time  # poll() looks the name up in its module at each call
    RolloutTelemetry.refresh = refresh  # type: ignore[method-assign]
    controller.advance = advance
    return ticks


@dataclass
class World:
    plane: Any  # workbench.control_plane.ControlPlane (imported lazily: the load worker needs none of it)
    workdir: Path
    trigger: Path
    bodies: list[bytes]
    versions: dict[str, int]
    offset: float
    rate: float
    threads: int
    ticks: list[Tick] = field(default_factory=list)

    @property
    def router(self) -> str:
        return str(self.plane.serving.status()["router_url"])

    def url(self, endpoint: str) -> str:
        return f"{self.router}/v2/models/{endpoint}/infer"

    def mono(self, at: datetime) -> float:
        return at.timestamp() - self.offset

    def load(self, endpoint: str) -> Load:
        return Load(self.url(endpoint), self.bodies, self.workdir, rate=self.rate, threads=self.threads)

    def log_mb(self, endpoint: str) -> float:
        """The endpoint's prediction log on disk (every replica's segments), in MB."""
        return _dir_mb(self.plane.settings.home / "predictions" / endpoint)

    def ticks_of(self, rollout_id: str) -> list[Tick]:
        return [t for t in self.ticks if t.rollout == rollout_id]

    def first_tick_s(self, rollout_id: str) -> float:
        """The rollout's first tick: it builds the telemetry by reading the endpoint's prediction log."""
        ticks = self.ticks_of(rollout_id)
        return ticks[0].end - ticks[0].start if ticks else float("nan")

    def first_read(self, rollout_id: str) -> dict[str, float]:
        """What the rollout's first tick read from the log: seconds, MB, records, and the log's size."""
        ticks = self.ticks_of(rollout_id)
        if not ticks:
            return {"read_s": NAN, "read_mb": NAN, "records": NAN, "log_mb": NAN}
        first = ticks[0]
        return {
            "read_s": first.read_s,
            "read_mb": first.read_mb,
            "records": first.records,
            "log_mb": first.log_mb,
        }


def oip_bodies(frame: Any, features: tuple[str, ...], n: int) -> list[bytes]:
    import orjson

    bodies = []
    for i in range(n):
        row = frame.iloc[[i]]
        inputs = [
            {
                "name": name,
                "shape": [1],
                "datatype": "INT64" if row[name].dtype.kind == "i" else "FP64",
                "data": row[name].tolist(),
            }
            for name in features
        ]
        bodies.append(orjson.dumps({"inputs": inputs}))
    return bodies


@contextlib.contextmanager
def world(rate: float, threads: int) -> Iterator[World]:
    # Replicas unpickle TriggerNet as ``_models.TriggerNet``: they inherit this environment.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(BENCH), str(ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    sys.path.insert(0, str(BENCH))
    sys.path.insert(0, str(ROOT))
    from _models import TriggerNet

    from workbench.control_plane import ControlPlane
    from workbench.demo.dataset import FEATURES, generate_churn, split_frame
    from workbench.demo.training import train_version
    from workbench.registry.packaging import save_model
    from workbench.registry.types import PathSource, ReferenceSpec, RegistrationRequest
    from workbench.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="wb-bench-rollouts-"))
    plane: Any = None
    try:
        settings = Settings.for_home(
            workdir / "home", allowed_roots=(workdir,), api_port=0, router_port=0, serving_backend="local"
        )
        began = time.monotonic()
        plane = ControlPlane(settings)
        plane.start_serving()
        print(f"control plane and router up in {time.monotonic() - began:.1f}s", flush=True)
        data = generate_churn(4000, seed=3)
        train, holdout = split_frame(data, holdout_fraction=0.25, seed=3)
        example = holdout[list(FEATURES)].head(2)
        reference = workdir / "reference.parquet"
        holdout.to_parquet(reference, index=False)
        trigger = workdir / "breach"
        trained = {n: train_version(n, train, holdout, seed=3) for n in (1, 2)}
        modules: dict[str, Any] = {
            "v1": trained[1].module,
            "v2": trained[2].module,
            "trigger": TriggerNet(trained[2].module, str(trigger)),
        }
        versions: dict[str, int] = {}
        for label, module in modules.items():
            path = workdir / "models" / label
            save_model(module, path, input_example=example)
            info = plane.register(
                MODEL,
                PathSource(path=str(path)),
                RegistrationRequest(
                    reference=ReferenceSpec(path=str(reference)), reason=f"benchmark {label}"
                ),
                actor=ACTOR,
            )
            versions[label] = info.version
        print(f"models registered: {versions}", flush=True)
        ticks = record_ticks(plane)
        plane.rollouts.start_loop(every=TICK_S)
        yield World(
            plane=plane,
            workdir=workdir,
            trigger=trigger,
            bodies=oip_bodies(holdout, FEATURES, 64),
            versions=versions,
            offset=_mono_offset(),
            rate=rate,
            threads=threads,
            ticks=ticks,
        )
    finally:
        if plane is not None:
            plane.close()  # stops the loop, the router and every replica
        shutil.rmtree(workdir, ignore_errors=True)


def analysis_spec() -> Any:
    from workbench.specs.analysis import AnalysisSpec, MetricCheck

    return AnalysisSpec(
        checks=(
            MetricCheck(name="errors", kind="error_rate", threshold=0.02),
            MetricCheck(name="latency_p95", kind="latency", threshold=0.1),
        ),
        min_samples=100,
    )


def rollout_spec(endpoint: str, candidate: int, strategy: str, **options: Any) -> Any:
    from workbench.specs.rollout import BlueGreenOptions, CanaryStep, RolloutSpec, Strategy

    steps = options.pop("steps", (10.0,))
    min_step_s = options.pop("min_step_s", 600.0)
    return RolloutSpec(
        endpoint=endpoint,
        candidate=f"models:/{MODEL}/{candidate}",
        strategy=Strategy(strategy),
        steps=tuple(CanaryStep(weight=w, min_duration_s=min_step_s) for w in steps),
        blue_green=BlueGreenOptions(
            keep_warm_s=options.pop("keep_warm_s", 600.0), gate_requests=8, baseline_window_s=60.0
        ),
        analysis=analysis_spec(),
        tick_s=TICK_S,
        step_timeout_s=900.0,
    )


def wait_terminal(w: World, rollout_id: str, timeout: float = ROLLOUT_TIMEOUT_S) -> Any:
    from workbench.rollouts.phases import Phase

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = w.plane.rollouts.get(rollout_id)
        if record.phase.is_terminal or record.phase in (Phase.INCONCLUSIVE, Phase.ERROR):
            return record
        time.sleep(0.05)
    return w.plane.rollouts.get(rollout_id)


def audit_times(w: World, endpoint: str, action: str, reason_prefix: str = "") -> list[float]:
    events = w.plane.audit.query(target=f"endpoint:{endpoint}", action=action, limit=1000, newest_first=False)
    return [w.mono(e.at) for e in events if (e.reason or "").startswith(reason_prefix)]


def events_of(w: World, rollout_id: str) -> list[Any]:
    return list(w.plane.rollouts.events(rollout_id))


# ================================================================ 1. breach → stable
@dataclass
class BreachRun:
    strategy: str
    ok: bool
    note: str
    start_s: float  # the start() call: candidate start-up (+ gate and switch for blue-green)
    candidate_ok_before: int  # the candidate's answers between its first traffic and the breach
    detect_s: float  # the rollback's route change committed (audit), from the breach
    stable_s: float  # after this, every response came from the stable version
    recorded_s: float  # the ROLLED_BACK event, from the breach
    failed: int  # responses that failed between the breach and stable
    first_failure_s: float
    samples_at_decision: list[int]  # [baseline, candidate] requests the analysis saw when it failed
    reason: str
    next_tick_s: float = float("nan")  # the first tick that began after the breach, from the breach
    ticks_to_decide: int = 0  # ticks begun after the breach, the deciding one included
    deciding_tick_s: float = float("nan")  # the deciding tick, from its start to the route change committed
    first_tick_s: float = float("nan")  # the rollout's first tick (reads the log history)
    first_read: dict[str, float] = field(default_factory=dict)  # what it read: Tick.read_s, read_mb, ...
    log_mb: float = float("nan")  # the endpoint's prediction log when the rollout started
    load_gap_s: float = float("nan")  # the longest pause between two responses, breach → stable


def breach_scenario(w: World, strategy: str, repeats: int) -> tuple[list[BreachRun], float]:
    from workbench.control_plane import DeployRequest
    from workbench.rollouts.phases import Phase

    endpoint = f"breach-{strategy.replace('_', '-')}"
    stable, candidate = w.versions["v1"], w.versions["trigger"]
    w.plane.deploy(endpoint, DeployRequest(model=f"models:/{MODEL}/{stable}"), actor=ACTOR)
    marks: list[dict[str, Any]] = []
    jitter = random.Random(7)
    with w.load(endpoint) as load:
        time.sleep(BASELINE_S)
        for rep in range(repeats):
            w.trigger.unlink(missing_ok=True)
            log_mb = w.log_mb(endpoint)
            began = time.monotonic()
            record = w.plane.rollouts.start(rollout_spec(endpoint, candidate, strategy), actor=ACTOR)
            started = time.monotonic()
            time.sleep(PRE_BREACH_S + jitter.uniform(0.0, TICK_S))  # any phase of the controller's tick
            phase = w.plane.rollouts.get(record.id).phase
            mark: dict[str, Any] = {
                "id": record.id,
                "began": began,
                "started": started,
                "note": "",
                "log_mb": log_mb,
            }
            if phase != Phase.PROGRESSING:
                why = w.plane.rollouts.events(record.id)[-1].message
                mark["note"] = f"ended before the breach ({phase.value}): {why}"
            else:
                w.trigger.touch()
                mark["breach"] = time.monotonic()
            final = wait_terminal(w, record.id)
            if final.phase.is_active:
                w.plane.rollouts.abort(record.id, actor=ACTOR, reason="benchmark: not detected in time")
                mark["note"] = f"not rolled back within {ROLLOUT_TIMEOUT_S:.0f}s ({final.phase.value})"
            time.sleep(POST_S)
            mark["end"] = time.monotonic()
            marks.append(mark)
            print(f"  {strategy} run {rep + 1}: {final.phase.value} {mark['note']}", flush=True)
        responses = load.stop()
    w.trigger.unlink(missing_ok=True)
    runs = [_breach_run(w, endpoint, strategy, mark, responses, stable, candidate) for mark in marks]
    w.plane.delete_endpoint(endpoint, actor=ACTOR)
    return runs, responses.rate()


def _breach_run(
    w: World,
    endpoint: str,
    strategy: str,
    mark: dict[str, Any],
    r: Responses,
    stable: int,
    candidate: int,
) -> BreachRun:
    nan = float("nan")
    start_s = mark["started"] - mark["began"]
    if "breach" not in mark:
        return BreachRun(strategy, False, mark["note"], start_s, 0, nan, nan, nan, 0, nan, [], "")
    breach = mark["breach"]
    events = events_of(w, mark["id"])
    rolled = next((e for e in events if e.phase.value == "rolled_back"), None)
    route = audit_times(w, endpoint, "endpoint.route", f"rollout {mark['id']}: roll back")
    window = (r.done >= breach) & (r.done <= mark["end"])
    bad = window & ((r.status != 200) | (r.version != stable))
    stable_at = float(r.done[bad].max()) if bad.any() else breach
    failed_mask = window & r.failed & (r.done <= stable_at)
    first_failure = float(r.done[window & r.failed].min()) - breach if (window & r.failed).any() else nan
    before = (r.done >= mark["began"]) & (r.done < breach) & (r.version == candidate) & (r.status == 200)
    samples: list[int] = []
    reason = ""
    if rolled is not None:
        reason = rolled.message
        metrics = (rolled.evidence or {}).get("metrics") or []
        errors = next((m for m in metrics if m["name"] == "errors"), None)
        samples = list(errors["samples"]) if errors else []
    note = mark["note"]
    if rolled is None:
        note = note or "no ROLLED_BACK event"
    after = [t for t in w.ticks_of(mark["id"]) if t.start >= breach]
    until = max(stable_at, route[0] if route else stable_at) + 0.1
    seen = np.sort(r.done[(r.done >= breach) & (r.done <= until)])
    gap = float(np.diff(seen).max()) if seen.size > 1 else nan
    deciding = next((i for i, t in enumerate(after) if t.decision == "rollback"), None)
    return BreachRun(
        strategy=strategy,
        ok=rolled is not None and not mark["note"],
        note=note,
        start_s=start_s,
        candidate_ok_before=int(before.sum()),
        detect_s=(route[0] - breach) if route else nan,
        stable_s=stable_at - breach,
        recorded_s=(w.mono(rolled.at) - breach) if rolled is not None else nan,
        failed=int(failed_mask.sum()),
        first_failure_s=first_failure,
        samples_at_decision=samples,
        reason=reason,
        next_tick_s=after[0].start - breach if after else nan,
        ticks_to_decide=deciding + 1 if deciding is not None else 0,
        deciding_tick_s=(route[0] - after[deciding].start) if deciding is not None and route else nan,
        first_tick_s=w.first_tick_s(mark["id"]),
        first_read=w.first_read(mark["id"]),
        log_mb=mark["log_mb"],
        load_gap_s=gap,
    )


# ==================================================================== 2. switches
@dataclass
class SwitchRun:
    name: str
    requests: int
    failed: int
    rate: float
    timings: dict[str, float]
    failures: list[dict[str, Any]]
    note: str = ""
    log_mb: float = float("nan")  # the endpoint's prediction log when the rollout started
    first_read: dict[str, float] = field(default_factory=dict)  # what the first tick read (World.first_read)


def _failures(w: World, r: Responses, marks: dict[str, float]) -> list[dict[str, Any]]:
    """Each failure with its time relative to the scenario's marks, and what the client saw."""
    out = []
    for item in r.details:
        nearest = min(marks.items(), key=lambda kv: abs(item["t"] - kv[1])) if marks else ("", 0.0)
        out.append(
            {
                "status": item["status"],
                "detail": item["detail"],
                "near": f"{item['t'] - nearest[1]:+.3f}s from {nearest[0]}",
            }
        )
    return out


def switch_canary(w: World) -> SwitchRun:
    from workbench.control_plane import DeployRequest

    endpoint = "switch-canary"
    stable, candidate = w.versions["v1"], w.versions["v2"]
    w.plane.deploy(endpoint, DeployRequest(model=f"models:/{MODEL}/{stable}"), actor=ACTOR)
    spec = rollout_spec(endpoint, candidate, "canary", steps=(10.0, 50.0), min_step_s=3.0)
    with w.load(endpoint) as load:
        time.sleep(BASELINE_S)
        log_mb = w.log_mb(endpoint)
        began = time.monotonic()
        record = w.plane.rollouts.start(spec, actor=ACTOR)
        start_s = time.monotonic() - began
        final = wait_terminal(w, record.id, timeout=180)
        time.sleep(POST_S)
        responses = load.stop()
    events = events_of(w, record.id)
    step1 = next((w.mono(e.at) for e in events if e.step_index == 1), float("nan"))
    promoting = next((w.mono(e.at) for e in events if e.phase.value == "promoting"), float("nan"))
    succeeded = next((w.mono(e.at) for e in events if e.phase.value == "succeeded"), float("nan"))
    retired = [t for t in audit_times(w, endpoint, "replica.stop") if t >= began]
    after = responses.done > succeeded
    timings = {
        "start (candidate start-up + 10%)": start_s,
        "at 10% for": step1 - (began + start_s),
        "at 50% for": promoting - step1,
        "promote (PROMOTING → SUCCEEDED, old replica retired)": succeeded - promoting,
    }
    if retired:
        timings["old replica retired, after PROMOTING"] = retired[-1] - promoting
    timings[FIRST_TICK] = w.first_tick_s(record.id)
    timings[FIRST_READ] = w.first_read(record.id)["read_s"]
    note = f"{final.phase.value}"
    served_after = set(responses.version[after].tolist())
    if served_after - {candidate}:
        note += f"; after promotion answered by versions {sorted(served_after)}"
    w.plane.delete_endpoint(endpoint, actor=ACTOR)
    return SwitchRun(
        "canary 10% → 50% → promoted",
        int(responses.done.size),
        int(responses.failed.sum()),
        responses.rate(),
        timings,
        _failures(w, responses, {"promoting": promoting, "step 1": step1, "start": began}),
        note,
        log_mb,
        w.first_read(record.id),
    )


def switch_blue_green_rollback(w: World) -> SwitchRun:
    from workbench.control_plane import DeployRequest

    endpoint = "switch-bg-rollback"
    stable, candidate = w.versions["v1"], w.versions["v2"]
    w.plane.deploy(endpoint, DeployRequest(model=f"models:/{MODEL}/{stable}"), actor=ACTOR)
    spec = rollout_spec(endpoint, candidate, "blue_green", keep_warm_s=600.0)
    with w.load(endpoint) as load:
        time.sleep(BASELINE_S)
        log_mb = w.log_mb(endpoint)
        began = time.monotonic()
        record = w.plane.rollouts.start(spec, actor=ACTOR)
        start_s = time.monotonic() - began
        time.sleep(2.0)  # the candidate serves everything for a moment, then the operator rolls back
        called = time.monotonic()
        w.plane.rollback(endpoint, actor=ACTOR, reason="benchmark: immediate manual rollback")
        rollback_s = time.monotonic() - called
        time.sleep(POST_S)
        responses = load.stop()
    timings = _blue_green_timings(w, record.id, began, start_s)
    timings["rollback call (route back + candidate retired + records)"] = rollback_s
    route = audit_times(w, endpoint, "endpoint.route", f"rollout {record.id}: roll back")
    if route:
        timings["rollback: route change committed, after the call"] = route[0] - called
    back = (responses.done >= called) & ((responses.version != stable) | responses.failed)
    if back.any():
        timings["rollback: last response not from the stable version, after the call"] = (
            float(responses.done[back].max()) - called
        )
    switched = next((w.mono(e.at) for e in events_of(w, record.id) if e.step_index == 1), float("nan"))
    timings[FIRST_TICK] = w.first_tick_s(record.id)
    timings[FIRST_READ] = w.first_read(record.id)["read_s"]
    # Commands and ticks are serialised (the controller's tick lock): a rollback called while a tick of
    # the rollout runs waits for that tick to end before it routes anything.
    ticks = w.ticks_of(record.id)
    running = next((i for i, t in enumerate(ticks) if t.start < called < t.end), None)
    timings[WAITED] = ticks[running].end - called if running is not None else 0.0
    note = ""
    if running == 0:
        note = "the call came during the rollout's first tick (reading the log) and waited for it"
    elif running is not None:
        note = "the call came during a tick of the rollout and waited for it"
    w.plane.delete_endpoint(endpoint, actor=ACTOR)
    return SwitchRun(
        "blue-green switch, then manual rollback",
        int(responses.done.size),
        int(responses.failed.sum()),
        responses.rate(),
        timings,
        _failures(w, responses, {"switch": switched, "rollback call": called}),
        note,
        log_mb,
        w.first_read(record.id),
    )


def switch_blue_green_promote(w: World, keep_warm_s: float) -> SwitchRun:
    from workbench.control_plane import DeployRequest

    endpoint = "switch-bg-promote"
    stable, candidate = w.versions["v1"], w.versions["v2"]
    w.plane.deploy(endpoint, DeployRequest(model=f"models:/{MODEL}/{stable}"), actor=ACTOR)
    spec = rollout_spec(endpoint, candidate, "blue_green", keep_warm_s=keep_warm_s)
    with w.load(endpoint) as load:
        time.sleep(BASELINE_S)
        log_mb = w.log_mb(endpoint)
        began = time.monotonic()
        record = w.plane.rollouts.start(spec, actor=ACTOR)
        start_s = time.monotonic() - began
        final = wait_terminal(w, record.id)
        time.sleep(POST_S)
        responses = load.stop()
    timings = _blue_green_timings(w, record.id, began, start_s)
    events = events_of(w, record.id)
    promoting = next((w.mono(e.at) for e in events if e.phase.value == "promoting"), float("nan"))
    succeeded = next((w.mono(e.at) for e in events if e.phase.value == "succeeded"), float("nan"))
    timings["promote (PROMOTING → SUCCEEDED, old replica retired)"] = succeeded - promoting
    retired = [t for t in audit_times(w, endpoint, "replica.stop") if t >= began]
    if retired:
        timings["old replica retired, after PROMOTING"] = retired[-1] - promoting
    timings[FIRST_TICK] = w.first_tick_s(record.id)
    timings[FIRST_READ] = w.first_read(record.id)["read_s"]
    w.plane.delete_endpoint(endpoint, actor=ACTOR)
    return SwitchRun(
        f"blue-green switch, promoted after {keep_warm_s:g}s keep-warm",
        int(responses.done.size),
        int(responses.failed.sum()),
        responses.rate(),
        timings,
        _failures(w, responses, {"start": began, "promoting": promoting}),
        final.phase.value,
        log_mb,
        w.first_read(record.id),
    )


def _blue_green_timings(w: World, rollout_id: str, began: float, start_s: float) -> dict[str, float]:
    events = events_of(w, rollout_id)
    gate = next((w.mono(e.at) for e in events if e.kind == "gate"), float("nan"))
    switched = next((w.mono(e.at) for e in events if e.step_index == 1), float("nan"))
    return {
        "start() call (candidate start-up + warm-up + gate + switch)": start_s,
        "of which: to the gate passed": gate - began,
        "of which: gate passed → switched": switched - gate,
    }


# ======================================================================= report
NAN = float("nan")


def _clean(values: list[float]) -> list[float]:
    return [float(v) for v in values if v == v]


def _stat(values: list[float], fmt: str = "{:.2f}") -> str:
    clean = _clean(values)
    if not clean:
        return "-"
    return f"{fmt.format(statistics.median(clean))} / {fmt.format(max(clean))}"


def _read(run: dict[str, Any], key: str) -> float:
    """What a run's first tick read from the log (``World.first_read``); NaN in results without it."""
    return float((run.get("first_read") or {}).get(key, NAN))


def _ok_runs(results: dict[str, Any], strategy: str) -> list[dict[str, Any]]:
    return [r for r in results["breach"].get(strategy, {}).get("runs", []) if r["ok"]]


def _median(results: dict[str, Any], strategy: str, key: str) -> float:
    clean = _clean([r[key] for r in _ok_runs(results, strategy)])
    return statistics.median(clean) if clean else NAN


def _switch_timing(results: dict[str, Any], prefix: str, key: str, how: str = "median") -> float:
    values = _clean(
        [
            r["timings"].get(key, NAN)
            for runs in results["switches"]
            for r in runs
            if r["name"].startswith(prefix)
        ]
    )
    if not values:
        return NAN
    return statistics.median(values) if how == "median" else max(values)


def to_markdown(results: dict[str, Any]) -> str:
    lines = [
        f"Controller: its loop wakes every {results['tick_s']:g} s (`start_loop(every={results['tick_s']:g})`, "
        f"the default `workbench up` uses), rollout `tick_s` {results['tick_s']:g}. Analysis: "
        "`AnalysisSpec(checks=(error_rate +0.02, latency +0.1 over the baseline's p95), min_samples=100)`, "
        f"alpha 0.05. Load: {results['threads']} Python threads with httpx in a separate process, one-row OIP "
        "requests through the router, each response timed with the monotonic clock and its "
        "`x-workbench-model-version` kept. Replicas flush the prediction log every 0.2 s.",
        "",
        f"**Automatic rollback, breach → 100 % stable** (load paced at {results['rate']:g} req/s; median / max "
        f"over {results['repeats']} runs; seconds from the breach):",
        "",
        "| strategy | load req/s | candidate answers before the breach | next tick after the breach "
        "| ticks to decide | detected (rollback's route change committed) "
        "| stable (last response not from v-stable) | recorded (ROLLED_BACK event) | failed requests |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for strategy, entry in results["breach"].items():
        runs = [r for r in entry["runs"] if r["ok"]]
        label = "canary (10 %)" if strategy == "canary" else "blue-green (after the switch)"
        lines.append(
            f"| {label} | {entry['rate']:,.0f} | {_stat([r['candidate_ok_before'] for r in runs], '{:.0f}')} | "
            f"{_stat([r['next_tick_s'] for r in runs])} | {_stat([r['ticks_to_decide'] for r in runs], '{:.0f}')} | "
            f"{_stat([r['detect_s'] for r in runs])} | {_stat([r['stable_s'] for r in runs])} | "
            f"{_stat([r['recorded_s'] for r in runs])} | {_stat([r['failed'] for r in runs], '{:.0f}')} |"
        )
    notes = [
        f"{s} run {i + 1}: {r['note']}"
        for s, e in results["breach"].items()
        for i, r in enumerate(e["runs"])
        if r["note"]
    ]
    if notes:
        lines += ["", "Runs left out: " + "; ".join(notes) + "."]
    every = [r for s in results["breach"] for r in _ok_runs(results, s)]
    starts = {s: _stat([r["start_s"] for r in e["runs"]]) for s, e in results["breach"].items()}
    lines += [
        "",
        f"In those runs: the deciding tick took {_stat([r['deciding_tick_s'] for r in every])} s from its "
        "start to the route change committed (new log lines, analysis, database write); a rollout's first "
        f"tick took {_stat([r['first_tick_s'] for r in every])} s, of which "
        f"{_stat([_read(r, 'read_s') for r in every])} s reading "
        f"{_stat([_read(r, 'read_mb') for r in every], '{:.1f}')} MB of log "
        f"({_stat([_read(r, 'records') for r in every], '{:,.0f}')} records), with "
        f"{_stat([r['log_mb'] for r in every], '{:.0f}')} MB of prediction log on the endpoint; the longest "
        "pause between two responses from the breach to stable was "
        f"{_stat([r['load_gap_s'] for r in every], '{:.3f}')} s; "
        "`rollouts.start` took "
        f"{starts.get('canary', '-')} s for the canary (candidate replica start-up, then 10 %) and "
        f"{starts.get('blue_green', '-')} s for blue-green (start-up and warm-up, gate, switch).",
        "",
        "**Requests failed during switches** ("
        + (
            f"load paced at {results['switch_rate']:g} req/s"
            if results["switch_rate"]
            else f"closed loop: {results['threads']} threads, each sending its next request on an answer, "
            "as many requests in flight at each switch as the machine allows"
        )
        + f"; {results['switch_repeats']} runs each; every non-200 and every transport error counted):",
        "",
        "| switch | requests (all runs) | failed | req/s | notes |",
        "|---|---:|---:|---:|---|",
    ]
    for runs in results["switches"]:
        notes_of = sorted({r["note"] for r in runs if r["note"] and r["note"] != "succeeded"})
        counted = "; ".join(f"{sum(r['note'] == n for r in runs)}/{len(runs)} runs: {n}" for n in notes_of)
        lines.append(
            f"| {runs[0]['name']} | {sum(r['requests'] for r in runs):,} | {sum(r['failed'] for r in runs)} | "
            f"{statistics.median(r['rate'] for r in runs):,.0f} | {counted} |"
        )
    lines += [
        "",
        "Durations in those switches (median / max, s):",
        "",
        "| switch | what | s (MB, records where noted) |",
        "|---|---|---:|",
    ]
    for runs in results["switches"]:
        for key in runs[0]["timings"]:
            lines.append(
                f"| {runs[0]['name']} | {key} | {_stat([r['timings'].get(key, NAN) for r in runs])} |"
            )
        lines += [
            f"| {runs[0]['name']} | the first tick read, MB of log | "
            f"{_stat([_read(r, 'read_mb') for r in runs], '{:.1f}')} |",
            f"| {runs[0]['name']} | the first tick read, records | "
            f"{_stat([_read(r, 'records') for r in runs], '{:,.0f}')} |",
            f"| {runs[0]['name']} | prediction log on the endpoint at the rollout's start, MB | "
            f"{_stat([r['log_mb'] for r in runs], '{:.0f}')} |",
        ]
    failures = [(runs[0]["name"], f) for runs in results["switches"] for r in runs for f in r["failures"]]
    if failures:
        lines += ["", "Failures seen during switches:", ""]
        for name, f in failures[:20]:
            lines.append(f"- {name}: status {f['status']} ({f['near']}): `{f['detail'][:160]}`")
    return "\n".join(lines)


def print_runs(results: dict[str, Any]) -> None:
    print("\nper run (s from the breach):")
    print(
        f"  {'strategy':<11} {'start':>6} {'ok-before':>9} {'next-tick':>9} {'ticks':>5} {'detect':>7} "
        f"{'stable':>7} {'recorded':>8} {'failed':>6} {'1st-tick':>8}"
    )
    for strategy, entry in results["breach"].items():
        for r in entry["runs"]:
            print(
                f"  {strategy:<11} {r['start_s']:6.2f} {r['candidate_ok_before']:9d} {r['next_tick_s']:9.3f} "
                f"{r['ticks_to_decide']:5d} {r['detect_s']:7.3f} {r['stable_s']:7.3f} {r['recorded_s']:8.3f} "
                f"{r['failed']:6d} {r['first_tick_s']:8.3f}  {r['note'] or r['reason'][:60]}"
            )


def write_docs(results: dict[str, Any], markdown: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text()
    machine = results["machine"]
    body = [
        SECTION,
        "",
        "`make bench-rollouts` (= `.venv/bin/python benchmarks/rollouts.py --write-docs`; about 5 minutes) "
        "builds the world in one process as the serving tests do (control plane on a fresh home, real router "
        "and replica processes), trains the demo's v1 and v2 and registers a third version that answers "
        "like v2 until a trigger file exists, then raises on every real batch (`benchmarks/_models.py`). "
        "The breach is the creation of that file, "
        f"{PRE_BREACH_S:g}-{PRE_BREACH_S + TICK_S:g} s (drawn uniformly, so it falls at any phase of the "
        "controller's tick) after the canary's 10 % step began or after the blue-green switch; nothing else "
        "is touched: the controller's own loop finds the failures and rolls back. Blue-green compares the "
        "candidate with the stable version's last 60 s before the switch (`baseline_window_s=60`).",
        "",
        f"Measured {results.get('date', time.strftime('%Y-%m-%d'))} on the development machine "
        f"({machine['cpus']} cores, no GPU, "
        f"Python {machine['python']}, torch {machine['torch']}), load generator on the same machine; "
        f"whole run {results['seconds']:.0f} s.",
        "",
        markdown,
        "",
        *explain(results),
        "",
    ]
    block = "\n".join(body).rstrip() + "\n"
    if SECTION in text:  # replace this section only, up to the next "## " heading (others may follow)
        begin = text.index(SECTION)
        following = text.find("\n## ", begin + len(SECTION))
        rest = text[following + 1 :] if following >= 0 else ""
        text = text[:begin] + block + ("\n" + rest if rest else "")
    else:
        text = text.rstrip() + "\n\n" + block
    path.write_text(text)


def explain(results: dict[str, Any]) -> list[str]:
    """What the figures say, from this run's own numbers."""
    rate, tick = results["rate"], results["tick_s"]
    canary_rate = results["breach"].get("canary", {}).get("rate", rate) * 0.10
    full_rate = results["breach"].get("blue_green", {}).get("rate", rate)
    med = _median

    canary_runs = _ok_runs(results, "canary")
    early = [r for r in canary_runs if r["stable_s"] < r["detect_s"]]
    gaps = _clean([r["load_gap_s"] for r in early])

    def span(key: str) -> str:
        return _stat([r[key] for s in results["breach"] for r in _ok_runs(results, s)])

    def ticks(strategy: str) -> str:
        values = [r["ticks_to_decide"] for r in _ok_runs(results, strategy)]
        return f"{statistics.median(values):.0f} (max {max(values)})" if values else "-"

    detection = (
        "Detection is the tick plus the time the candidate needs to fail visibly, not the route change. The "
        f"first tick after the breach came {med(results, 'canary', 'next_tick_s'):.2f} s / "
        f"{med(results, 'blue_green', 'next_tick_s'):.2f} s after it (median, canary / blue-green; uniform "
        f"over a ~{tick:g} s tick), and the decision took {ticks('canary')} / {ticks('blue_green')} ticks "
        "from the breach, the deciding one included. The error-rate check fails once its confidence "
        "sequence clears +2 pp over everything the candidate answered since the rollout (canary) or the "
        "switch (blue-green) began, and a failure reaches a tick only after the replica's 0.2 s log flush: "
        f"at 10 % of ~{rate:g} req/s the canary's candidate gets ~{canary_rate:.0f} req/s, so the few "
        "failures a tick sees soon after the breach are diluted by its "
        f"~{med(results, 'canary', 'candidate_ok_before'):.0f} good answers from before it, while "
        f"blue-green's candidate has all ~{full_rate:.0f} req/s. For a candidate that fails from its first "
        f"request the floor is `min_samples`: 100 candidate requests are ~{100 / max(canary_rate, 1e-9):.1f} s "
        f"of traffic at 10 % here and ~{100 / max(full_rate, 1e-9):.1f} s at 100 %, so detection scales with "
        "min_samples / (traffic rate * candidate share), plus up to a tick."
    )
    applying = (
        f"Applying the decision is quick: the deciding tick took {span('deciding_tick_s')} s (median / max) "
        "from its start "
        "to the route change committed, the router answered from the stable version alone within "
        f"{max(0.0, *(med(results, s, 'stable_s') - med(results, s, 'detect_s') for s in results['breach'])):.2f} s "
        "of that commit (median"
        + (
            f"; in {len(early)} of {len(canary_runs)} canary runs the last candidate answer came before the "
            f"commit, the candidate getting only ~{canary_rate:.0f} req/s; the longest pause between any two "
            f"responses there was {max(gaps):.3f} s"
            if early and gaps
            else ""
        )
        + ")"
        + ", and the ROLLED_BACK record came "
        f"{med(results, 'canary', 'recorded_s') - med(results, 'canary', 'stable_s'):.2f} s later still "
        "because the controller drains and stops the candidate's replica inside the same call before "
        "recording. The failed requests are the candidate's traffic from breach to stable "
        f"({med(results, 'canary', 'failed'):.0f} for the canary, {med(results, 'blue_green', 'failed'):.0f} "
        "for blue-green: all traffic was on its candidate)."
    )
    total = sum(r["requests"] for runs in results["switches"] for r in runs)
    failed = sum(r["failed"] for runs in results["switches"] for r in runs)
    to_gate = _switch_timing(results, "blue-green", "of which: to the gate passed")
    swap = _switch_timing(results, "blue-green", "of which: gate passed → switched")
    back = _switch_timing(
        results, "blue-green switch, then", "rollback: route change committed, after the call"
    )
    if failed == 0:
        switches = (
            f"No request failed in any switch (0 of {total:,}): the router swaps its route table atomically, "
            "routes change before replicas are retired, and a retired replica drains in flight requests "
            "before it exits."
        )
    else:
        switches = f"{failed} of {total:,} requests failed during the switches; each failure is listed above."
    switches += (
        f" A blue-green `rollouts.start` is dominated by starting the candidate's replica ({to_gate:.2f} s "
        f"median to the gate passed, against {swap:.2f} s for the switch itself), and a manual rollback's "
        f"route change was committed {back:.2f} s after the call (median)."
    )
    history = _first_tick(results)
    return [detection, "", applying, "", switches, "", history]


def _first_tick(results: dict[str, Any]) -> str:
    """The rollout's first tick: what it read, how long it took, and the commands that waited for it."""
    runs = [r for s in results["breach"] for r in _ok_runs(results, s)]
    runs += [r for switches in results["switches"] for r in switches]
    first = [
        {
            "tick": r["first_tick_s"] if "first_tick_s" in r else r["timings"].get(FIRST_TICK, NAN),
            "read": _read(r, "read_s"),
            "mb": _read(r, "read_mb"),
            "records": _read(r, "records"),
            "log": _read(r, "log_mb"),
        }
        for r in runs
    ]
    first = [f for f in first if f["tick"] == f["tick"] and f["read"] == f["read"]]
    margin = results.get("read_margin_s", NAN)
    text = (
        "One cost comes with the endpoint's recent traffic rather than with the rollout: a rollout's first "
        "tick builds its telemetry from the prediction log, skipping the segments last written before the "
        "rollout's window and binary-searching the others to the first record "
        f"{margin:g} s before it (so a busy replica's active segment, which grows to 64 MiB, is not parsed "
        "whole; the window begins at the rollout's start for a canary and `baseline_window_s` earlier for "
        "blue-green)"
    )
    if not first:
        return text + "."
    total_mb, total_s = sum(f["mb"] for f in first), sum(f["read"] for f in first)
    shares = _clean([f["mb"] / f["log"] for f in first if f["log"] == f["log"] and f["log"] > 0])
    slowest = max(first, key=lambda f: f["tick"])
    text += (
        f". Over the {len(first)} rollouts here that tick took "
        f"{_stat([f['tick'] for f in first])} s (median / max), of which "
        f"{_stat([f['read'] for f in first])} s reading "
        f"{_stat([f['mb'] for f in first], '{:.1f}')} MB ("
        f"{_stat([f['records'] for f in first], '{:,.0f}')} records, "
        f"~{total_mb / total_s:.0f} MB/s on this machine under this load); the slowest read "
        f"{slowest['mb']:.1f} MB in {slowest['tick']:.1f} s, its endpoint's log being "
        f"{slowest['log']:.0f} MB as it began"
        if total_s > 0
        else f". Over the {len(first)} rollouts here that tick took {_stat([f['tick'] for f in first])} s"
    )
    if shares:
        low, mid = min(shares), statistics.median(shares)
        if low >= 0.9:
            text += (
                ". Every endpoint here had less history than that margin (each scenario's runs follow one "
                "another within a minute or two), so the seek skipped nothing: each first tick read the "
                f"whole log ({mid:.0%} median, {low:.0%} at least, of its size as the tick began; it grows "
                "meanwhile) and its cost grew run after run with it; on an endpoint with a longer history "
                "the read stops at that margin's worth of traffic"
            )
        elif mid >= 0.9:
            text += (
                f". Most endpoints here had less history than that margin: the first tick read {mid:.0%} "
                f"of the endpoint's log (median, of its size as the tick began) and {low:.0%} at least, "
                "the seek skipping the rest"
            )
        else:
            text += (
                f"; it read {mid:.0%} of the endpoint's log (median, {low:.0%} at least), the seek skipping "
                "the rest"
            )
    text += ". No tick decides anything meanwhile"
    rollbacks = [
        r
        for switches in results["switches"]
        for r in switches
        if r["name"].startswith("blue-green switch, then")
    ]
    key = "rollback: route change committed, after the call"
    waited = [r for r in rollbacks if r["timings"].get(WAITED, 0.0) > 0]
    if waited:
        others = _clean([r["timings"].get(key, NAN) for r in rollbacks if r not in waited])
        text += (
            ", and since the controller serialises a rollout's commands and ticks (an abort must not be "
            "overtaken by a tick that read the rollout before it), a command waits for a tick that is "
            f"running: {len(waited)} of {len(rollbacks)} manual rollbacks came during one and waited "
            f"{_stat([r['timings'][WAITED] for r in waited])} s (median / max) before routing, their route "
            f"change committed {_stat([r['timings'].get(key, NAN) for r in waited])} s after the call"
            + (
                f" against {statistics.median(others):.2f} s for the "
                f"{'one' if len(others) == 1 else len(others)} that did not wait"
                if others
                else ""
            )
            + "."
        )
    else:
        text += "."
    return text


def read_margin_s() -> float:
    """How far before a rollout's window its first read begins: the telemetry's segment margin (its
    ``modified_since``) plus the tail's seek margin, taken from the code rather than restated here."""
    from workbench.rollouts.telemetry import RolloutTelemetry
    from workbench.telemetry.tail import SEEK_MARGIN_S

    probe = RolloutTelemetry(Path(tempfile.gettempdir()) / "wb-bench-no-log", since=1e9, versions=())
    segments = probe._tail.modified_since
    return 1e9 - float(segments if segments is not None else 1e9) + SEEK_MARGIN_S


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    began = time.monotonic()
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
        "tick_s": TICK_S,
        "rate": args.rate,
        "threads": args.threads,
        "repeats": args.repeats,
        "switch_rate": args.switch_rate,
        "switch_repeats": args.switch_repeats,
        "breach": {},
        "switches": [],
    }
    with world(args.rate, args.threads) as w:
        for strategy in ("canary", "blue_green"):
            print(f"\n== breach → stable: {strategy}, {args.repeats} runs", flush=True)
            runs, rate = breach_scenario(w, strategy, args.repeats)
            results["breach"][strategy] = {"rate": rate, "runs": [r.__dict__ for r in runs]}
        w.rate = args.switch_rate
        print(f"\n== switches under load, {args.switch_repeats} runs each", flush=True)
        scenarios: tuple[Callable[[], SwitchRun], ...] = (
            lambda: switch_canary(w),
            lambda: switch_blue_green_rollback(w),
            lambda: switch_blue_green_promote(w, keep_warm_s=3.0),
        )
        for scenario in scenarios:
            switches = []
            for _ in range(args.switch_repeats):
                switch = scenario()
                print(
                    f"  {switch.name}: {switch.requests} requests, {switch.failed} failed {switch.note}",
                    flush=True,
                )
                switches.append(switch.__dict__)
            results["switches"].append(switches)
        results["clock_drift_ms"] = (_mono_offset() - w.offset) * 1000  # event times use one offset
        results["read_margin_s"] = read_margin_s()
    results["seconds"] = time.monotonic() - began
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs per breach scenario")
    parser.add_argument("--rate", type=float, default=500.0, help="total load, requests per second")
    parser.add_argument("--threads", type=int, default=4, help="load-generator threads")
    parser.add_argument(
        "--switch-rate",
        type=float,
        default=0.0,
        help="load during the switches; 0: as fast as the threads go",
    )
    parser.add_argument("--switch-repeats", type=int, default=3, help="runs per switch scenario")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "rollouts.json")
    parser.add_argument(
        "--render",
        action="store_true",
        help="run nothing: print (and with --write-docs, write) the section from the results in --json",
    )
    parser.add_argument("--load-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_worker is not None:
        load_worker(args.load_worker)
        return
    # A SIGTERM unwinds like Ctrl-C, so every process this run started is stopped (plane.close()).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.render:
        results = json.loads(args.json.read_text())
    else:
        results = run(args)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
    markdown = to_markdown(results)
    print_runs(results)
    print("\n" + markdown)
    if args.write_docs:
        write_docs(results, markdown)
        print(f"\nwrote {SECTION!r} in docs/benchmarks.md")


if __name__ == "__main__":
    main()
