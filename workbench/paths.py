"""Paths a caller asks the control plane to read are confined to configured roots.

The control plane runs with the user's permissions; without this check an API token would be a
licence to read any file on the machine (``/etc/shadow`` as a "reference dataset").
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from workbench.errors import NotFoundError, PermissionDeniedError, ValidationError


def resolve_allowed(raw: str | Path, roots: Iterable[Path], *, field: str, kind: str = "any") -> Path:
    """Resolve symlinks and ``..`` first, then require the result to sit under one of ``roots``."""
    text = str(raw)
    if not text or "\x00" in text:
        raise ValidationError(f"{field} is not a valid path", field=field)
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise ValidationError(f"{field} must be an absolute path, got {text!r}", field=field)
    resolved = require_within(path, roots, field=field, shown=text)
    if not resolved.exists():
        raise NotFoundError(f"{field} {text!r} does not exist", field=field)
    if kind == "dir" and not resolved.is_dir():
        raise ValidationError(f"{field} {text!r} is not a directory", field=field)
    if kind == "file" and not resolved.is_file():
        raise ValidationError(f"{field} {text!r} is not a file", field=field)
    return resolved


def require_within(path: Path, roots: Iterable[Path], *, field: str, shown: str) -> Path:
    """``path`` resolved (symlinks, ``..``), refused unless it sits under one of ``roots``; it need not
    exist (an output directory to be made)."""
    resolved = path.resolve()
    allowed = [root.resolve() for root in roots]
    if not any(resolved == root or resolved.is_relative_to(root) for root in allowed):
        raise PermissionDeniedError(
            f"{field} {shown!r} is outside the allowed roots",
            field=field,
            allowed_roots=[str(r) for r in allowed],
        )
    return resolved


def write_atomic(path: Path, text: str) -> None:
    """Readers (Prometheus, a user's tools) see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
