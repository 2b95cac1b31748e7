"""Optimised variants of the demo's models, each beside its parent, in one run (issue 15).

The demo's world as ``workbench demo`` builds it (24,000 generated rows, seed 7): v2 (the good MLP,
64x64) and v3 (the large, slow regression, ~7M parameters with weight normalisation left unfolded),
registered with their holdout as reference data. Every method is asked through the real control plane
API (``Client.optimize``), which runs the worker, measures, gates and registers or refuses: the figures
here are the ones the product records, measured the way it measures them (parent and variant loaded by
the replica's own loader, timed in alternating rounds at batch 1 and at the serving batch; each model's
replica RSS from a fresh process).

Run: ``python benchmarks/optimize.py [--batch N] [--write-docs]`` (``make bench-optimize``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _docs import replace_section

from tests._servers import run_server
from workbench.api import create_app
from workbench.client import Client
from workbench.control_plane import ControlPlane
from workbench.demo.dataset import FEATURES, TARGET
from workbench.demo.training import train_version
from workbench.demo.world import DEMO_MODEL, DEMO_SEED, demo_data
from workbench.records.optimizations import OptimizationRecord
from workbench.settings import Settings

SECTION = "## Optimised variants (benchmarks/optimize.py)"
RESULTS = Path(__file__).resolve().parent / "results" / "optimize.json"
METHODS: tuple[tuple[int, str], ...] = (
    (2, "onnx"),
    (2, "onnx-int8"),
    (2, "dynamic-int8"),
    (2, "prune:0.5"),
    (3, "dynamic-int8"),
    (3, "onnx"),
    (3, "distill:mlp-32"),
    (3, "distill:mlp-64x64"),
)


def run(batch: int | None) -> tuple[list[OptimizationRecord], float]:
    root = Path(tempfile.mkdtemp(prefix="bench-optimize-"))
    started = time.perf_counter()
    try:
        home = root / "home"
        settings = Settings.for_home(home, allowed_roots=(root,), api_port=0, serving_backend="none")
        plane = ControlPlane(settings)
        data = demo_data()
        records: list[OptimizationRecord] = []
        try:
            with (
                run_server(create_app(settings, plane)) as url,
                Client(url, settings=settings, actor="bench") as client,
            ):
                versions: dict[int, int] = {}
                for recipe in (2, 3):
                    trained = train_version(recipe, data.train, data.holdout, seed=DEMO_SEED)  # type: ignore[arg-type]
                    info = client.register_model(
                        DEMO_MODEL,
                        trained.module,
                        input_example=data.holdout[list(FEATURES)].head(2),
                        reference_data=data.holdout,
                        reference_target=TARGET,
                        metrics=trained.metrics,
                    )
                    versions[recipe] = info.version
                for recipe, method in METHODS:
                    record = client.optimize(
                        f"models:/{DEMO_MODEL}/{versions[recipe]}", method, batch_size=batch
                    )
                    verdict = record.verdict or {}
                    print(
                        f"v{recipe} {method}: {record.status.value} {verdict.get('speedup')}x",
                        verdict.get("reasons") or record.error or "",
                    )
                    demo_version = {"demo_version": recipe}
                    records.append(
                        record.model_copy(update={"settings": {**record.settings, **demo_version}})
                    )
        finally:
            plane.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return records, time.perf_counter() - started


def _cells(block: dict[str, Any], serving: str) -> list[str]:
    latency = block["latency_ms"]
    quality = block["quality"]
    return [
        f"{quality['auc_points']:.2f}",
        f"{quality['accuracy_points']:.2f}",
        *([f"{latency['1']['p50']:.4f}"] if serving != "1" else []),
        f"{latency[serving]['p50']:.4f}",
        f"{latency[serving]['rows_per_s']:,.0f}",
        f"{block['size_bytes'] / 1024:,.1f}",
        f"{block.get('replica_rss_mb', float('nan')):.0f}",
    ]


def markdown(records: list[OptimizationRecord], took: float, load: tuple[float, float]) -> str:
    serving = str(records[0].settings["serving_batch"])
    lines = [
        SECTION,
        "",
        f"Command: `make bench-optimize` (`python benchmarks/optimize.py --batch {serving} --write-docs`), "
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, load average {load[0]:.2f} before and "
        f"{load[1]:.2f} after; {took:.0f} s in all.",
        "",
        "The demo's v2 (the good 64x64 MLP) and v3 (the large, slow regression) with their 6,000-row labelled "
        "holdout as reference; each variant judged on the same 3,000 rows as its parent (the other half is "
        "what prune and distill learn from, from the parent's scores, never from labels). Latency: "
        "`Runner.run` exactly as a replica calls it, parent and variant in alternating rounds, p50 over "
        f"every call; at batch 1 and at the serving batch ({serving}). RSS: a fresh process that loads and "
        "warms the model as a replica does. Gate: at most 1 point of AUC or accuracy lost, at least 1.05x "
        f"faster at batch {serving}.",
        "",
        "| model | method | outcome | AUC | accuracy | "
        + ("p50 ms @1 | " if serving != "1" else "")
        + f"p50 ms @{serving} | rows/s @{serving} | size KB | RSS MB | speed-up | AUC delta |",
        "|---|---|---|---:|---:|" + ("---:|" if serving != "1" else "") + "---:|---:|---:|---:|---:|---:|",
    ]
    demo = {r.version: r.settings.get("demo_version") for r in records}
    parents_done: set[int] = set()
    for record in records:
        if record.result is None:
            lines.append(
                f"| v{record.version} | {record.method} | {record.status.value}: {record.error} |" + " |" * 9
            )
            continue
        if record.version not in parents_done:
            parents_done.add(record.version)
            lines.append(
                f"| **demo v{demo[record.version]}** (models:/{record.model}/{record.version}) | "
                f"(parent, measured with {record.method}) | - | "
                + " | ".join(_cells(record.result["parent"], serving))
                + " | 1.00x | - |"
            )
        verdict = record.verdict or {}
        outcome = (
            f"registered as models:/{record.model}/{record.variant_version}"
            if record.variant_version
            else "refused: " + "; ".join(verdict.get("reasons", []))
        )
        lines.append(
            f"| variant of demo v{demo[record.version]} | {record.method} | {outcome} | "
            + " | ".join(_cells(record.result["variant"], serving))
            + f" | {verdict.get('speedup', float('nan')):.2f}x"
            + f" | {verdict['quality_delta'].get('auc_points', float('nan')):+.2f} |"
        )
    lines += [
        "",
        "Every speed-up is against the parent measured in the same optimisation (the parent rows above are "
        "the first of those measurements; the others agree within the noise of a shared 2-core machine).",
        "",
        "What it says: onnxruntime wins several times at batch 1 on both models and, with no torch in the "
        "process, its replica holds a third of a torch replica's memory. Torch's dynamic int8 loses on the "
        "64-unit MLP (quantising each call's activations costs more than int8 matmuls save on layers that "
        "small, as pytorch#103802 reports) and is refused; on v3 it wins, most of it from folding the weight "
        "normalisation that every method starts from. Pruning half of v2's units gains only what its two "
        "small matmuls cost, at the gate's edge. Distilling v3 into a 32-unit student keeps its AUC within a "
        "third of a point (v3 is a weak teacher: the student can only be as good as the scores it mimics) "
        "at a fraction of the latency.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=None, help="the serving batch (default: 1, no traffic)")
    parser.add_argument("--write-docs", action="store_true", help="write the results into docs/benchmarks.md")
    parser.add_argument("--render", action="store_true", help="re-render the last run's results, no run")
    args = parser.parse_args()
    if args.render:
        saved = json.loads(RESULTS.read_text())
        records = [OptimizationRecord.model_validate(r) for r in saved["records"]]
        took, load = saved["seconds"], tuple(saved["load"])
    else:
        before = os.getloadavg()[0]
        records, took = run(args.batch)
        load = (before, os.getloadavg()[0])
        RESULTS.write_text(
            json.dumps(
                {"records": [r.model_dump(mode="json") for r in records], "seconds": took, "load": load},
                indent=1,
            )
        )
    section = markdown(records, took, load)  # type: ignore[arg-type]
    print(section)
    if args.write_docs:
        replace_section(SECTION, section)
        print("updated docs/benchmarks.md")


if __name__ == "__main__":
    main()
