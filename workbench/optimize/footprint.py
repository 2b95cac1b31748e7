"""What a model costs to keep: bytes on disk, and the memory of a replica process that serves it.

RSS is measured in a fresh process that does what a replica does before it takes traffic (load the
model through the serving code, warm it at the batch sizes it will see), because the interpreter and
the libraries a flavour pulls in (torch alone is hundreds of MB) are part of what a variant costs.

``python -m workbench.optimize.footprint MODEL_DIR BATCH [THREADS]`` prints ``{"rss_mb": ...}``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from workbench.errors import UnavailableError

_PROBE_TIMEOUT_S = 180.0


def size_on_disk(directory: Path) -> int:
    """Bytes of the files a replica loads (the model directory, less the example MLflow keeps beside it)."""
    skipped = {"input_example.json", "serving_input_example.json"}
    return sum(
        path.stat().st_size for path in directory.rglob("*") if path.is_file() and path.name not in skipped
    )


def replica_rss_mb(model_dirs: Sequence[Path], batch: int, threads: int | None) -> list[float]:
    """Resident memory (MB) of a fresh process per directory, after loading and warming it as a replica would.

    The probes run at the same time: they only load and warm (no timing is taken while they run), and
    each process's own RSS does not depend on its neighbours.
    """
    probes = []
    for model_dir in model_dirs:
        command = [sys.executable, "-m", "workbench.optimize.footprint", str(model_dir), str(batch)]
        if threads is not None:
            command.append(str(threads))
        probes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    try:
        for model_dir, probe in zip(model_dirs, probes, strict=True):
            out, err = probe.communicate(timeout=_PROBE_TIMEOUT_S)
            try:
                results.append(float(json.loads(out.strip().splitlines()[-1])["rss_mb"]))
            except (ValueError, KeyError, IndexError):
                raise UnavailableError(
                    f"could not measure the replica memory of {model_dir}: {(err or out)[-400:]}"
                ) from None
    finally:
        for probe in probes:
            if probe.poll() is None:
                probe.kill()
    return results


def _probe(model_dir: Path, batch: int, threads: int | None) -> float:
    import psutil

    from workbench.serving.model import load_model, warm_up

    model = load_model(model_dir, "cpu", threads=threads)
    warm_up(model, sorted({1, batch}))
    return float(psutil.Process().memory_info().rss) / 2**20


if __name__ == "__main__":
    directory, rows = Path(sys.argv[1]), int(sys.argv[2])
    thread_count = int(sys.argv[3]) if len(sys.argv) > 3 else None
    print(json.dumps({"rss_mb": round(_probe(directory, rows, thread_count), 1)}))
