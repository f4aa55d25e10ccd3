"""A prompt of real vocabulary tokens in front of every input of a frozen causal LM, trainable by projection.

Used by the ``hard-prompt`` method (Wen et al. 2023, "Hard Prompts Made Easy", PEZ). The module holds
continuous prompt embeddings P; the prompt's tokens are, row by row, the vocabulary entries nearest to P
by cosine similarity. In training mode the forward puts the embeddings of those tokens (P') in front of
the input and routes the gradient taken at P' to P (a straight-through estimator). In evaluation mode it
puts the token ids themselves in front: the model reads ordinary tokens, as it would from a prompt typed
by hand. A prompt rebuilt from saved token ids (``DiscretePrompt.of_tokens``) has no parameters at all.

The prompt goes before the whole formatted input (before a chat template's first turn), where prompt
tuning's virtual tokens go, and with positions counted from the prompt's first token, so a left-padded
row computes what the same row computes alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F


def blocked_ids(tokenizer: Any, rows: int) -> list[int]:
    """Embedding rows the prompt may not use: special and added tokens (end of turn, padding: markers, not
    words) and rows beyond the tokenizer's vocabulary (padding of the embedding matrix: no token at all)."""
    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    return sorted({i for i in special if 0 <= i < rows} | set(range(len(tokenizer), rows)))


class DiscretePrompt(torch.nn.Module):
    """A frozen causal LM with a discrete prompt in front of every input.

    ``soft``: the continuous embeddings P (tokens x hidden), the only trainable tensor; or ``tokens``: fixed
    token ids (a trained prompt loaded for inference, no parameters). ``forward`` takes what a causal LM's
    forward takes, as the engine calls it (``input_ids``, ``attention_mask``, ``position_ids``,
    ``past_key_values``, ``logits_to_keep``) and returns the model's output, logits of the prompt's
    positions included when all positions are asked for.
    """

    def __init__(self, model: Any, blocked: Sequence[int], soft: torch.Tensor | None = None,
                 tokens: Sequence[int] | None = None) -> None:
        super().__init__()
        if (soft is None) == (tokens is None):
            raise ValueError("give either soft (trainable embeddings) or tokens (fixed ids)")
        self.model = model
        self.soft = torch.nn.Parameter(soft.detach().clone()) if soft is not None else None
        self.register_buffer("fixed", None if tokens is None else torch.tensor(list(tokens), dtype=torch.long),
                             persistent=False)
        self.register_buffer("blocked", torch.tensor(list(blocked), dtype=torch.long), persistent=False)

    @classmethod
    def of_tokens(cls, model: Any, tokens: Sequence[int]) -> DiscretePrompt:
        """A fixed prompt of ``tokens`` (e.g. a saved state): nothing to train, no parameters added."""
        return cls(model, [], tokens=tokens)

    @property
    def length(self) -> int:
        return int(self.fixed.shape[0] if self.soft is None else self.soft.shape[0])

    def get_base_model(self) -> Any:
        """The frozen model underneath (PEFT's name for it, by which the engine unwraps a model)."""
        return self.model

    @torch.no_grad()
    def token_ids(self) -> torch.Tensor:
        """The prompt's token ids: for each row of P the nearest vocabulary embedding by cosine similarity.

        Cosine, not dot product, as PEZ's ``nn_project`` (both sides normalised): a dot product would favour
        tokens with long embeddings whatever their direction. Always in fp32, so bf16 autocast cannot flip
        a near tie between two tokens.
        """
        if self.soft is None:
            return self.fixed
        with torch.autocast(device_type=self.soft.device.type, enabled=False):
            table = self.model.get_input_embeddings().weight.float()
            # P normalised times the table, divided by the table's row norms: cosine without a normalised
            # copy of the (vocabulary x hidden) table.
            scores = F.normalize(self.soft.float(), dim=-1) @ table.T / table.norm(dim=-1).clamp(min=1e-12)
            scores[:, self.blocked] = -torch.inf
            return scores.argmax(dim=-1)

    def projected(self) -> torch.Tensor:
        """P + (P' - P) with the gradient of P: the values are exactly P' (x - x is exactly 0), the gradient
        taken at P' goes to P. The straight-through estimator of PEZ's Algorithm 1."""
        words = self.model.get_input_embeddings()(self.token_ids()).detach()
        return words + (self.soft - self.soft.detach())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, past_key_values: Any = None, **kwargs: Any) -> Any:
        rows, length = input_ids.shape[0], self.length
        if attention_mask is not None:  # the prompt is always attended to
            attention_mask = torch.cat([attention_mask.new_ones(rows, length), attention_mask], dim=1)
        if position_ids is not None:  # the input's tokens come after the prompt
            position_ids = position_ids + length
        if past_key_values is not None and past_key_values.get_seq_length() > 0:
            # A later decoding step: the prompt is in the cache already; only the mask and positions see it.
            return self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                              past_key_values=past_key_values, **kwargs)
        if position_ids is not None:
            position_ids = torch.cat([torch.arange(length, device=position_ids.device).expand(rows, -1),
                                      position_ids], dim=1)
        inputs: dict[str, torch.Tensor]
        if self.training and self.soft is not None:
            words = self.model.get_input_embeddings()(input_ids)
            prompt = self.projected().to(words.dtype).expand(rows, -1, -1)
            inputs = {"inputs_embeds": torch.cat([prompt, words], dim=1)}
        else:  # the prompt as real token ids: what a user would type
            inputs = {"input_ids": torch.cat([self.token_ids().to(input_ids.device).expand(rows, -1), input_ids], dim=1)}
        return self.model(**inputs, attention_mask=attention_mask, position_ids=position_ids,
                          past_key_values=past_key_values, **kwargs)
