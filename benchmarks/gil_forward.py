"""What a busy event loop costs a forward pass, eager against its TorchScript trace.

    .venv/bin/python benchmarks/gil_forward.py     # ~40 s; prints a table

A replica's inference thread runs the forward pass while its event loop (the main thread) decodes and
answers other requests under the GIL. torch releases the GIL inside each operator, but an eager forward
comes back to Python between layers and must take the GIL back each time; a trace runs the whole graph
in C++. Here the benchmark's heavy model (the same layers as in ``serving.py``) runs at batch 64 in one
thread, alone and beside a thread that keeps the GIL busy with pure Python (the worst case of an event
loop), with the switch interval the replica sets (0.5 ms).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench.demo.training import ChurnNet
from workbench.serving.schema import ColumnSpec, ModelSchema
from workbench.serving.torch_graph import as_graph

HEAVY_HIDDEN = (2560, 2560, 1024)
BATCH = 64
SECONDS = 3.0


def rows_per_s(module: Any, inputs: torch.Tensor, *, busy: bool) -> float:
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(200))

    spinner = threading.Thread(target=spin, daemon=True)
    if busy:
        spinner.start()
    count, started = 0, time.perf_counter()
    try:
        with torch.inference_mode():
            while time.perf_counter() - started < SECONDS:
                module(inputs)
                count += 1
    finally:
        stop.set()
        if busy:
            spinner.join()
    return count * len(inputs) / (time.perf_counter() - started)


def main() -> None:
    sys.setswitchinterval(0.0005)  # as serving/process.py sets it in every replica
    torch.manual_seed(0)
    module = ChurnNet(hidden_sizes=HEAVY_HIDDEN).eval()
    schema = ModelSchema(columns=tuple(ColumnSpec(f"f{i}", "double") for i in range(module.n_features)))
    traced, how = as_graph(module, schema, torch.device("cpu"))
    assert how == "torchscript", how
    inputs = torch.randint(0, 3, (BATCH, module.n_features)).float()
    print(f"heavy model, batch {BATCH}, switch interval 0.5 ms, rows/s:\n")
    print("| torch threads | graph | alone | beside a busy Python thread | lost |")
    print("|---:|---|---:|---:|---:|")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for label, graph in (("eager", module), ("torchscript", traced)):
            rows_per_s(graph, inputs, busy=False)  # warm-up (the trace's profiling runs)
            alone = rows_per_s(graph, inputs, busy=False)
            beside = rows_per_s(graph, inputs, busy=True)
            print(
                f"| {threads} | {label} | {alone:,.0f} | {beside:,.0f} | {1 - beside / alone:.0%} |",
                flush=True,
            )
    print(
        "\nWith two torch threads the busy thread also takes one of the two cores the forward pass wants, "
        "so that row mixes GIL waits with lost compute."
    )


if __name__ == "__main__":
    main()
