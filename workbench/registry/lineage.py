"""Fingerprints that make a model version explainable later: which data, which code.

Digests are computed the same way on the client (from an in-memory frame) and on the server (from a
file), so a version's ``data_digest`` can be compared with a reference dataset's digest directly.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pandas as pd


def frame_digest(frame: pd.DataFrame) -> str:
    """Content hash of a frame: column names, dtypes and values, independent of the index."""
    hasher = hashlib.sha256()
    for name, dtype in frame.dtypes.items():
        hasher.update(f"{name}:{dtype};".encode())
    row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    hasher.update(row_hashes.tobytes())
    return f"sha256:{hasher.hexdigest()}"


def git_code_version(directory: Path | None = None) -> str | None:
    """The commit the training code runs from, marked ``-dirty`` with uncommitted changes; None outside git."""
    cwd = str(directory or Path.cwd())
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not commit:
        return None
    return f"{commit}-dirty" if dirty else commit
