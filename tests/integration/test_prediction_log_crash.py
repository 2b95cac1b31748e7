"""A SIGKILLed model server must leave a prediction log that reads back as a clean prefix of what it logged.

A real child process logs numbered records in a tight loop and is killed at different moments, five
times in the same directory with the same writer id (as a restarted replica would). After each kill,
every run's records must read back as 0, 1, 2... with no gap and no garbage, and every run but the
killed one's last segment must end on a complete line.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import orjson

from workbench.telemetry import PredictionLogWriter, list_segments, read_records

REPO_ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from workbench.telemetry import PredictionLogWriter

    run = int(sys.argv[2])
    writer = PredictionLogWriter(
        Path(sys.argv[1]), writer_id="crash", flush_interval=0.05, max_pending=20_000, segment_bytes=256 * 1024
    )
    writer.start()
    print("ready", flush=True)
    n = 0
    while True:
        rec = {"ts": time.time(), "run": run, "n": n, "endpoint": "churn", "inputs": {"x": [n, n + 0.5]}}
        if writer.log(rec):  # a refused record is retried with the same number: numbers stay consecutive
            n += 1
    """
)


def run_and_kill(directory: Path, run: int, after: float) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory), str(run)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        if line != b"ready\n":
            child.kill()
            _, err = child.communicate(timeout=30)
            raise AssertionError(f"child did not start: {line!r} {err.decode(errors='replace')}")
        try:
            child.wait(timeout=after)
        except subprocess.TimeoutExpired:
            pass
        else:
            raise AssertionError(f"child exited on its own: {child.stderr.read() if child.stderr else b''!r}")
    finally:
        child.kill()  # SIGKILL: no atexit, no close(), no flush
        child.communicate(timeout=30)
    assert child.returncode == -9


def test_sigkilled_writer_leaves_a_clean_consecutive_prefix(tmp_path: Path) -> None:
    directory = tmp_path / "predictions"
    counts: list[int] = []
    for run, after in enumerate([1.0, 0.7, 1.13, 0.85, 1.31]):
        run_and_kill(directory, run, after)

        by_run: dict[int, list[int]] = {}
        order: list[int] = []
        for rec in read_records(directory):
            assert set(rec) == {"ts", "run", "n", "endpoint", "inputs"}
            assert rec["inputs"] == {"x": [rec["n"], rec["n"] + 0.5]}
            if rec["run"] not in by_run:
                order.append(rec["run"])
            by_run.setdefault(rec["run"], []).append(rec["n"])
        assert order == list(range(run + 1)), "each restart must write after the previous run's segments"
        for numbers in by_run.values():
            assert numbers == list(range(len(numbers))), "records lost in the middle, or out of order"
        assert len(by_run[run]) > 0
        counts.append(len(by_run[run]))

        # Segments are only rotated after complete writes: a torn segment is the last one of its run
        # (a run killed right after opening a new segment leaves it empty, which is clean).
        runs_of_segments: list[tuple[Path, int | None, bool]] = []
        for path in list_segments(directory):
            data = path.read_bytes()
            first = data.split(b"\n", 1)[0]
            run_of = orjson.loads(first)["run"] if data.count(b"\n") else None
            runs_of_segments.append((path, run_of, data == b"" or data.endswith(b"\n")))
        for i, (path, run_of, clean) in enumerate(runs_of_segments):
            if not clean:
                later = {r for _, r, _ in runs_of_segments[i + 1 :] if r is not None}
                assert run_of not in later, f"{path.name} was rotated with a partial line"

    # The earlier runs' records did not change when later runs were killed.
    assert counts == [len(v) for _, v in sorted(by_run.items())]


def test_restart_after_a_torn_write_skips_the_torn_line_and_never_appends_to_it(tmp_path: Path) -> None:
    torn = tmp_path / "crash-000007.jsonl"
    good = b"".join(orjson.dumps({"ts": 1.0, "n": n}) + b"\n" for n in range(3))
    torn.write_bytes(good + b'{"ts": 1.0, "n": 3, "inp')

    writer = PredictionLogWriter(tmp_path, writer_id="crash", flush_interval=0.05)
    writer.start()
    for n in range(4, 7):
        writer.log({"ts": 2.0, "n": n})
    writer.close()

    assert torn.read_bytes() == good + b'{"ts": 1.0, "n": 3, "inp'
    assert [p.name for p in list_segments(tmp_path)] == ["crash-000007.jsonl", "crash-000008.jsonl"]
    assert [r["n"] for r in read_records(tmp_path)] == [0, 1, 2, 4, 5, 6]
    assert [r["n"] for r in read_records(tmp_path, since=2.0)] == [4, 5, 6]
