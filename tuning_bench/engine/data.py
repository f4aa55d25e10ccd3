"""Tokenized examples, the on-disk token cache shared by cells, length-bucketed batches and collation."""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuning_bench.api.kinds import ModelKind
from tuning_bench.engine.prompting import PromptFormat
from tuning_bench.api.task import Task

IGNORE = -100


@dataclass
class Encoded:
    """One tokenized example. ``target_ids`` is empty for encoder classification (``label`` is used)."""

    prompt_ids: list[int]
    target_ids: list[int]
    label: int | None = None
    truncated: bool = False

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.target_ids)


@dataclass
class EncodedSplits:
    """Tokenized train/validation/test splits plus what it took to produce them."""

    splits: dict[str, list[Encoded]]
    truncated: int = 0
    from_cache: bool = False
    label_ids: list[list[int]] = field(default_factory=list)  # tokenized answers per label (causal LM)


def encode_task(
    task: Task,
    tokenizer: Any,
    kind: ModelKind,
    fmt: PromptFormat | None,
    shots: Sequence[tuple[str, str]],
    max_length: int,
) -> EncodedSplits:
    """Tokenize every split of a task for one model and one prompt context, through the strategy for the
    model kind and task kind (``tuning_bench.engine.strategies``)."""
    from tuning_bench.engine.strategies import PromptContext, strategy_for  # the strategies build on this module

    strategy = strategy_for(kind, task.kind)
    context = PromptContext(tokenizer, fmt, task.instruction, shots, max_length)
    splits = {name: [strategy.encode(context, task, ex) for ex in examples] for name, examples in task.splits().items()}
    truncated = sum(e.truncated for split in splits.values() for e in split)
    return EncodedSplits(splits, truncated, False, strategy.label_ids(context, task))


def cache_key(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def load_or_encode(cache_dir: Path | None, key: str, encode) -> EncodedSplits:
    """Read tokenized splits from ``cache_dir/key.json`` or encode and store them (atomically)."""
    path = cache_dir / f"tokens-{key}.json" if cache_dir else None
    if path is not None and path.exists():
        try:
            raw = json.loads(path.read_text())
            splits = {name: [Encoded(**item) for item in items] for name, items in raw["splits"].items()}
            return EncodedSplits(splits, raw["truncated"], True, raw["label_ids"])
        except (ValueError, KeyError, TypeError):
            pass  # a damaged cache file is rebuilt below
    encoded = encode()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "splits": {name: [e.__dict__ for e in items] for name, items in encoded.splits.items()},
            "truncated": encoded.truncated,
            "label_ids": encoded.label_ids,
        }
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
            json.dump(payload, handle)
        os.replace(handle.name, path)
    return encoded


def length_bucketed_batches(lengths: Sequence[int], batch_size: int, seed: int, pool: int = 32) -> Iterator[list[int]]:
    """Endless batches of indices: shuffled each epoch, then sorted by length within pools of
    ``pool`` batches so that each batch holds similar lengths (little padding), in shuffled order."""
    rng = random.Random(seed)
    indices = list(range(len(lengths)))
    while True:
        rng.shuffle(indices)
        batches = []
        for start in range(0, len(indices), batch_size * pool):
            chunk = sorted(indices[start:start + batch_size * pool], key=lambda i: lengths[i])
            batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        batches = [b for b in batches if len(b) == batch_size] or batches
        rng.shuffle(batches)
        yield from batches


def epoch_steps(epochs: int, train_examples: int, batch_size: int) -> int:
    """Steps for ``epochs`` passes over the training split: ``length_bucketed_batches`` yields only full
    batches (when there is at least one), so an epoch is ``train_examples // batch_size`` steps."""
    return epochs * max(1, train_examples // batch_size)


def sequential_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Every index once, sorted by length into batches of at most ``batch_size`` (for evaluation).

    The batches are as equal in size as their count allows (80 at 64 is 40 + 40, not 64 + 16): a step
    of batched decoding costs a fixed part (reading the weights) plus a part per row, so a short last
    batch pays the fixed part for few rows."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    count = -(-len(order) // batch_size)
    bounds = [round(k * len(order) / count) for k in range(count + 1)] if order else [0]
    return [order[bounds[k]:bounds[k + 1]] for k in range(len(bounds) - 1)]


def collate_causal(items: Sequence[Encoded], pad_id: int) -> dict[str, Any]:
    """Right-padded prompt+target ids with labels only on target tokens, and how many final
    positions need logits (so the LM head runs only where targets are)."""
    import torch

    width = max(item.length for item in items)
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(items), width), dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    first_target = width
    for row, item in enumerate(items):
        ids = item.prompt_ids + item.target_ids
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        labels[row, len(item.prompt_ids): len(ids)] = torch.tensor(item.target_ids)
        first_target = min(first_target, len(item.prompt_ids))
    # logits at position p predict token p + 1: keep the positions from the one before the first target.
    keep = width - first_target + 1
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels, "keep": keep,
            "tokens": int(attention.sum())}


def collate_encoder(items: Sequence[Encoded], pad_id: int) -> dict[str, Any]:
    import torch

    width = max(len(item.prompt_ids) for item in items)
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(items), width), dtype=torch.long)
    for row, item in enumerate(items):
        input_ids[row, : len(item.prompt_ids)] = torch.tensor(item.prompt_ids)
        attention[row, : len(item.prompt_ids)] = 1
    # New inputs being answered have no label: IGNORE stands in (cross-entropy skips it).
    labels = torch.tensor([IGNORE if item.label is None else item.label for item in items], dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels, "tokens": int(attention.sum())}
