"""The model-archive cache: one pack per version however many ask, a bounded number at once, old ones
pruned, and a re-registered name never served its predecessor's files."""

from __future__ import annotations

import tarfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from workbench.registry.archive_cache import ArchiveCache
from workbench.registry.types import ModelVersionInfo


def _info(version: int, created: datetime | None = None) -> ModelVersionInfo:
    return ModelVersionInfo(
        name="churn",
        version=version,
        status="READY",
        source=f"runs:/abc/model-{version}",
        created_at=created or datetime(2026, 12, 1, tzinfo=UTC),
    )


def _model_dir(root: Path, marker: str) -> Path:
    model = root / f"model-{marker}"
    model.mkdir(parents=True, exist_ok=True)
    (model / "MLmodel").write_text(f"flavors: {{}}\n# {marker}\n")
    return model


def _ready(model: Path) -> Callable[[], Path]:
    return lambda: model


def test_concurrent_requests_for_one_version_pack_it_once(tmp_path: Path) -> None:
    cache = ArchiveCache(tmp_path / "cache")
    calls: list[int] = []

    def model_dir() -> Path:
        calls.append(1)
        time.sleep(0.2)  # a slow download: the others must wait for it, not start their own
        return _model_dir(tmp_path, "v1")

    paths: list[Path] = []
    threads = [
        threading.Thread(target=lambda: paths.append(cache.archive(_info(1), model_dir))) for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert len(set(paths)) == 1
    with tarfile.open(paths[0]) as archive:
        assert "model/MLmodel" in archive.getnames()
    assert not list((tmp_path / "cache").glob(".*partial"))


def test_at_most_the_concurrency_limit_packs_at_once(tmp_path: Path) -> None:
    cache = ArchiveCache(tmp_path / "cache", concurrency=2)
    running, peak = 0, 0
    guard = threading.Lock()

    def model_dir_of(version: int) -> Path:
        nonlocal running, peak
        with guard:
            running += 1
            peak = max(peak, running)
        time.sleep(0.1)
        with guard:
            running -= 1
        return _model_dir(tmp_path, f"v{version}")

    threads = [
        threading.Thread(target=cache.archive, args=(_info(v), lambda v=v: model_dir_of(v)))
        for v in range(1, 7)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 2
    assert len(list((tmp_path / "cache").glob("*.tar.gz"))) == 6


def test_a_name_registered_again_gets_a_new_archive(tmp_path: Path) -> None:
    cache = ArchiveCache(tmp_path / "cache")
    first = cache.archive(_info(1), lambda: _model_dir(tmp_path, "old"))
    later = _info(1, created=datetime(2026, 12, 1, tzinfo=UTC) + timedelta(days=1))
    second = cache.archive(later, lambda: _model_dir(tmp_path, "new"))
    assert first != second
    with tarfile.open(second) as archive:
        member = archive.extractfile("model/MLmodel")
        assert member is not None
        assert b"new" in member.read()


def test_only_the_newest_archives_are_kept(tmp_path: Path) -> None:
    cache = ArchiveCache(tmp_path / "cache", keep=3)
    made = []
    for version in range(1, 6):
        model = _model_dir(tmp_path, f"v{version}")
        made.append(cache.archive(_info(version), _ready(model)))
        time.sleep(0.01)  # distinct modification times
    assert sorted(p.name for p in (tmp_path / "cache").glob("*.tar.gz")) == sorted(p.name for p in made[2:])
    again = cache.archive(_info(3), lambda: _model_dir(tmp_path, "v3"))  # served: now the newest
    assert again == made[2]
    cache.archive(_info(6), lambda: _model_dir(tmp_path, "v6"))
    assert made[2].is_file()
    assert not made[3].is_file()
