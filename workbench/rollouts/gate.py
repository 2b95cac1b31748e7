"""The blue-green health gate: before a candidate takes all traffic, it must answer real requests.

Readiness only says the process loaded its model and survived its warm-up on zeros. The gate sends a
few rows of the version's registered reference data (the stable version's if the candidate has none)
through the router to the candidate alone (``x-workbench-version``), the same path live traffic will
take, and requires every answer to be a 200 from the candidate itself. The evidence goes into the
rollout's history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd

from workbench.protocol import PROBE_HEADER, VERSION_HEADER, VERSION_SELECT_HEADER

GATE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class GateResult:
    passed: bool
    requests: int
    failures: tuple[str, ...]
    source: str

    def evidence(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "requests": self.requests,
            "failures": list(self.failures),
            "source": self.source,
        }

    @property
    def summary(self) -> str:
        if not self.requests:
            return f"readiness only ({self.source})"
        ok = self.requests - len(self.failures)
        text = f"{ok}/{self.requests} smoke requests answered ({self.source})"
        return text if self.passed else f"{text}; first failure: {self.failures[0]}"


def input_columns(signature: dict[str, Any] | None, frame: pd.DataFrame) -> list[str]:
    """The reference columns the model takes: its signature's named inputs, in signature order."""
    inputs = (signature or {}).get("inputs") or []
    names = [item["name"] for item in inputs if isinstance(item, dict) and item.get("name")]
    return [name for name in names if name in frame.columns]


def smoke_bodies(frame: pd.DataFrame, columns: list[str], requests: int) -> list[bytes]:
    """``requests`` one-row MLflow ``dataframe_split`` bodies, rows spread over the reference."""
    if not columns or frame.empty or requests <= 0:
        return []
    positions = np.linspace(0, len(frame) - 1, num=min(requests, len(frame))).round().astype(int)
    bodies = []
    for position in positions:
        row = frame.iloc[[int(position)]][columns]
        split = row.to_dict(orient="split")
        bodies.append(orjson.dumps({"dataframe_split": {"columns": split["columns"], "data": split["data"]}}))
    return bodies


def run_gate(router_url: str, endpoint: str, version: int, bodies: list[bytes], source: str) -> GateResult:
    """Send each body to ``version`` of ``endpoint`` through the router; all must answer."""
    failures: list[str] = []
    url = f"{router_url}/endpoints/{endpoint}/invocations"
    # A probe: answered like live traffic, but never logged as such (no analysis counts it).
    headers = {
        "content-type": "application/json",
        VERSION_SELECT_HEADER: str(version),
        PROBE_HEADER: "1",
    }
    with httpx.Client(timeout=GATE_TIMEOUT_S) as client:
        for body in bodies:
            try:
                response = client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            if response.status_code != 200:
                failures.append(f"HTTP {response.status_code}: {response.text[:200]}")
            elif response.headers.get(VERSION_HEADER) != str(version):
                failures.append(f"answered by version {response.headers.get('x-workbench-model-version')}")
    return GateResult(passed=not failures, requests=len(bodies), failures=tuple(failures), source=source)
