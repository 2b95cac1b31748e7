"""Does `workbench demo` tell the same story every time? Run it N times on fresh homes, with CPU burners.

Each run is what a new user's `make demo` does: `workbench demo --no-serve` on an empty WORKBENCH_HOME (its
own free ports), which trains and registers v1-v3, serves v1 and canaries v2 (to be promoted) and the slow
v3 (to be rolled back) under generated traffic. Optionally N processes spin on the CPU beside it for the
whole run, as other work on a shared 2-core machine would. After each run the rollouts and their last
events are read from the run's state store: outcome of each canary, the gating checks that failed, the
latency check's reason (both p95s) and the run's duration.

    .venv/bin/python benchmarks/demo_runs.py --runs 20 --burners 0,2 --write-docs

The demo runs from the checkout this script is in (PYTHONPATH), so a commit exported with `git archive`
can be measured while the working tree changes: `/work/main/.venv/bin/python EXPORT/benchmarks/demo_runs.py`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _docs import replace_section

ROOT = Path(__file__).resolve().parent.parent
HEADING = "## Demo runs (issue 10)"
RUN_TIMEOUT_S = 900.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _burn() -> None:  # pragma: no cover - runs in a child process until terminated
    while True:
        pass


@dataclass
class Canary:
    candidate: str
    phase: str
    failed: list[str] = field(default_factory=list)  # gating checks that failed at the end
    reported: list[str] = field(default_factory=list)  # checks that failed but do not gate
    latency: str = ""  # the latency check's reason at the end
    message: str = ""


@dataclass
class Run:
    index: int
    burners: int
    exit_code: int
    duration_s: float
    canaries: dict[str, Canary]
    error: str = ""

    @property
    def as_expected(self) -> bool:
        v2, v3 = self.canaries.get("v2"), self.canaries.get("v3")
        return (
            self.exit_code == 0
            and v2 is not None
            and v2.phase == "succeeded"
            and v3 is not None
            and v3.phase == "rolled_back"
        )


def _canaries(home: Path) -> dict[str, Canary]:
    """The demo's rollouts, read from the run's own state store after the demo stopped its control plane."""
    from workbench.store.engine import Database
    from workbench.store.rollouts import RolloutRepository

    db = Database(f"sqlite:///{home / 'state.db'}")
    repo = RolloutRepository()
    out: dict[str, Canary] = {}
    try:
        with db.read() as connection:
            for record in repo.find(connection, endpoint="churn"):
                events = repo.events(connection, record.id)
                evidence = next(
                    (
                        e.evidence
                        for e in reversed(events)
                        if isinstance(e.evidence, dict) and "metrics" in e.evidence
                    ),
                    {},
                )
                metrics: list[dict[str, Any]] = evidence.get("metrics", [])
                failed = [m for m in metrics if m["verdict"] == "fail"]
                out[f"v{record.candidate_version}"] = Canary(
                    candidate=f"{record.candidate_model}/{record.candidate_version}",
                    phase=record.phase.value,
                    failed=[m["name"] for m in failed if m.get("gating", True)],
                    reported=[m["name"] for m in failed if not m.get("gating", True)],
                    latency=next((m["reason"] for m in metrics if m["kind"] == "latency"), ""),
                    message=events[-1].message if events else "",
                )
    finally:
        db.dispose()
    return out


def run_once(index: int, burners: int, rows: int | None) -> Run:
    with tempfile.TemporaryDirectory(prefix="wb-demo-run-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
        env.update(
            WORKBENCH_HOME=str(home),
            WORKBENCH_API_PORT=str(_free_port()),
            WORKBENCH_ROUTER_PORT=str(_free_port()),
            WORKBENCH_ALLOWED_ROOTS=str(tmp),
            COLUMNS="200",
            # The demo, its control plane and replicas run this checkout's code (an exported commit too).
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        )
        command = [sys.executable, "-m", "workbench", "demo", "--no-serve"]
        if rows is not None:
            command += ["--rows", str(rows)]
        procs = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(burners)]
        for proc in procs:
            proc.start()
        started = time.monotonic()
        try:
            done = subprocess.run(
                command, env=env, cwd=tmp, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
            )
            code, output = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as exc:
            code, output = -1, f"timed out after {RUN_TIMEOUT_S:g} s: {exc.stdout!r}"
        finally:
            duration = time.monotonic() - started
            for proc in procs:
                proc.terminate()
                proc.join(timeout=10)
        try:
            canaries = _canaries(home)
        except Exception as exc:  # a run that never got as far as a state store
            canaries, output = {}, f"{output}\n(state store unreadable: {exc})"
        run = Run(index, burners, code, round(duration, 1), canaries)
        if not run.as_expected:
            run.error = output[-3000:]
        return run


def _cell(canary: Canary | None) -> str:
    if canary is None:
        return "-"
    failed = f" ({', '.join(canary.failed)})" if canary.failed else ""
    return canary.phase + failed


def _latency_short(reason: str) -> str:
    """``candidate p95 2.1 ms vs baseline 0.74 ms`` out of a latency check's reason."""
    _, _, rest = reason.partition(": ")
    return rest.split(";")[0] if rest else ""


def _latency_numbers(reason: str) -> tuple[float, float, float] | None:
    """Estimate and confidence interval, in pp, out of a latency check's reason:
    ``... expected (+45.89pp, 98.3% CS [+12.86, +94.86]pp) ...`` gives (45.89, 12.86, 94.86)."""
    match = re.search(r"\(([-+\d.]+)pp, [\d.]+% CS \[([-+\d.]+), ([-+\d.]+)\]pp\)", reason)
    return (float(match.group(1)), float(match.group(2)), float(match.group(3))) if match else None


