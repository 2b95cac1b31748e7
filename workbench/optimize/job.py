"""What the control plane hands an optimisation worker: a plain record, so the control plane stays free of torch."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict


class OptimizationJob(BaseModel):
    """What the control plane hands the worker (written as JSON beside the output)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    version: int
    parent_dir: Path
    reference_path: Path
    target: str
    method: str
    serving_batch: int
    threads: int | None = None
    seed: int = 0
    output_dir: Path
    measure_rss: bool = True
