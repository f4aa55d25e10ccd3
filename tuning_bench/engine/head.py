"""The classification head of an encoder: new for every task, so the engine trains it for every method."""

from __future__ import annotations

from typing import Any

import torch

from tuning_bench.api.kinds import ModelKind

HEAD_NAMES = ("classifier", "score")  # BERT-style and Llama-style sequence-classification heads


def unfreeze_head(model: Any) -> list[str]:
    """Set ``requires_grad`` on the sequence-classification head; returns the names of the tensors unfrozen.

    Leaves the model alone when PEFT already trains a copy of the head (``modules_to_save``): unfreezing
    the wrapped original too would train it twice over.
    """
    if any(name.endswith("modules_to_save") for name, _ in model.named_modules()):
        return []
    unfrozen = []
    for name, parameter in model.named_parameters():
        if set(name.split(".")[:-1]) & set(HEAD_NAMES) and not parameter.requires_grad:
            parameter.requires_grad_(True)
            unfrozen.append(name)
    return unfrozen


def adapt_for_training(method: Any, loaded: Any, task: Any, config: Any) -> Any:
    """``method.adapt``, then the engine's part: on an encoder, a trained method also trains the head."""
    adapted = method.adapt(loaded, task, config)
    if not isinstance(adapted, torch.nn.Module):  # a plugin bug: say so instead of failing on .to() later
        from tuning_bench.engine.cell import CellFailed

        raise CellFailed(f"method '{method.name}': adapt() returned {type(adapted).__name__}, not a model; "
                         "it must return the model to train (a torch.nn.Module, e.g. loaded.model or a PEFT model)")
    if method.trains and loaded.kind is ModelKind.ENCODER:
        unfreeze_head(adapted)
    return adapted
