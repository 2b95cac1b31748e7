"""The control plane's API token: generated once, private to the user who runs Workbench."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path


def ensure_token(token_file: Path) -> str:
    """Return the API token, creating it (0600, never overwriting a concurrent writer's) if missing."""
    token_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if stat.S_IMODE(token_file.stat().st_mode) & 0o077:
            token_file.chmod(0o600)
        token = token_file.read_text().strip()
        if token:
            return token
        token_file.unlink()
        return ensure_token(token_file)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token
