"""Cast a model's weights to the autocast precision once per block of answering, not at every forward pass.

Under autocast every matrix product casts its fp32 weight to bf16 (or fp16) on each call. torch keeps
the cast copy for the rest of the outermost autocast block only for a leaf tensor that requires grad
(its rule for the weights of a model in training), so a frozen base model (LoRA's, IA3's, a soft
prompt's) was cast anew at every decode step: on SmolLM2-135M under CPU bf16 autocast those casts were
45 % of a one-prompt answer's time (bench/RESULTS.md, "Evaluation"), while the zero-shot model, whose
weights require grad, had them cached. ``weights_cast_once`` makes every frozen floating-point weight
eligible for that cache for the duration of the block and opens the outer autocast block, so each
weight is cast at its first use and the copy is reused. The arithmetic is unchanged (the same cast of
the same tensor, made once), so answers are bit-identical; the cost is one copy of the cast weights
held while the block lasts (what a model served in bf16 holds anyway).

The weights must not change inside the block (a merge, a training step): the cached copies would be
stale. Outside autocast (fp32) the block is only ``torch.no_grad()``. On a CPU under bf16 autocast the block
also lays the linear layers' weights out once for oneDNN (``engine.packedlinear``), which replaces their
casts (the laid-out copy is bf16) and speeds the products of decoding; the answers stay bit-identical.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from tuning_bench.engine.packedlinear import linears_packed


@contextmanager
def weights_cast_once(model: Any, device: torch.device, autocast_dtype: torch.dtype | None) -> Iterator[None]:
    """Answer with ``model`` inside this block: no gradients, and under ``autocast_dtype`` each weight cast
    once and reused until the block ends (then the copies are freed and ``requires_grad`` is as before)."""
    if autocast_dtype is None:
        with torch.no_grad():
            yield
        return
    # Only what autocast's cache accepts: fp32 leaves (a quantized base's integer weights are never cast).
    frozen = [p for p in model.parameters() if not p.requires_grad and p.dtype == torch.float32 and p.is_leaf]
    for parameter in frozen:
        parameter.requires_grad_(True)
    try:
        # no_grad: with requires_grad set, a forward pass would otherwise record a graph through the base.
        with torch.no_grad(), torch.autocast(device_type=device.type, dtype=autocast_dtype), \
                linears_packed(model, device, autocast_dtype):
            yield
    finally:
        for parameter in frozen:
            parameter.requires_grad_(False)