def _margins(runs: list[Run]) -> str:
    """How far each canary's latency verdict was from the other verdict, over all runs."""
    v2 = [n for r in runs if "v2" in r.canaries and (n := _latency_numbers(r.canaries["v2"].latency))]
    v3 = [n for r in runs if "v3" in r.canaries and (n := _latency_numbers(r.canaries["v3"].latency))]
    if not v2 or not v3:
        return ""
    from workbench.demo.canaries import DEMO_ANALYSIS

    tolerated = 100 * next(c.threshold for c in DEMO_ANALYSIS.checks if c.name == "latency_p95")
    return (
        f"Margins, over all {len(runs)} runs, of the latency check (the excess share of candidate requests "
        f"slower than the stable p95 + 1 ms; tolerated +{tolerated:g}pp): at v2's promotion its estimate was "
        f"{max(e for e, _, _ in v2):+.2f}pp at most and its interval's lower end {max(lo for _, lo, _ in v2):+.2f}pp "
        f"at most (a FAIL needs that end above +{tolerated:g}pp); at v3's rollback its estimate was "
        f"{min(e for e, _, _ in v3):+.2f}pp at least (the rollback comes at the first tick whose lower end "
        f"clears +{tolerated:g}pp, so that end measures how fast the evidence came, not the margin)."
    )


def section(runs: list[Run], rows: int | None, note: str = "") -> str:
    lines = [
        HEADING,
        "",
        *([note, ""] if note else []),
        "`benchmarks/demo_runs.py`: `workbench demo --no-serve` on a fresh `WORKBENCH_HOME` each time "
        f"(default {'data' if rows is None else f'--rows {rows}'}), with N processes spinning on the CPU "
        "beside it for the whole run. Expected story: v2 promoted (`succeeded`), v3 `rolled_back`. "
        f"Machine: {os.cpu_count()} cores (`nproc`), shared with other work.",
        "",
        "| burners | runs | v2 promoted and v3 rolled back | v3 rolled back on | v2 checks reported, not gating "
        "| duration median (min-max) |",
        "|---|---|---|---|---|---|",
    ]
    for burners in sorted({r.burners for r in runs}):
        group = [r for r in runs if r.burners == burners]
        good = sum(r.as_expected for r in group)
        failed_on: dict[str, int] = {}
        reported: dict[str, int] = {}
        for run in group:
            v3, v2 = run.canaries.get("v3"), run.canaries.get("v2")
            for name in v3.failed if v3 else []:
                failed_on[name] = failed_on.get(name, 0) + 1
            for name in v2.reported if v2 else []:
                reported[name] = reported.get(name, 0) + 1
        durations = sorted(r.duration_s for r in group)
        median = durations[len(durations) // 2]
        lines.append(
            f"| {burners} | {len(group)} | **{good}/{len(group)}** | "
            + (", ".join(f"{k} {v}/{len(group)}" for k, v in sorted(failed_on.items())) or "-")
            + " | "
            + (", ".join(f"{k} {v}/{len(group)}" for k, v in sorted(reported.items())) or "-")
            + f" | {median:.0f} s ({durations[0]:.0f}-{durations[-1]:.0f} s) |"
        )
    margins = _margins(runs)
    lines += ["", margins] if margins else []
    lines += [
        "",
        "Per run (v2's and v3's latency check as the last decision saw it: the candidate's p95 against the "
        "stable version's):",
        "",
        "| burners | run | v2 | v3 | v2 latency | v3 latency | took |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        v2, v3 = run.canaries.get("v2"), run.canaries.get("v3")
        lines.append(
            f"| {run.burners} | {run.index} | {_cell(v2)} | {_cell(v3)} | "
            f"{_latency_short(v2.latency) if v2 else '-'} | {_latency_short(v3.latency) if v3 else '-'} | "
            f"{run.duration_s:.0f} s |"
        )
    unexpected = [r for r in runs if not r.as_expected]
    for run in unexpected:
        lines += ["", f"Run {run.index} with {run.burners} burners (exit {run.exit_code}):", "", "```"]
        lines += [run.error.strip()[-1500:], "```"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20, help="runs per burner setting")
    parser.add_argument("--burners", default="0,2", help="comma-separated numbers of CPU-burning processes")
    parser.add_argument("--rows", type=int, default=None, help="pass --rows to the demo (default: its own)")
    parser.add_argument(
        "--write-docs", action="store_true", help=f"write '{HEADING}' into docs/benchmarks.md"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every run as JSON here")
    parser.add_argument("--from-json", type=Path, default=None, help="report runs saved by --json, run none")
    parser.add_argument("--note", default="", help="a line for the section, e.g. the commit measured")
    args = parser.parse_args()
    if args.from_json is not None:
        saved = json.loads(args.from_json.read_text())
        runs = [Run(**{**r, "canaries": {k: Canary(**c) for k, c in r["canaries"].items()}}) for r in saved]
        text = section(runs, args.rows, args.note)
        print(text)
        if args.write_docs:
            replace_section(HEADING, text)
        return
    runs = []
    for burners in (int(b) for b in args.burners.split(",")):
        for index in range(1, args.runs + 1):
            run = run_once(index, burners, args.rows)
            runs.append(run)
            v2, v3 = run.canaries.get("v2"), run.canaries.get("v3")
            print(
                f"burners {burners} run {index}: v2 {_cell(v2)}, v3 {_cell(v3)}, {run.duration_s:.0f} s"
                + ("" if run.as_expected else f"  UNEXPECTED (exit {run.exit_code})"),
                flush=True,
            )
            if args.json is not None:
                args.json.write_text(json.dumps([asdict(r) for r in runs], indent=2))
    text = section(runs, args.rows, args.note)
    print(text)
    if args.write_docs:
        replace_section(HEADING, text)


if __name__ == "__main__":
    main()
