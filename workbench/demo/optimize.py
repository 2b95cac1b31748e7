"""The demo's optimised variants: v2 (the good MLP) as ONNX and as torch int8; v3 (the large, slow
regression) distilled into a 32-unit student (``make bench-optimize`` measures eight methods). Each is
measured beside its parent while the demo's traffic runs, and registered only through its gate; torch's
dynamic int8 of a 64-unit MLP is expected to be refused (quantising activations costs more than it saves
on layers that small).
"""

from __future__ import annotations

from collections.abc import Callable

from workbench.client import Client
from workbench.records.optimizations import OptimizationRecord

#: (demo version, method), in the order they run.
DEMO_VARIANTS: tuple[tuple[int, str], ...] = (
    (2, "onnx"),
    (2, "dynamic-int8"),
    (3, "distill:mlp-32"),
)


def optimize_demo(
    client: Client,
    model: str,
    versions: dict[int, int],
    *,
    on_progress: Callable[[str], None] = lambda _line: None,
) -> list[OptimizationRecord]:
    """Ask for every demo variant; ``versions`` maps the demo's v1/v2/v3 to their registry versions."""
    records = []
    for demo_version, method in DEMO_VARIANTS:
        parent = f"models:/{model}/{versions[demo_version]}"
        on_progress(f"{method} of {parent}: making it, then measuring it beside its parent")
        records.append(
            client.optimize(parent, method, reason=f"demo: {method} of v{demo_version}", wait_s=900)
        )
    return records


def fastest_onnx(records: list[OptimizationRecord]) -> OptimizationRecord | None:
    """The registered ONNX variant with the largest speed-up: the one the demo canaries."""
    onnx = [r for r in records if r.method.startswith("onnx") and r.variant_version is not None]
    return max(onnx, key=lambda r: float((r.verdict or {}).get("speedup", 0.0)), default=None)
