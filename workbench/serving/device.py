"""Which device a replica runs its model on, decided by a pure function so it is testable without a GPU.

``auto`` means the first CUDA device when there is one, else the CPU. Asking for CUDA on a machine
without it is refused when the endpoint is deployed, not when the first request arrives.
"""

from __future__ import annotations

import re
import subprocess
import sys
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
