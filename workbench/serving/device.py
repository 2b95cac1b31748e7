"""Which device a replica runs its model on, decided by a pure function so it is testable without a GPU.

``auto`` means the first CUDA device when there is one, else the CPU. Asking for CUDA on a machine
without it is refused when the endpoint is deployed, not when the first request arrives.

What "there is one" means depends on the runtime that will serve: a torch replica asks torch
(:func:`local_inventory`); an ONNX replica asks onnxruntime (:func:`onnx_inventory`), so that it never
imports torch just to count GPUs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from workbench.errors import ValidationError

_CUDA_RE = re.compile(r"^cuda(?::(\d+))?\Z")


@dataclass(frozen=True)
class DeviceInventory:
    cuda_devices: int


def select_device(requested: str, inventory: DeviceInventory) -> str:
    """Resolve ``auto``/``cpu``/``cuda``/``cuda:N`` to a concrete torch device string, or refuse."""
    if requested == "cpu":
        return "cpu"
    if requested == "auto":
        return "cuda:0" if inventory.cuda_devices > 0 else "cpu"
    match = _CUDA_RE.match(requested)
    if match is None:
        raise ValidationError(f"invalid device {requested!r}: use auto, cpu, cuda or cuda:N", field="device")
    index = int(match.group(1) or 0)
    if inventory.cuda_devices == 0:
        raise ValidationError(
            f"device {requested!r} requested but no CUDA device is available on this machine; "
            "use device=auto or device=cpu",
            field="device",
        )
    if index >= inventory.cuda_devices:
        raise ValidationError(
            f"device {requested!r} requested but only {inventory.cuda_devices} CUDA device(s) exist",
            field="device",
        )
    return f"cuda:{index}"


def local_inventory() -> DeviceInventory:
    """What this process sees (imports torch: for replicas, which load torch anyway)."""
    import torch

    return DeviceInventory(cuda_devices=torch.cuda.device_count() if torch.cuda.is_available() else 0)


def providers_inventory(available: Sequence[str], visible_gpus: int | None) -> DeviceInventory:
    """The inventory an onnxruntime with these ``available`` providers sees (pure, for tests).

    No CUDA provider means no CUDA device, whatever the hardware: onnxruntime could not use it. With one,
    ``visible_gpus`` is the count when it is known; when it is not, one device is assumed, and the session
    itself then proves it (:func:`workbench.serving.onnx_runner.open_session` refuses a CUDA replica whose
    session fell back to the CPU), so a wrong guess fails at start, never as a silently slow replica.
    """
    if "CUDAExecutionProvider" not in available:
        return DeviceInventory(cuda_devices=0)
    return DeviceInventory(cuda_devices=1 if visible_gpus is None else visible_gpus)


def onnx_inventory() -> DeviceInventory:
    """What an ONNX replica sees, from onnxruntime's providers: no torch import (hundreds of MB of RSS)."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    gpus = visible_gpu_count() if "CUDAExecutionProvider" in available else None
    return providers_inventory(available, gpus)


def visible_gpu_count() -> int | None:
    """GPUs this process may use without a CUDA library: ``CUDA_VISIBLE_DEVICES``, else ``nvidia-smi -L``.

    ``CUDA_VISIBLE_DEVICES`` lists devices up to its first invalid entry, as the CUDA runtime reads it
    (``""`` or ``-1`` hide every GPU); it is capped by what ``nvidia-smi`` lists. ``nvidia-smi`` failing
    means no usable driver: 0. None when neither can tell (no variable, no ``nvidia-smi``, e.g. a container
    with the driver libraries but not the tools).
    """
    listed = _nvidia_smi_count()
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return listed
    visible = 0
    for entry in value.split(","):
        entry = entry.strip()
        if not entry or entry.startswith("-"):
            break
        visible += 1
    return visible if listed is None else min(visible, listed)


def _nvidia_smi_count() -> int | None:
    command = shutil.which("nvidia-smi")
    if command is None:
        return None
    try:
        out = subprocess.run([command, "-L"], capture_output=True, text=True, timeout=15, check=True)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


@lru_cache(maxsize=1)
def probe_inventory() -> DeviceInventory:
    """What a replica on this machine would see, asked of a short-lived child process.

    The control plane stays free of torch (hundreds of MB of RSS) and still validates devices at deploy.
    """
    code = "import torch;print(torch.cuda.device_count() if torch.cuda.is_available() else 0)"
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
        )
        return DeviceInventory(cuda_devices=int(out.stdout.strip() or 0))
    except (OSError, subprocess.SubprocessError, ValueError):
        return DeviceInventory(cuda_devices=0)
