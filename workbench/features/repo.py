"""The Feast repository: where its definitions live, its ``feature_store.yaml``, and Feast's own commands.

Feast is the source of truth for feature definitions, materialisation and the online store; the workbench
does not re-implement any of it. Definitions are Python files in the repository, as in any Feast project,
so ``feast apply`` and ``feast materialize-incremental`` run as Feast's own CLI in a child process: the
user's definition code never runs inside the control plane, and every apply imports it afresh (an
in-process import would keep the first version of a module). Reads of the registry (what is defined,
what was materialised when) use Feast's Python API, imported lazily: ``import feast`` takes seconds.

The embedded default keeps the repository under ``WORKBENCH_HOME/features``: a file offline store
(parquet), a SQLite online store and a local registry. ``WORKBENCH_FEATURE_ONLINE_STORE=redis://host:port``
puts the online store in Redis. A repository whose ``feature_store.yaml`` the workbench did not write
(``WORKBENCH_FEATURE_REPO`` pointing at an existing Feast project) is used as it is.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from workbench.errors import ConflictError, UnavailableError, ValidationError
from workbench.features.feast_import import UNCHECKED_CLI, skip_typechecks

#: First line of a ``feature_store.yaml`` the workbench wrote (and may rewrite when settings change).
OWNED_MARKER = "# written by workbench: edit WORKBENCH_FEATURE_ONLINE_STORE instead"
PROJECT = "workbench"
#: Feast's CLI, run by this interpreter (so the venv's Feast, whatever PATH says).
FEAST_CLI = ("-c", "import sys; from feast.cli.cli import cli; sys.exit(cli())")
#: Commands that load no user definition (they read the registry apply wrote): Feast without typeguard's
#: instrumentation, 6.5 s of CPU less each (workbench.features.feast_import).
UNCHECKED_COMMANDS = frozenset({"materialize", "materialize-incremental"})
COMMAND_TIMEOUT_S = 600.0
OUTPUT_TAIL = 4000


def online_store_yaml(online_store: str, data_dir: str = "data") -> str:
    """The ``online_store`` block for ``sqlite`` (the default) or a ``redis://host:port[/db]`` URL."""
    if online_store in ("", "sqlite"):
        return f"online_store:\n  type: sqlite\n  path: {data_dir}/online.db\n"
    parsed = urlparse(online_store)
    if parsed.scheme != "redis" or not parsed.hostname:
        raise ValidationError(
            f"the online store must be 'sqlite' or a redis://host:port[/db] URL, got {online_store!r}",
            variable="WORKBENCH_FEATURE_ONLINE_STORE",
        )
    db = parsed.path.strip("/") or "0"
    if not db.isdigit():
        raise ValidationError(f"the Redis database must be a number, got {db!r}")
    connection = f"{parsed.hostname}:{parsed.port or 6379},db={db}"
    if parsed.password:
        connection += f",password={parsed.password}"
    return f'online_store:\n  type: redis\n  connection_string: "{connection}"\n'


def store_yaml(online_store: str) -> str:
    return (
        f"{OWNED_MARKER}\n"
        f"project: {PROJECT}\n"
        "registry: data/registry.db\n"
        "provider: local\n"
        f"{online_store_yaml(online_store)}"
        "offline_store:\n  type: file\n"
        "entity_key_serialization_version: 3\n"
    )


@dataclass
class FeatureRepo:
    path: Path
    online_store: str = "sqlite"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def config_file(self) -> Path:
        return self.path / "feature_store.yaml"

    @property
    def owned(self) -> bool:
        try:
            return self.config_file.read_text().startswith(OWNED_MARKER)
        except OSError:
            return True  # not written yet: ours to write

    def ensure(self) -> None:
        """The directory and, unless the repository is someone else's, a current ``feature_store.yaml``."""
        (self.path / "data").mkdir(parents=True, exist_ok=True)
        if self.owned:
            wanted = store_yaml(self.online_store)
            if not self.config_file.exists() or self.config_file.read_text() != wanted:
                self.config_file.write_text(wanted)

    def definition_files(self) -> list[Path]:
        return sorted(p for p in self.path.glob("*.py") if not p.name.startswith("_"))

    # ------------------------------------------------------------- Feast's CLI
    def run(self, *args: str, timeout: float = COMMAND_TIMEOUT_S) -> str:
        """One Feast CLI command in the repository; its output, or a clear error with Feast's own words."""
        self.ensure()
        with self._lock:  # one Feast command at a time per repository (they share the registry file)
            try:
                done = subprocess.run(
                    [sys.executable, *self._cli(args[0]), "-c", str(self.path), *args],
                    cwd=self.path,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise UnavailableError(f"feast {args[0]} did not finish in {timeout:g} s") from None
        output = (done.stdout + done.stderr)[-OUTPUT_TAIL:]
        if done.returncode != 0:
            reason = _last_error(output)
            where = _where_in(output, self.path)
            if any(sign in output for sign in UNREACHABLE):
                raise UnavailableError(
                    f"feast {args[0]}: the online store cannot be reached: {reason}", output=output
                )
            raise ValidationError(f"feast {args[0]} failed{where}: {reason}", output=output)
        return output

    @staticmethod
    def _cli(command: str) -> tuple[str, str]:
        return ("-c", UNCHECKED_CLI) if command in UNCHECKED_COMMANDS else FEAST_CLI

    def apply(self) -> str:
        if not self.definition_files():
            raise ConflictError(
                f"the feature repository {self.path} has no definitions (*.py files with entities, "
                "feature views and feature services)",
                repo=str(self.path),
            )
        return self.run("apply")

    def materialize(self, end: str, *, start: str | None = None, views: list[str] | None = None) -> str:
        """Up to ``end`` (ISO time) from where each view stopped, or over ``[start, end]``."""
        args = ["materialize", start, end] if start else ["materialize-incremental", end]
        for view in views or []:
            args += ["--views", view]
        return self.run(*args)

    # ------------------------------------------------------- Feast's Python API
    def store(self) -> Any:
        """Feast's ``FeatureStore`` on this repository (imports Feast: seconds, the first time)."""
        self.ensure()
        skip_typechecks()
        from feast import FeatureStore

        return FeatureStore(repo_path=str(self.path))


#: What Feast's output says when the online store (Redis) does not answer.
UNREACHABLE = ("Connection refused", "ConnectionError", "Error 111", "Timeout connecting")
_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')


def _where_in(output: str, repo: Path) -> str:
    """`` in FILE line N`` for the deepest traceback frame in the repository's own files, else ``""``."""
    root = str(repo.resolve())
    found = ""
    for match in _FRAME.finditer(output):
        if match["file"].startswith(root):
            found = f" in {Path(match['file']).name} line {match['line']}"
    return found


def _last_error(output: str) -> str:
    """The line of Feast's output that says what went wrong (its last non-empty one, usually)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line or "Exception" in line:
            return line[:500]
    return lines[-1][:500] if lines else "no output"
