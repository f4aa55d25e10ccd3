"""Linear layers' weights laid out once for the CPU's bf16 matrix kernels while a block of answering lasts.

Under CPU bf16 autocast every ``nn.Linear`` call hands oneDNN a plain row-major bf16 weight, which it
re-arranges into its blocked layout inside the call. At the shapes of decoding (one to a few dozen
rows) that re-arrangement is a large part of the call: on SmolLM2-135M's weights one row's product ran
1.3-1.9x faster with the weight laid out once (bench/RESULTS.md, "Evaluation, fourth pass").
``linears_packed`` lays each plain ``nn.Linear`` weight out once (``mkldnn._reorder_linear_weight``) and
routes the layer through oneDNN's product on it (``mkldnn._linear_pointwise``) until the block ends.

Answers must not change, and whether the two paths round alike depends on the kernels oneDNN picks for
this CPU, so it is checked here rather than assumed: for every weight shape the laid-out product is
compared bit for bit with the plain bf16 product on a few random rows, and a shape that differs is
left as it was. (On the one CPU measured so far, a 2-core AMD EPYC Zen 4, every shape matched and every
answer of the default run was unchanged; tests/test_packedlinear.py.)

Only where it applies: a CPU, bf16 autocast, oneDNN with bf16 support, and exactly ``nn.Linear`` (a
quantized layer subclasses it and keeps its own forward). Anywhere else the block does nothing. Like
``castcache``, the weights must not change inside the block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

CHECK_ROWS = (1, 7)  # one decode row, and an odd count that no kernel blocks evenly


def packing_applies(device: torch.device, autocast_dtype: torch.dtype | None) -> bool:
    """Whether linear layers can be laid out once here: CPU bf16 autocast with oneDNN's bf16 kernels."""
    if device.type != "cpu" or autocast_dtype != torch.bfloat16 or not torch.backends.mkldnn.is_available():
        return False
    ops = torch.ops.mkldnn
    # Private operators (torch's compiler lays out CPU weights with them): absent ones mean no packing.
    if not (hasattr(ops, "_reorder_linear_weight") and hasattr(ops, "_linear_pointwise")):
        return False
    return bool(ops._is_mkldnn_bf16_supported())


def _product(inputs: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(inputs, packed, bias, "none", [], "")  # no fused activation


def _matches_plain(weight: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """The laid-out product equals autocast's (bf16 operands, ``F.linear``) bit for bit on random rows."""
    generator = torch.Generator().manual_seed(0)  # its own: the run's random stream is left untouched
    for rows in CHECK_ROWS:
        inputs = torch.randn(rows, weight.shape[1], generator=generator).to(torch.bfloat16)
        if not torch.equal(_product(inputs, packed, bias), torch.nn.functional.linear(inputs, weight, bias)):
            return False
    return True


def _packed_forward(packed: torch.Tensor, bias: torch.Tensor | None) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(inputs: torch.Tensor) -> torch.Tensor:
        # autocast would cast a floating input to bf16 the same way before the same product
        return _product(inputs.to(torch.bfloat16), packed, bias)

    return forward


@contextmanager
def linears_packed(model: Any, device: torch.device, autocast_dtype: torch.dtype | None) -> Iterator[int]:
    """Inside this block every plain ``nn.Linear`` of ``model`` whose shape passes the bit-for-bit check
    computes from a weight laid out once for oneDNN (where ``packing_applies``); yields how many layers
    were packed. The layers are as before after the block."""
    if not packing_applies(device, autocast_dtype):
        yield 0
        return
    layers = [module for module in model.modules()
              if type(module) is torch.nn.Linear and module.weight.dtype in (torch.float32, torch.bfloat16)
              and module.weight.device.type == "cpu" and "forward" not in vars(module)]
    # Largest first: each layer briefly holds a plain bf16 copy beside its laid-out one, and the memory a
    # large one frees is reused by the smaller ones after it, so the block's peak stays that of the copies.
    layers.sort(key=lambda layer: layer.weight.numel(), reverse=True)
    matches: dict[tuple[tuple[int, ...], bool], bool] = {}
    packed_layers = []
    try:
        with torch.no_grad():
            for layer in layers:
                weight = layer.weight.detach().to(torch.bfloat16)
                bias = None if layer.bias is None else layer.bias.detach().to(torch.bfloat16)
                packed = torch.ops.mkldnn._reorder_linear_weight(weight, 1)  # the row hint changes no result
                key = (tuple(weight.shape), bias is not None)
                if key not in matches:
                    matches[key] = _matches_plain(weight, packed, bias)
                del weight  # before the next layer's copy is made
                if matches[key]:
                    layer.forward = _packed_forward(packed, bias)  # an instance attribute: found before the class's
                    packed_layers.append(layer)
        yield len(packed_layers)
    finally:
        for layer in packed_layers:
            vars(layer).pop("forward", None)
