"""A container image for one replica of one version: ``workbench export docker ENDPOINT``.

The image runs the replica that ``workbench up`` runs (``python -m workbench.serving.replica CONFIG``), with
the endpoint's batching, threads, TorchScript and payload limit, on TCP port 8080 (no Unix socket: in a
container the network is the way in). Its parts:

* the wheel the README installs, built in a first stage from the project's source exactly as a release
  builds it (``pip wheel --no-deps``: hatchling, whose hook runs jlpm for the JupyterLab extension), so the
  image holds the same package as a user's ``pip install``; or a wheel given with ``--wheel``;
* torch installed first, alone, from PyTorch's CPU index: a bare requirement would pull the CUDA build
  (several GB) into an image that serves a small model. A GPU image changes that one line;
* the model version's MLflow model directory (``model/``), as the registry holds it;
* a non-root user (uid 10001), a writable prediction-log volume, and a health check on the replica's OIP
  readiness route.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Final

from workbench.serving.config import ReplicaConfig
from workbench.specs.endpoint import EndpointSpec

PORT: Final = 8080
USER_ID: Final = 10001
PYTHON_IMAGE: Final = "python:3.11-slim"
TORCH: Final = "torch==2.13.0"
TORCH_INDEX: Final = "https://download.pytorch.org/whl/cpu"
APP: Final = PurePosixPath("/opt/workbench")
MODEL_DIR: Final = APP / "model"
CONFIG_FILE: Final = APP / "replica.json"
PREDICTIONS: Final = PurePosixPath("/var/lib/workbench/predictions")
READY_FILE: Final = PurePosixPath("/tmp/workbench/ready.json")
READY_PATH: Final = "/v2/health/ready"
LIVE_PATH: Final = "/v2/health/live"
#: What ``pip wheel`` needs from a checkout (pyproject's packages, force-include, shared data, builder).
SOURCE_PATHS: Final = (
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "THIRD_PARTY_LICENSES",
    "workbench",
    "runbooks",
    "jupyter-config",
    "extensions/workbench-lab",
)
#: Never copied: built output, caches, installed node packages (the image's build makes its own).
_SKIPPED: Final = ("node_modules", "__pycache__", ".yarn", "lib", "tsconfig.tsbuildinfo", "labextension")


def replica_id(endpoint: str, model: str, version: int) -> str:
    """The image's tag and the replica's id: the model is part of it, since two models of one endpoint may
    both have a version 1. Docker's tag rules: [A-Za-z0-9_.-], at most 128 characters."""
    tag = re.sub(r"[^A-Za-z0-9_.-]", "-", f"{endpoint}-{model}-v{version}")
    if len(tag) > 128:
        tag = f"{tag[:111]}-{hashlib.sha256(tag.encode()).hexdigest()[:16]}"
    return tag


def replica_config(spec: EndpointSpec, model: str, version: int) -> ReplicaConfig:
    """The replica's config inside the image: the endpoint's serving settings, container paths."""
    return ReplicaConfig(
        replica_id=replica_id(spec.name, model, version),
        endpoint=spec.name,
        model=model,
        version=version,
        model_dir=Path(str(MODEL_DIR)),
        device=spec.device,
        threads=spec.threads,
        torchscript=spec.torchscript,
        max_batch_size=spec.batching.max_batch_size,
        max_wait_ms=spec.batching.max_wait_ms,
        payload_limit_bytes=spec.payload_limit_bytes,
        host="0.0.0.0",  # a container listens on its own network namespace
        port=PORT,
        uds=None,
        ready_file=Path(str(READY_FILE)),
        prediction_log_dir=Path(str(PREDICTIONS)),
        log_sample_rate=spec.log_sample_rate,
    )


def dockerfile(spec: EndpointSpec, model: str, version: int, *, wheel: str | None) -> str:
    """The Dockerfile; ``wheel`` names a wheel file in the build context, None builds one from ``source/``."""
    health = (
        "import sys, urllib.request; "
        f"sys.exit(urllib.request.urlopen('http://127.0.0.1:{PORT}{READY_PATH}', timeout=2).status != 200)"
    )
    if wheel is None:
        build = [
            "# The wheel the README installs, built as a release builds it: hatchling, with the hook that",
            "# runs jlpm (node from Debian) for the JupyterLab extension.",
            f"FROM {PYTHON_IMAGE} AS wheel",
            "RUN apt-get update && apt-get install -y --no-install-recommends nodejs \\",
            " && rm -rf /var/lib/apt/lists/*",
            "COPY source/ /src/",
            "RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels /src",
            "",
        ]
        wheel_copy = "COPY --from=wheel /wheels/ /tmp/wheels/"
    else:
        build = []
        wheel_copy = f"COPY {wheel} /tmp/wheels/"
    lines = [
        "# syntax=docker/dockerfile:1",
        f"# One replica of {model} version {version} for the endpoint {spec.name!r}, written by",
        "# `workbench export docker`. Build: docker build -t IMAGE .   Run: docker run -p 8080:8080 IMAGE",
        *build,
        f"FROM {PYTHON_IMAGE}",
        f"RUN useradd --system --uid {USER_ID} --create-home --home-dir /home/workbench workbench \\",
        f" && mkdir -p {PREDICTIONS} {READY_FILE.parent} && chown -R {USER_ID} {PREDICTIONS} {READY_FILE.parent}",
        "# torch first, alone, from the CPU index: a bare requirement pulls the multi-GB CUDA build.",
        f"RUN pip install --no-cache-dir {TORCH} --index-url {TORCH_INDEX}",
        wheel_copy,
        "RUN pip install --no-cache-dir /tmp/wheels/mlops_workbench-*.whl && rm -rf /tmp/wheels",
        f"COPY --chown={USER_ID} model/ {MODEL_DIR}/",
        f"COPY replica.json {CONFIG_FILE}",
        f"VOLUME {PREDICTIONS}",
        f"USER {USER_ID}",
        f"EXPOSE {PORT}",
        f'HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 CMD ["python", "-c", "{health}"]',
        f'ENTRYPOINT ["python", "-m", "workbench.serving.replica", "{CONFIG_FILE}"]',
    ]
    return "\n".join(lines) + "\n"


DOCKERIGNORE: Final = "**/node_modules\n**/__pycache__\n**/*.pyc\n"


def find_checkout() -> Path | None:
    """The project checkout this package runs from (an editable install), or None for an installed wheel."""
    root = Path(__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "mlops-workbench"' in pyproject.read_text():
        return root
    return None


def copy_source(checkout: Path, target: Path) -> list[str]:
    """The files a wheel build needs, from ``checkout`` into ``target``; the relative paths copied.

    In a git checkout, what git tracks (and new files it does not ignore); otherwise every file under
    :data:`SOURCE_PATHS` but built output and caches.
    """
    names = _git_files(checkout)
    if names is None:
        names = [
            str(path.relative_to(checkout))
            for top in SOURCE_PATHS
            for path in (
                [checkout / top] if (checkout / top).is_file() else sorted((checkout / top).rglob("*"))
            )
            if path.is_file() and not set(path.relative_to(checkout).parts) & set(_SKIPPED)
        ]
    wanted = [n for n in names if any(n == top or n.startswith(f"{top}/") for top in SOURCE_PATHS)]
    for name in wanted:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(checkout / name, target / name)
    return wanted


def _git_files(checkout: Path) -> list[str] | None:
    if not (checkout / ".git").exists() or shutil.which("git") is None:
        return None
    done = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return None
    return [n for n in done.stdout.split("\0") if n and (checkout / n).is_file()]
