"""Which onnxruntime execution providers a replica asks for, decided by a pure function of the device.

onnxruntime tries providers in order and gives each node to the first that can run it, so the list goes
from the most specialised to the CPU: TensorRT (when the build has it), then CUDA, then always the CPU,
which runs whatever the GPU providers cannot (shape arithmetic, unsupported operators) instead of the
session failing. The device is the one :func:`workbench.serving.device.select_device` resolved: ``cpu``
or ``cuda:N``.

The MLmodel's own ``providers`` list (MLflow writes ``[CUDA, CPU]`` whatever the machine) is ignored: the
endpoint's device decides, so one registered model serves on a CPU replica and a GPU replica alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from workbench.errors import ValidationError

TENSORRT: Final[str] = "TensorrtExecutionProvider"
CUDA: Final[str] = "CUDAExecutionProvider"
CPU: Final[str] = "CPUExecutionProvider"

ProviderOptions = dict[str, str | int | bool]
Provider = tuple[str, ProviderOptions]

_CUDA_DEVICE_RE: Final = re.compile(r"^cuda:(\d+)\Z")


def choose_providers(
    device: str, available: Sequence[str], *, engine_cache_dir: Path | None = None
) -> list[Provider]:
    """The ordered providers (with their options) for ``device``, given what onnxruntime reports available.

    ``engine_cache_dir`` is where TensorRT keeps the engines it builds: building one takes from seconds to
    minutes per input-shape range, and without a cache every replica start (a restart, a scale-up, a
    rollout) pays it again. It must belong to one model: onnxruntime names an engine after the graph and
    the GPU, not the weights, so two versions of one architecture sharing a directory would share engines
    (see :func:`workbench.serving.onnx_runner.engine_cache_dir`). TensorRT's FP16/INT8 modes stay off:
    they change predictions, which is an optimisation to choose and validate explicitly, not a default.
    """
    if device == "cpu":
        return [(CPU, {})]
    match = _CUDA_DEVICE_RE.match(device)
    if match is None:
        raise ValidationError(
            f"cannot choose onnxruntime providers for device {device!r}: expected cpu or cuda:N",
            field="device",
        )
    if CUDA not in available:
        raise ValidationError(
            f"device {device!r} requested but this onnxruntime has no {CUDA} "
            f"(available: {', '.join(available) or 'none'}); install onnxruntime-gpu or use device=cpu",
            field="device",
        )
    device_id = int(match.group(1))
    providers: list[Provider] = []
    if TENSORRT in available:
        tensorrt: ProviderOptions = {"device_id": device_id}
        if engine_cache_dir is not None:
            tensorrt.update(
                trt_engine_cache_enable=True,
                trt_engine_cache_path=str(engine_cache_dir),
                trt_timing_cache_enable=True,
                trt_timing_cache_path=str(engine_cache_dir),
            )
        providers.append((TENSORRT, tensorrt))
    providers.append((CUDA, {"device_id": device_id}))
    providers.append((CPU, {}))
    return providers


def uses_gpu(providers: Sequence[str]) -> bool:
    """Whether a session's providers (as ``InferenceSession.get_providers()`` reports them) include a GPU one."""
    return TENSORRT in providers or CUDA in providers
