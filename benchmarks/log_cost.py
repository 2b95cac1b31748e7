"""What the prediction log costs a replica: the same model, the same load, with the log on and off.

    .venv/bin/python benchmarks/log_cost.py            # ~2 minutes; prints a table
    .venv/bin/python benchmarks/log_cost.py --write-docs

Two replica processes of the demo MLP are started directly (no router, no control plane): one writing
every request's record, inputs and outputs included (``log_sample_rate=1``, the default), one with no
prediction log at all. wrk (one thread) drives each in turn with one-row MLflow JSON requests at
concurrency 64, alternating three times so that drift in the machine's load hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _load import LoadResult, require_wrk, run_wrk

from workbench.demo.dataset import FEATURES, generate_churn, split_frame
from workbench.demo.training import train_version
from workbench.registry.packaging import save_model
from workbench.serving.config import ReadyInfo, ReplicaConfig
from workbench.telemetry import read_records

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Prediction log: what it costs a replica (issue 5)"
ROUNDS = 5
SECONDS = 8.0
CONCURRENCY = 64


def start_replica(
    workdir: Path, model_dir: Path, name: str, log_dir: Path | None, sample_rate: float = 1.0
) -> tuple[subprocess.Popen[bytes], str]:
    ready = workdir / f"{name}.ready.json"
    config = ReplicaConfig(
        replica_id=name,
        endpoint="bench",
        model="bench",
        version=1,
        model_dir=model_dir,
        device="cpu",
        ready_file=ready,
        prediction_log_dir=log_dir,
        log_sample_rate=sample_rate,
    )
    path = workdir / f"{name}.json"
    path.write_text(config.model_dump_json())
    log = (workdir / f"{name}.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "workbench.serving.replica", str(path)], stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 120
    while not ready.is_file():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"replica {name} did not start; see {workdir / (name + '.log')}")
        time.sleep(0.1)
    info = ReadyInfo.model_validate_json(ready.read_bytes())
    return process, f"http://127.0.0.1:{info.port}/invocations"


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of one process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run() -> dict[str, Any]:
    require_wrk()
    with tempfile.TemporaryDirectory(prefix="wb-log-cost-") as tmp:
        workdir = Path(tmp)
        data = generate_churn(4000, seed=3)
        train, holdout = split_frame(data, holdout_fraction=0.25, seed=3)
        trained = train_version(1, train, holdout, seed=3)
        model_dir = workdir / "model"
        save_model(trained.module, model_dir, input_example=holdout[list(FEATURES)].head(2))
        row = holdout[list(FEATURES)].head(1).to_dict(orient="split")
        body = orjson.dumps({"dataframe_split": {"columns": row["columns"], "data": row["data"]}})
        variants = {
            "silent": start_replica(workdir, model_dir, "silent", None),
            "logged": start_replica(workdir, model_dir, "logged", workdir / "predictions"),
            "metadata": start_replica(workdir, model_dir, "metadata", workdir / "metadata", sample_rate=0.0),
        }
        results: dict[str, list[LoadResult]] = {name: [] for name in variants}
        cpu_us: dict[str, list[float]] = {name: [] for name in variants}
        try:
            for _, url in variants.values():  # warm every one
                run_wrk(url, body, concurrency=CONCURRENCY, seconds=2.0)
            for round_index in range(ROUNDS):
                # Reversed every other round, so a machine getting faster or slower hits no variant alone.
                order = list(variants.items())
                for name, (process, url) in order if round_index % 2 == 0 else reversed(order):
                    before = cpu_seconds(process.pid)
                    result = run_wrk(url, body, concurrency=CONCURRENCY, seconds=SECONDS)
                    used = cpu_seconds(process.pid) - before
                    results[name].append(result)
                    cpu_us[name].append(1e6 * used / max(1, result.requests))
        finally:
            for process, _ in variants.values():
                process.terminate()
                process.wait(timeout=30)
        written = sum(1 for _ in read_records(workdir / "predictions"))
    return {
        "rounds": ROUNDS,
        "seconds": SECONDS,
        "concurrency": CONCURRENCY,
        "records_written": written,
        "runs": {
            k: [
                r.__dict__ | {"rps": r.rps, "cpu_us_per_request": cpu}
                for r, cpu in zip(v, cpu_us[k], strict=True)
            ]
            for k, v in results.items()
        },
    }


def to_markdown(result: dict[str, Any]) -> str:
    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in result["runs"][kind])

    def paired_cost(kind: str) -> float:
        """Median over rounds of the throughput lost against the silent replica's run of the same round:
        on a VM whose speed drifts by tens of percent within minutes, medians taken per variant compare
        runs made under different conditions."""
        pairs = zip(result["runs"]["silent"], result["runs"][kind], strict=True)
        return statistics.median(100 * (s["rps"] - k["rps"]) / s["rps"] for s, k in pairs if s["rps"])

    def paired_cpu(kind: str) -> float:
        """Median over rounds of the extra CPU time per request against the silent replica's run of the
        same round: what the log takes from a replica whose CPU is the limit, read from /proc, which the
        VM's drifting speed and wrk's share of the two cores move much less than req/s."""
        pairs = zip(result["runs"]["silent"], result["runs"][kind], strict=True)
        return statistics.median(
            100 * (k["cpu_us_per_request"] - s["cpu_us_per_request"]) / s["cpu_us_per_request"]
            for s, k in pairs
            if s.get("cpu_us_per_request")
        )

    cost, metadata_cost = paired_cost("logged"), paired_cost("metadata")
    cpu_cost, metadata_cpu_cost = paired_cpu("logged"), paired_cpu("metadata")
    silent_rps = [r["rps"] for r in result["runs"]["silent"]]
    sent = sum(r["requests"] for r in result["runs"]["logged"])
    lines = [
        SECTION,
        "",
        "`.venv/bin/python benchmarks/log_cost.py --write-docs`: the demo MLP in three replica processes "
        "started directly, one logging every request (record, inputs and outputs), one logging records "
        "without inputs and outputs, one without a prediction log; wrk "
        f"(one thread), one-row MLflow JSON, concurrency {result['concurrency']}, {result['seconds']:g} s per run, "
        f"alternated {result['rounds']} times (medians).",
        "",
        "| replica | req/s | p50 ms | p99 ms | errors | replica CPU µs/request |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, label in (
        ("silent", "no prediction log"),
        ("metadata", "records without inputs/outputs (log_sample_rate=0)"),
        ("logged", "every request with inputs and outputs (default)"),
    ):
        lines.append(
            f"| {label} | {median(kind, 'rps'):,.0f} | {median(kind, 'p50_ms'):.2f} | "
            f"{median(kind, 'p99_ms'):.2f} | {sum(r['errors'] for r in result['runs'][kind])} | "
            f"{median(kind, 'cpu_us_per_request'):.1f} |"
        )
    verdict = "meets" if cost <= 5 else "misses"
    lines += [
        "",
        f"Throughput cost of the prediction log with inputs and outputs: **{cost:.1f} %** ({verdict} the "
        f"≤ 5 % target); of records alone (no inputs/outputs): {metadata_cost:.1f} % (each the median over "
        f"rounds of the loss against the silent replica's run in the same round; the silent replica's own "
        f"throughput ranged {min(silent_rps):,.0f}-{max(silent_rps):,.0f} req/s over the rounds). The logging replica "
        f"wrote {result['records_written']:,} records for {sent:,} measured requests (warm-up included in the "
        "records).",
        "",
        f"CPU time the replica process spends per request (all its threads, from /proc): **{cpu_cost:+.1f} %** "
        f"with inputs and outputs, {metadata_cpu_cost:+.1f} % for records alone (paired medians as above).",
        "",
    ]
    lines += [
        "How: a replica writes one line per inference batch (`workbench/telemetry/batch_record.py`), which "
        "every reader expands back into one record per request. The request path appends each request's "
        "fields to its batch's lists; the batch's inputs are joined from the decoder's per-request float64 "
        "blocks with one concatenate (each column cast back to its decoded type), and its outputs with one "
        "more. No dict per request and no array per request and column is built, encoded or left waiting "
        "for the garbage collector. Before that, with a line per request (2026-12-01): 28.3 % with inputs "
        "and outputs, 14.6 % for records alone, p99 22.5 ms against 6.0 ms without the log (and, re-run "
        "from that commit on 2026-12-02 just before the figures above, on the same slowed VM: 21.7 %, p99 "
        "30.4 ms against 12.3 ms): a fifth of the "
        "serving process's GIL went to encoding 20 one-element arrays per request, and the tens of "
        "thousands of them waiting for each flush made the collector's pauses the replica's p99.",
        "",
    ]
    if cost > 5:
        lines += [
            "What is left above the target is not located. Records alone cost about as much as records with "
            "inputs and outputs, so it is not the inputs; the candidates are the per-request Python left on "
            "the request path (the record's fields, the batch's join) and the writer's encoding, both under "
            "the serving process's GIL, which a writer process fed through shared memory would take out of "
            "it. On this VM the spread between adjacent runs of the same replica (see the silent replica's "
            "range) is wider than the target itself, so these runs cannot tell 5 % from 10 %.",
            "",
        ]
    return "\n".join(lines)


def write_docs(markdown: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text()
    if SECTION in text:
        start = text.index(SECTION)
        rest = text[start + len(SECTION) :]
        following = rest.find("\n## ")
        end = start + len(SECTION) + (following + 1 if following >= 0 else len(rest))
        text = text[:start] + markdown + text[end:]
    else:
        text = text.rstrip() + "\n\n" + markdown
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--render", action="store_true", help="re-render the last run's results, no run")
    args = parser.parse_args()
    saved = ROOT / "benchmarks" / "results" / "log_cost.json"
    if args.render:
        result = json.loads(saved.read_text())
    else:
        result = run()
        saved.parent.mkdir(exist_ok=True)
        saved.write_text(json.dumps(result, indent=2))
    markdown = to_markdown(result)
    print(markdown)
    if args.write_docs:
        write_docs(markdown)


if __name__ == "__main__":
    main()
