"""The process that executes one runbook: papermill in its own session, so it can be stopped as a whole.

Run as ``python -m workbench.runbooks.child SPEC.json``. SIGTERM becomes ``SystemExit`` so papermill's
clean-up shuts the kernel down; papermill saves the notebook after every cell, so what ran is on disk
whatever stops it. Exit codes: 0 done, 1 a cell raised, 3 papermill itself failed.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _stop)
    spec: dict[str, Any] = json.loads(Path(argv[0]).read_text())
    import papermill
    from papermill.exceptions import PapermillExecutionError

    try:
        papermill.execute_notebook(
            spec["input"],
            spec["output"],
            parameters=spec["parameters"],
            kernel_name=spec["kernel"],
            cwd=spec["cwd"],
            progress_bar=False,
            log_output=True,
            request_save_on_cell_execute=True,
            execution_timeout=spec.get("cell_timeout_s"),
        )
    except PapermillExecutionError as exc:
        print(f"runbook cell failed: {exc.ename}: {exc.evalue}", file=sys.stderr)
        return 1
    except SystemExit:
        raise
    except Exception as exc:
        print(f"papermill failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
