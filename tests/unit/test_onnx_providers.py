"""onnxruntime provider choice and the ONNX replica's device inventory, tested on the CPU.

The GPU paths are decided by pure functions of what onnxruntime reports available, so synthetic "available"
lists cover what this machine (no GPU, CPU-only onnxruntime) cannot.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from workbench.errors import ValidationError
from workbench.serving.device import (
    DeviceInventory,
    providers_inventory,
    select_device,
    visible_gpu_count,
)
from workbench.serving.providers import CPU, CUDA, TENSORRT, choose_providers, uses_gpu

CPU_ONLY = ["AzureExecutionProvider", CPU]
GPU_BUILD = [CUDA, CPU]
TRT_BUILD = [TENSORRT, CUDA, CPU]


@pytest.mark.parametrize("available", [CPU_ONLY, GPU_BUILD, TRT_BUILD])
def test_cpu_gets_only_the_cpu_provider_whatever_is_available(available: list[str]) -> None:
    assert choose_providers("cpu", available) == [(CPU, {})]


def test_cuda_gets_cuda_then_cpu_on_its_device() -> None:
    assert choose_providers("cuda:1", GPU_BUILD) == [(CUDA, {"device_id": 1}), (CPU, {})]


def test_tensorrt_comes_first_when_available_and_caches_its_engines(tmp_path: Path) -> None:
    providers = choose_providers("cuda:0", TRT_BUILD, engine_cache_dir=tmp_path)
    assert [name for name, _ in providers] == [TENSORRT, CUDA, CPU]
    trt = providers[0][1]
    assert trt["device_id"] == 0
    assert trt["trt_engine_cache_enable"] is True
    assert trt["trt_engine_cache_path"] == str(tmp_path)
    assert "trt_fp16_enable" not in trt, "reduced precision changes predictions: never a serving default"
    assert providers[1] == (CUDA, {"device_id": 0})


def test_tensorrt_without_a_cache_dir_has_only_its_device() -> None:
    assert choose_providers("cuda:2", TRT_BUILD)[0] == (TENSORRT, {"device_id": 2})


def test_the_list_always_ends_with_the_cpu() -> None:
    for device, available in (("cpu", CPU_ONLY), ("cuda:0", GPU_BUILD), ("cuda:0", TRT_BUILD)):
        assert choose_providers(device, available)[-1] == (CPU, {})


@pytest.mark.parametrize("available", [CPU_ONLY, [TENSORRT, CPU], []])
def test_cuda_without_a_cuda_provider_is_refused(available: list[str]) -> None:
    with pytest.raises(ValidationError, match="no CUDAExecutionProvider") as caught:
        choose_providers("cuda:0", available)
    assert "device=cpu" in caught.value.message
    assert caught.value.details["field"] == "device"


@pytest.mark.parametrize("device", ["auto", "cuda", "gpu", "cuda:x", ""])
def test_unresolved_devices_are_refused(device: str) -> None:
    """``select_device`` resolves auto/cuda first; anything else reaching here is a bug, said clearly."""
    with pytest.raises(ValidationError, match="expected cpu or cuda:N"):
        choose_providers(device, TRT_BUILD)


def test_uses_gpu_reads_the_session_providers() -> None:
    assert uses_gpu([CUDA, CPU])
    assert uses_gpu([TENSORRT, CUDA, CPU])
    assert not uses_gpu([CPU])


# --- the inventory an ONNX replica selects its device from --------------------------------------------------


@pytest.mark.parametrize(
    ("available", "gpus", "expected"),
    [
        (CPU_ONLY, None, 0),
        (CPU_ONLY, 4, 0),  # GPUs onnxruntime cannot use do not count
        (GPU_BUILD, None, 1),  # a CUDA provider and no way to count: one, and the session proves it
        (GPU_BUILD, 2, 2),
        (TRT_BUILD, 0, 0),  # a GPU build on a machine whose driver lists no GPU
    ],
)
def test_providers_inventory(available: list[str], gpus: int | None, expected: int) -> None:
    assert providers_inventory(available, gpus) == DeviceInventory(cuda_devices=expected)


def test_the_inventory_feeds_select_device_unchanged() -> None:
    assert select_device("auto", providers_inventory(CPU_ONLY, None)) == "cpu"
    assert select_device("auto", providers_inventory(GPU_BUILD, None)) == "cuda:0"
    with pytest.raises(ValidationError, match="no CUDA device is available"):
        select_device("cuda", providers_inventory(CPU_ONLY, None))


def _fake_nvidia_smi(directory: Path, gpus: int, *, fails: bool = False) -> None:
    """A stand-in for the NVIDIA tool on PATH (an external program, not one of ours)."""
    lines = "".join(f"echo 'GPU {i}: Fake GPU (UUID: GPU-{i})'\n" for i in range(gpus))
    script = directory / "nvidia-smi"
    script.write_text("#!/bin/sh\n" + ("exit 9\n" if fails else lines))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize(
    ("smi_gpus", "visible", "expected"),
    [
        (None, None, None),  # no tool, no variable: unknown
        (None, "0,1", 2),
        (None, "", 0),
        (None, "-1", 0),
        (None, "1,-1,0", 1),  # CUDA stops at the first invalid entry
        (3, None, 3),
        (3, "2", 1),
        (1, "0,1,2", 1),  # capped by what the driver lists
    ],
)
def test_visible_gpu_count(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    smi_gpus: int | None,
    visible: str | None,
    expected: int | None,
) -> None:
    if smi_gpus is not None:
        _fake_nvidia_smi(tmp_path, smi_gpus)
    monkeypatch.setenv("PATH", str(tmp_path) + (os.pathsep + "/bin" if smi_gpus is not None else ""))
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert visible_gpu_count() == expected


def test_a_failing_nvidia_smi_means_no_usable_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_nvidia_smi(tmp_path, 2, fails=True)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/bin")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_gpu_count() == 0
