"""Device selection, tested on the CPU: the GPU paths are decided by the same pure function."""

from __future__ import annotations

import pytest

from workbench.errors import ValidationError
from workbench.serving.device import DeviceInventory, local_inventory, select_device

NO_GPU = DeviceInventory(cuda_devices=0)
TWO_GPUS = DeviceInventory(cuda_devices=2)


@pytest.mark.parametrize(
    ("requested", "inventory", "expected"),
    [
        ("auto", NO_GPU, "cpu"),
        ("auto", TWO_GPUS, "cuda:0"),
        ("cpu", TWO_GPUS, "cpu"),
        ("cuda", TWO_GPUS, "cuda:0"),
        ("cuda:1", TWO_GPUS, "cuda:1"),
    ],
)
def test_select_device(requested: str, inventory: DeviceInventory, expected: str) -> None:
    assert select_device(requested, inventory) == expected


@pytest.mark.parametrize(
    ("requested", "inventory", "message"),
    [
        ("cuda", NO_GPU, "no CUDA device is available"),
        ("cuda:0", NO_GPU, "no CUDA device is available"),
        ("cuda:2", TWO_GPUS, "only 2 CUDA device"),
        ("gpu", TWO_GPUS, "invalid device"),
        ("cuda:x", TWO_GPUS, "invalid device"),
    ],
)
def test_impossible_devices_are_refused(requested: str, inventory: DeviceInventory, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        select_device(requested, inventory)


def test_this_machine_resolves_auto_to_what_torch_sees() -> None:
    import torch

    inventory = local_inventory()
    assert inventory.cuda_devices == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert select_device("auto", inventory) == ("cuda:0" if inventory.cuda_devices else "cpu")
