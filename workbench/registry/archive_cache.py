"""Model archives packed once per version and served from disk, a few packed at a time.

A version's files never change once registered (MLflow keeps its artifacts as logged), so the archive of
``GET /models/{name}/versions/{v}/model`` is built once and then served as a file: an image build that
fetches the same version for each of its layers, or a fleet of nodes pulling it at once, costs one
compression. The key carries the version's source and creation time as well as its number, so a name
deleted and registered again never serves the old files. Packing holds a core and the model's size in
disk writes: at most ``concurrency`` run at once, the rest wait their turn (callers asking for the same
version wait for the one build). The newest ``keep`` archives stay; older ones are removed.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

from workbench.registry.archive import pack_model
from workbench.registry.types import ModelVersionInfo


class ArchiveCache:
    def __init__(self, directory: Path, *, concurrency: int = 2, keep: int = 16) -> None:
        self.directory = directory
        self.keep = keep
        self._slots = threading.BoundedSemaphore(concurrency)
        self._guard = threading.Lock()
        #: One lock per archive ever asked for (a few bytes a version), never removed: removing one while a
        #: caller waits on it would let a third start a second build beside the first.
        self._building: dict[str, threading.Lock] = {}

    @staticmethod
    def key(info: ModelVersionInfo) -> str:
        identity = f"{info.name}\0{info.version}\0{info.source}\0{info.created_at.isoformat()}"
        return hashlib.sha256(identity.encode()).hexdigest()[:24]

    def path_of(self, info: ModelVersionInfo) -> Path:
        return self.directory / f"{info.name}-v{info.version}-{self.key(info)}.tar.gz"

    def archive(self, info: ModelVersionInfo, model_dir: Callable[[], Path]) -> Path:
        """The version's archive, packed from ``model_dir()`` unless an earlier call already did."""
        target = self.path_of(info)
        with self._guard:
            lock = self._building.setdefault(target.name, threading.Lock())
        with lock:
            if target.is_file():
                os.utime(target)  # recently served: the last to be pruned
                return target
            with self._slots:
                self.directory.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(f".{target.name}.{threading.get_ident()}.partial")
                try:
                    pack_model(model_dir(), partial)
                    os.replace(partial, target)
                finally:
                    partial.unlink(missing_ok=True)
        self._prune(keep_also=target)
        return target

    def _prune(self, *, keep_also: Path) -> None:
        dated: list[tuple[float, Path]] = []
        for path in self.directory.glob("*.tar.gz"):
            try:
                if path != keep_also:
                    dated.append((path.stat().st_mtime, path))
            except FileNotFoundError:  # another request pruned it meanwhile
                continue
        dated.sort(reverse=True)
        for _, old in dated[max(0, self.keep - 1) :]:
            old.unlink(missing_ok=True)  # a response still reading it keeps its open file
