"""The one loss every method is trained and validated with."""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F

from tuning_bench.engine.data import IGNORE


def supports_logits_to_keep(model: Any) -> bool:
    """Whether the underlying transformers model can compute logits for the last positions only."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # unwrap a PeftModel
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def last_positions(keep: int, device: torch.device) -> torch.Tensor:
    """``logits_to_keep`` for the last ``keep`` positions, as indices rather than a count.

    A count makes transformers slice a strided view of the hidden states; a frozen LM head over such
    a view runs as a batched product that reads the 49k x 576 head once per row of the batch. Indices
    copy the kept positions into one block, so the head is a single matrix product (1.6x faster for
    a training batch here, 3.3x for a 20-row prefill; bench/RESULTS.md). Negative, so they also hold
    when a soft prompt has put virtual tokens in front.
    """
    return torch.arange(-keep, 0, device=device)


def target_logits(model: Any, batch: dict[str, Any], use_keep: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at the positions that predict target tokens, and the labels they predict.

    With ``use_keep`` the LM head runs only over the final positions that predict targets; logits at
    position p predict token p + 1, so the kept logits are shifted against the labels.
    """
    labels = batch["labels"]
    keep = batch["keep"] if use_keep else labels.shape[1]
    kwargs = {"logits_to_keep": last_positions(keep, labels.device)} if use_keep else {}
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs).logits
    logits = logits[:, -keep:-1, :] if keep > 1 else logits[:, :0, :]
    return logits, labels[:, labels.shape[1] - keep + 1:]


def causal_target_loss(model: Any, batch: dict[str, Any], use_keep: bool) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over target tokens only (prompt and padding masked), and the token count."""
    logits, targets = target_logits(model, batch, use_keep)
    loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=IGNORE, reduction="sum")
    return loss, int((targets != IGNORE).sum())


def encoder_class_loss(model: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy of the sequence-classification head, and the example count."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = F.cross_entropy(logits.float(), batch["labels"], reduction="sum")
    return loss, int(batch["labels"].shape[0])
