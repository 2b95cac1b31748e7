"""Variants made in torch: dynamic int8 quantisation and structured pruning of an MLP's hidden units.

Both start from the parent's *folded* form (``module.folded()`` when the module has one): a module that
recomputes its weights on every call (weight normalisation left in) hides its real weights from the
``nn.Linear`` layers these transforms work on.

Pruning removes whole hidden units, not single weights: zeroed weights in a dense matrix cost exactly as
much to multiply, so unstructured sparsity would make a variant no faster on CPU. Units are ranked by
how much they can pass on (the norm of their incoming row times the norm of their outgoing column).
"""

from __future__ import annotations

import copy
import itertools
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from workbench.errors import ValidationError

_ELEMENTWISE = (nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.Identity, nn.Dropout)


def folded(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose weights are plain parameters of its layers (the parent is never changed)."""
    fold = getattr(module, "folded", None)
    twin = fold() if callable(fold) else copy.deepcopy(module)
    if not isinstance(twin, nn.Module):
        raise ValidationError(
            f"{type(module).__name__}.folded() returned a {type(twin).__name__}, not a module"
        )
    return twin.eval()


def dynamic_int8(module: nn.Module) -> nn.Module:
    """Linear layers with int8 weights, activations quantised per batch at run time (no calibration data).

    ``torch.ao.quantization.quantize_dynamic`` is deprecated in favour of torchao, which this install does
    not carry; its warning says so on every call and is silenced here, not ignored: the docs say it.
    """
    base = folded(module)
    if not any(isinstance(layer, nn.Linear) for layer in base.modules()):
        raise ValidationError(
            f"dynamic-int8 quantises nn.Linear layers and {type(module).__name__} has none", field="method"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize: Any = torch.ao.quantization.quantize_dynamic
        quantized: nn.Module = quantize(base, {nn.Linear}, dtype=torch.qint8)
    return quantized.eval()


def linear_chains(module: nn.Module) -> Iterator[nn.Sequential]:
    """The ``nn.Sequential`` blocks made only of Linear layers and element-wise activations (MLP bodies)."""
    for block in module.modules():
        if not isinstance(block, nn.Sequential):
            continue
        layers = list(block)
        linears = [layer for layer in layers if isinstance(layer, nn.Linear)]
        if len(linears) >= 2 and all(isinstance(layer, (nn.Linear, *_ELEMENTWISE)) for layer in layers):
            yield block


def prune_hidden_units(module: nn.Module, amount: float) -> tuple[nn.Module, dict[str, Any]]:
    """Remove ``amount`` of every hidden layer's units (at least one kept), shrinking the matrices themselves."""
    base = folded(module)
    chains = list(linear_chains(base))
    if not chains:
        raise ValidationError(
            f"prune removes hidden units of an MLP (an nn.Sequential of Linear layers and activations) and "
            f"{type(module).__name__} has none",
            field="method",
        )
    before: list[int] = []
    after: list[int] = []
    for chain in chains:
        positions = [i for i, layer in enumerate(chain) if isinstance(layer, nn.Linear)]
        for here, following in itertools.pairwise(positions):
            layer, successor = chain[here], chain[following]
            assert isinstance(layer, nn.Linear)
            assert isinstance(successor, nn.Linear)
            width = layer.out_features
            keep_count = max(1, round(width * (1.0 - amount)))
            saliency = layer.weight.detach().norm(dim=1) * successor.weight.detach().norm(dim=0)
            keep = torch.sort(torch.topk(saliency, keep_count).indices).values
            chain[here] = _rows(layer, keep)
            chain[following] = _columns(successor, keep)
            before.append(width)
            after.append(keep_count)
    parameters = sum(p.numel() for p in base.parameters())
    return base.eval(), {"hidden_before": before, "hidden_after": after, "parameters": parameters}


def _rows(layer: nn.Linear, keep: torch.Tensor) -> nn.Linear:
    out = nn.Linear(layer.in_features, len(keep), bias=layer.bias is not None)
    with torch.no_grad():
        out.weight.copy_(layer.weight[keep])
        if layer.bias is not None and out.bias is not None:
            out.bias.copy_(layer.bias[keep])
    return out


def _columns(layer: nn.Linear, keep: torch.Tensor) -> nn.Linear:
    out = nn.Linear(len(keep), layer.out_features, bias=layer.bias is not None)
    with torch.no_grad():
        out.weight.copy_(layer.weight[:, keep])
        if layer.bias is not None and out.bias is not None:
            out.bias.copy_(layer.bias)
    return out
