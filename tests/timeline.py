"""How a test run used its workers: ``python -m tests.timeline`` reads tests/artifacts/timeline-*.jsonl
(written by tests/conftest.py) and prints each worker's busy time and the groups that took longest, so the
suite's time budget is judged on a measurement rather than on the ten slowest tests."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

ARTIFACTS = Path(__file__).parent / "artifacts"


def group_of(test: str) -> str:
    path = test.split("::")[0]
    return "tests/browser/" if path.startswith("tests/browser/") else path


def main(directory: Path = ARTIFACTS, top: int = 15) -> None:
    lines = [json.loads(line) for path in sorted(directory.glob("timeline-*.jsonl")) for line in path.open()]
    if not lines:
        sys.exit(f"no timeline in {directory}: run pytest first")
    first = min(line["start"] for line in lines)
    busy: dict[str, float] = defaultdict(float)
    last: dict[str, float] = defaultdict(float)
    groups: dict[str, float] = defaultdict(float)
    where: dict[str, set[str]] = defaultdict(set)
    for line in lines:
        busy[line["worker"]] += line["duration"]
        last[line["worker"]] = max(last[line["worker"]], line["start"] + line["duration"] - first)
        groups[group_of(line["test"])] += line["duration"]
        where[group_of(line["test"])].add(line["worker"])
    print(f"{'worker':<8} {'busy s':>8} {'last end s':>11}")
    for worker in sorted(busy):
        print(f"{worker:<8} {busy[worker]:>8.0f} {last[worker]:>11.0f}")
    print(f"\n{'group':<60} {'s':>7}  worker")
    for group, seconds in sorted(groups.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{group:<60} {seconds:>7.0f}  {','.join(sorted(where[group]))}")
    print(f"\nall groups: {sum(groups.values()):.0f} s of test time")
    calibration = directory / "calibration.json"
    if calibration.is_file():
        speed = json.loads(calibration.read_text())
        print(
            f"machine speed at the end: Python loop {speed['python_loop_ms']} ms, "
            f"MLP forward {speed['torch_forward_us']} us (tests/_calibration.py; lower is faster)"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ARTIFACTS)
