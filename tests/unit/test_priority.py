"""The control plane's background threads yield to serving; its other threads keep their priority."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from workbench.errors import ValidationError
from workbench.priority import BACKGROUND_NICE, lower_this_thread
from workbench.settings import Settings

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="per-thread priorities are Linux's"
)


def _in_a_thread(*steps: int) -> list[int | None]:
    seen: list[int | None] = []

    def run() -> None:
        for nice in steps:
            seen.append(lower_this_thread(nice))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return seen


@linux_only
def test_only_the_calling_thread_is_lowered() -> None:
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    (after,) = _in_a_thread(BACKGROUND_NICE)
    assert after == max(before, BACKGROUND_NICE)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


@linux_only
def test_a_thread_is_never_raised_and_zero_leaves_it_alone() -> None:
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert _in_a_thread(base + 7, base + 3, 0) == [min(19, base + 7), min(19, base + 7), None]


def test_the_setting_comes_from_the_environment_and_is_checked(tmp_path: Path) -> None:
    home = {"WORKBENCH_HOME": str(tmp_path)}
    assert Settings.from_env(home).background_nice == BACKGROUND_NICE
    assert Settings.from_env({**home, "WORKBENCH_BACKGROUND_NICE": "0"}).background_nice == 0
    for bad in ("-1", "20", "five"):
        with pytest.raises(
            ValidationError, match="WORKBENCH_BACKGROUND_NICE must be an integer from 0 to 19"
        ):
            Settings.from_env({**home, "WORKBENCH_BACKGROUND_NICE": bad})
