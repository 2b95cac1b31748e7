"""Paths a caller asks the control plane to read are confined to configured roots.

The control plane runs with the user's permissions; without this check an API token would be a
licence to read any file on the machine (``/etc/shadow`` as a "reference dataset").
"""

from __future__ import annotations

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
    resolved = path.resolve()
    allowed = [root.resolve() for root in roots]
    if not any(resolved == root or resolved.is_relative_to(root) for root in allowed):
        raise PermissionDeniedError(
            f"{field} {text!r} is outside the allowed roots",
            field=field,
            allowed_roots=[str(r) for r in allowed],
        )
    if not resolved.exists():
        raise NotFoundError(f"{field} {text!r} does not exist", field=field)
    if kind == "dir" and not resolved.is_dir():
        raise ValidationError(f"{field} {text!r} is not a directory", field=field)
    if kind == "file" and not resolved.is_file():
        raise ValidationError(f"{field} {text!r} is not a file", field=field)
    return resolved
