"""The demo's two canaries under generated traffic: v2 is promoted, the slow v3 is rolled back.

Traffic is real HTTP through the router (one-row MLflow JSON requests over the holdout rows), and the
rollouts are driven by the control plane's own loop, exactly as a user's would be: the demo only starts
them and watches. The analysis is the product's, with thresholds sized for a short demo (a few thousand
requests per canary) rather than for production volumes. Latency uses the default absolute tolerance
(a candidate request counts as slow only beyond the stable p95 + 1 ms), so scheduling noise on a busy
machine does not roll v2 back, while v3, several ms slower a call, fails at its first step. Prediction
shift is reported but does not gate: v2 is meant to answer differently from v1.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from workbench.client import Client
from workbench.rollouts.phases import Phase
from workbench.specs.analysis import AnalysisSpec, MetricCheck, MetricKind
from workbench.specs.rollout import CanaryStep, RolloutSpec
from workbench.store.rollouts import RolloutRecord

DEMO_ANALYSIS = AnalysisSpec(
    checks=(
        MetricCheck(name="error_rate", kind=MetricKind.ERROR_RATE, threshold=0.02),
        MetricCheck(name="latency_p95", kind=MetricKind.LATENCY, threshold=0.10, quantile=0.95),
        MetricCheck(name="prediction_shift", kind=MetricKind.PREDICTION_SHIFT, threshold=0.35),
    ),
    min_samples=150,
)


def demo_canary(endpoint: str, candidate: str) -> RolloutSpec:
    return RolloutSpec(
        endpoint=endpoint,
        candidate=candidate,
        steps=(CanaryStep(weight=20, min_duration_s=5), CanaryStep(weight=50, min_duration_s=5)),
        analysis=DEMO_ANALYSIS,
        tick_s=1.0,
        step_timeout_s=180,
        rollback_on_inconclusive=True,
    )


def run_canary(
    client: Client,
    spec: RolloutSpec,
    *,
    on_progress: Callable[[str], None] = lambda _line: None,
    timeout: float = 300.0,
) -> RolloutRecord:
    """Start a canary and follow it (the control plane's loop ticks it) until it ends."""
    record = client.start_rollout(spec, reason=f"demo: canary of {spec.candidate}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = client.rollout(record.id)
        rollout = detail["rollout"]
        analysis = detail.get("analysis") or {}
        verdicts = ", ".join(f"{m['name']} {m['verdict']}" for m in analysis.get("metrics", []))
        on_progress(
            f"canary of {spec.candidate}: {rollout['phase']}, step {rollout['step_index']}"
            + (f" ({verdicts})" if verdicts else "")
        )
        if Phase(rollout["phase"]).is_settled:
            return RolloutRecord.model_validate(rollout)
        time.sleep(0.5)
    return client.rollout_action(record.id, "abort", reason="demo: canary took too long")
