"""The client is what notebooks, widgets and runbooks import: it must not drag the server in."""

from __future__ import annotations

import json
import subprocess
import sys

SERVER_PACKAGES = (
    "sqlalchemy",
    "fastapi",
    "starlette",
    "uvicorn",
    "torch",
    "mlflow",
    "evidently",
    "papermill",
)


def test_importing_the_client_imports_no_server_code() -> None:
    probe = (
        "import json, sys, workbench, workbench.client\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('workbench.'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    top_level, ours = (json.loads(line) for line in result.stdout.splitlines())
    assert not set(SERVER_PACKAGES) & set(top_level), sorted(set(SERVER_PACKAGES) & set(top_level))
    server_modules = [m for m in ours if m.split(".")[1] in {"store", "api", "serving", "control_plane"}]
    assert server_modules == []
    assert "workbench.client" in ours
