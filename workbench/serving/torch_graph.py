"""A torch model served as a TorchScript trace, when the trace is shown to give the model's own outputs.

Why: an eager forward returns to Python after every layer and must take the GIL back each time. A busy
replica's event loop holds the GIL while it decodes and answers the other requests, so each layer of the
forward waits for it, up to the interpreter's switch interval: on the benchmark's heavy model the
inference thread sat idle for a quarter of the time while requests queued. A trace runs the whole forward
in C++ and releases the GIL once.

A trace is verified, not trusted. Tracing records one run and drops the Python around it (branches on
values, shape checks), so the trace is kept only if it reproduces the eager module's outputs on inputs of
several batch sizes; otherwise, or if tracing fails, the replica serves the eager module and says why
(``LoadedModel.details["graph"]``). Outputs are all a comparison can see: Python side effects in
``forward`` (logging, counters, sleeps) are dropped from a trace that matches, which is why an endpoint
asks for it (``torchscript: true``) rather than getting it by default.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from workbench.serving.schema import ModelSchema

__all__ = ["TRACE_ROWS", "VERIFY_ROWS", "as_graph", "sample_matrix"]

#: Rows of the batch the trace is recorded with, and of the batches it must then reproduce.
TRACE_ROWS = 8
VERIFY_ROWS = (1, 3, 64)
_RTOL = 1e-4
_ATOL = 1e-5


def sample_matrix(schema: ModelSchema, rows: int, seed: int = 0) -> np.ndarray[Any, Any] | None:
    """What the runner would get for ``rows`` rows, filled with small integers (valid for numeric columns,
    category codes and flags alike); None when the input is not numeric or its shape is not fixed."""
    runner_input = schema.runner_input(rows)
    if runner_input is None:
        return None
    shape, dtype = runner_input
    return np.random.default_rng(seed).integers(0, 3, size=shape).astype(dtype)


def as_graph(module: Any, schema: ModelSchema, device: Any) -> tuple[Any, str]:
    """``(trace, "torchscript")`` when the trace reproduces ``module``; else ``(module, "eager: why")``."""
    import torch

    if isinstance(module, torch.jit.ScriptModule):
        return module, "torchscript (saved as such)"
    sample = sample_matrix(schema, TRACE_ROWS)
    if sample is None:
        return module, "eager: inputs that cannot be sampled (not numeric, or no fixed shape)"
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            # Tracer warnings flag Python the trace drops; the verification below is what decides.
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(  # type: ignore[no-untyped-call]
                module, torch.from_numpy(sample).to(device), check_trace=False, strict=False
            )
            for rows in VERIFY_ROWS:
                inputs = torch.from_numpy(_sample(schema, rows)).to(device)
                mismatch = _mismatch(module(inputs), traced(inputs), torch)
                if mismatch is not None:
                    return module, f"eager: the trace differs from the module at {rows} rows ({mismatch})"
    except Exception as exc:  # a model the tracer cannot follow is served as it is
        return module, f"eager: tracing failed ({type(exc).__name__}: {str(exc)[:200]})"
    return traced, "torchscript"


def _sample(schema: ModelSchema, rows: int) -> np.ndarray[Any, Any]:
    sample = sample_matrix(schema, rows, seed=rows)
    assert sample is not None  # the trace's own sample was built from the same schema
    return sample


def _mismatch(expected: Any, got: Any, torch: Any) -> str | None:
    """Why two outputs differ (structure, shape, values), or None when they agree within tolerance."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"{type(got).__name__} instead of a tensor"
        if expected.shape != got.shape or expected.dtype != got.dtype:
            return f"shape {tuple(got.shape)} {got.dtype}, expected {tuple(expected.shape)} {expected.dtype}"
        if expected.is_floating_point():
            same = torch.allclose(expected, got, rtol=_RTOL, atol=_ATOL, equal_nan=True)
        else:
            same = torch.equal(expected, got)
        return None if same else "values"
    if isinstance(expected, list | tuple):
        if not isinstance(got, list | tuple) or len(got) != len(expected):
            return "a different number of outputs"
        for one, other in zip(expected, got, strict=True):
            why = _mismatch(one, other, torch)
            if why is not None:
                return why
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict) or set(got) != set(expected):
            return "different output names"
        for name, one in expected.items():
            why = _mismatch(one, got[name], torch)
            if why is not None:
                return f"{name}: {why}"
        return None
    return f"an output of type {type(expected).__name__}"
