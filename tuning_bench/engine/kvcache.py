"""A KV cache with room reserved for the answer, so a decode step writes its keys and values in place.

transformers' ``DynamicLayer`` appends each step's keys and values with ``torch.cat``, which copies the
whole cache of every layer at every step: on SmolLM2-135M answering 80 prompts in one batch (CPU, bf16
autocast) those copies were 14 % of generation time (bench/RESULTS.md, "Evaluation"). The engine's
loops know how many tokens an answer may add, so after the prompt's pass each plain dynamic layer is
replaced by one that holds the same keys and values in a buffer with that much room and hands out views
of its filled part: the same values, written once.

Under autocast the buffers hold the autocast precision. transformers' dynamic layer stores the keys as
RoPE leaves them, in fp32 (fp32 cos and sin promote the bf16 projection), and the values with them
(its first ``torch.cat`` promotes to the keys' dtype); attention then cast the whole cache to bf16 again
at every step (on SmolLM2-135M answering 80 prompts on a 2-core CPU, 10 % of generation time; bench/
RESULTS.md, "Evaluation, fifth pass"). Storing each position cast once gives attention the values it cast
to anyway, at half the memory.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import DynamicLayer


class _RoomyLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values are views of buffers with room for more positions."""

    def __init__(self, layer: DynamicLayer, room: int) -> None:
        super().__init__()
        self.dtype, self.device, self.is_initialized = _stored_dtype(layer.keys), layer.device, True
        self._filled = layer.keys.shape[-2]
        self._keys = self._reserve(layer.keys, room)
        self._values = self._reserve(layer.values, room)
        self._expose()

    def _reserve(self, states: torch.Tensor, room: int) -> torch.Tensor:
        shape = list(states.shape)
        shape[-2] += room
        buffer = states.new_empty(shape, dtype=self.dtype)
        buffer[..., : self._filled, :] = states  # cast as autocast casts: round to nearest
        return buffer

    def _expose(self) -> None:
        self.keys = self._keys[..., : self._filled, :]
        self.values = self._values[..., : self._filled, :]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
               ) -> tuple[torch.Tensor, torch.Tensor]:
        end = self._filled + key_states.shape[-2]
        if end > self._keys.shape[-2]:  # more than was reserved: grow as DynamicLayer does
            self._keys = torch.cat([self._keys[..., : self._filled, :], key_states.to(self.dtype)], dim=-2)
            self._values = torch.cat([self._values[..., : self._filled, :], value_states.to(self.dtype)], dim=-2)
        else:
            self._keys[..., self._filled:end, :] = key_states
            self._values[..., self._filled:end, :] = value_states
        self._filled = end
        self._expose()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep the rows ``indices`` names, in that order.

        When the first rows stay in place and only rows from beyond the new size move into the places of
        finished ones (the order the engine's loop asks for: ``generation.fill_order``), only the moved rows
        are copied and the buffers are cut to the new size by a view. Copying every kept row of every
        layer instead was 7 % of answering 80 prompts on a 2-core CPU (bench/RESULTS.md, "Evaluation").
        """
        rows = indices.shape[0]
        moved = (indices != torch.arange(rows, device=indices.device)).nonzero().squeeze(-1)
        sources = indices[moved]
        if bool((sources >= rows).all()):  # no kept row is overwritten before it is read
            if moved.numel():
                self._keys[moved] = self._keys[sources]
                self._values[moved] = self._values[sources]
            self._keys, self._values = self._keys[:rows], self._values[:rows]
        else:
            self._keys, self._values = self._keys.index_select(0, indices), self._values.index_select(0, indices)
        self._expose()

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._keys = self._keys.repeat_interleave(repeats, dim=0)
        self._values = self._values.repeat_interleave(repeats, dim=0)
        self._expose()

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("the engine's decoding loop never crops its cache")


def _stored_dtype(keys: torch.Tensor) -> torch.dtype:
    """The autocast precision where autocast is on for the cache's device and would cast these fp32 states
    before attention; the states' own dtype otherwise."""
    device_type = keys.device.type
    if keys.dtype == torch.float32 and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return keys.dtype


def reserve_room(cache: Any, tokens: int) -> None:
    """Give every plain dynamic layer of ``cache`` room for ``tokens`` more positions, in place (other layer
    kinds, such as sliding windows, and caches without layers are left as they are). Call it inside the
    autocast block that decodes: the buffers then hold that precision."""
    layers = getattr(cache, "layers", None)
    if not isinstance(layers, list):
        return
    for index, layer in enumerate(layers):
        if type(layer) is DynamicLayer and layer.is_initialized and layer.keys is not None and layer.keys.dim() == 4:
            layers[index] = _RoomyLayer(layer, tokens)
