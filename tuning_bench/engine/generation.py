"""Greedy generation through the adapted model, and the guard that proves it is correct.

Some library versions generate silently wrong text with soft-prompt methods (the virtual prompt
re-prepended at each step, or a prefix cache dropped). The guard compares what ``generate`` returns
with a reference that cannot suffer from cache handling: a greedy loop of full forward passes without
a KV cache, one prompt at a time. A batched row must also equal its prompt run alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from tuning_bench.engine.data import sequential_batches
from tuning_bench.engine.kvcache import reserve_room
from tuning_bench.engine.losses import last_positions, supports_logits_to_keep


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int
    eos_ids: tuple[int, ...]
    pad_id: int
    batch_size: int
    decoding: str  # the method's ``Method.decoding``: "generate", "engine", "unpadded" or "soft-prompt"
    device: torch.device
    autocast_dtype: torch.dtype | None = None


def eos_ids_for(tokenizer: Any, model: Any, answer_end: str) -> tuple[int, ...]:
    """Token ids that end an answer: the tokenizer's EOS, the model's, and the prompt format's end marker."""
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in configured if isinstance(configured, list) else [configured]:
        if value is not None:
            ids.add(int(value))
    if answer_end:
        end = tokenizer(answer_end, add_special_tokens=False).input_ids
        if len(end) == 1:
            ids.add(int(end[0]))
    return tuple(sorted(ids))


def _autocast(settings: GenerationSettings):
    if settings.autocast_dtype is None:
        return torch.autocast(device_type=settings.device.type, enabled=False)
    return torch.autocast(device_type=settings.device.type, dtype=settings.autocast_dtype)


def _cut(tokens: list[int], eos_ids: Sequence[int]) -> list[int]:
    for i, token in enumerate(tokens):
        if token in eos_ids:
            return tokens[:i]
    return tokens


def batches_for(prompts: Sequence[Sequence[int]], settings: GenerationSettings) -> list[list[int]]:
    """Index batches: length-sorted, and without padding when the method needs it."""
    lengths = [len(p) for p in prompts]
    if settings.decoding != "unpadded":
        return sequential_batches(lengths, settings.batch_size)
    groups: dict[int, list[int]] = {}
    for index, length in enumerate(lengths):
        groups.setdefault(length, []).append(index)
    return [ids[i:i + settings.batch_size] for _, ids in sorted(groups.items()) for i in range(0, len(ids), settings.batch_size)]


def _left_padded(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt):] = torch.tensor(list(prompt))
        attention[row, width - len(prompt):] = 1
    return input_ids, attention


# A batch whose prompts begin with at least this many identical tokens computes that beginning once
# (see ``shared_prefix_length``); shorter common beginnings are not worth a second forward call.
MIN_SHARED_PREFIX = 4


def shared_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    """How many leading tokens every prompt of a batch of two or more has in common, leaving each prompt
    at least one token of its own; 0 when under ``MIN_SHARED_PREFIX`` or for a single prompt.

    The prompts of one task share their beginning (chat template, system turn, instruction: 34 of the
    48-69 tokens of the default task on SmolLM2-135M). The engine's loops compute its keys and values once
    and give every row a copy, so prefill costs only each prompt's own tokens. A row is then laid out as
    [shared][padding][own tokens] with positions counted over real tokens only, which is the unpadded
    computation: causal attention makes the shared part's keys and values the same for every row.
    """
    if len(prompts) < 2:
        return 0
    shortest = min(len(p) for p in prompts)
    length = 0
    first = prompts[0]
    while length < shortest - 1 and all(p[length] == first[length] for p in prompts):
        length += 1
    return length if length >= MIN_SHARED_PREFIX else 0


@torch.no_grad()
def _soft_prompt_generate(model: Any, prompts: Sequence[Sequence[int]], settings: GenerationSettings,
                          max_new_tokens: int) -> list[list[int]]:
    """Cached greedy decoding for soft-prompt models with left padding placed after the virtual tokens.

    PEFT's own ``generate`` puts the virtual tokens in front of the padding and ignores position ids,
    so a padded row sees its virtual tokens at a different distance than the same prompt alone (its
    output drifts). Here each row is [virtual tokens][shared prompt start][padding][rest of the prompt]
    with positions counted over real tokens only, which is exactly the unpadded computation; the virtual
    tokens and the shared start are the same for every row and computed once.
    """
    base = model.get_base_model()
    device = settings.device
    shared = shared_prefix_length(prompts)
    input_ids, attention = _left_padded([p[shared:] for p in prompts], settings.pad_id)
    input_ids, attention = input_ids.to(device), attention.to(device)
    virtual = model.get_prompt(batch_size=1).to(device)
    embed = base.get_input_embeddings()
    words = embed(input_ids)
    start = embed(torch.tensor([list(prompts[0][:shared])], dtype=torch.long, device=device))
    start = torch.cat([virtual.to(words.dtype), start], dim=1)
    return _cached_greedy(base, {"inputs_embeds": start}, {"inputs_embeds": words}, attention, settings, max_new_tokens)


@torch.no_grad()
def _engine_generate(model: Any, prompts: Sequence[Sequence[int]], settings: GenerationSettings,
                     max_new_tokens: int) -> list[list[int]]:
    """The engine's cached greedy loop over the model's own forward (``decoding = "engine"``)."""
    device = settings.device
    shared = shared_prefix_length(prompts)
    input_ids, attention = _left_padded([p[shared:] for p in prompts], settings.pad_id)
    start = {"input_ids": torch.tensor([list(prompts[0][:shared])], dtype=torch.long, device=device)} if shared else {}
    return _cached_greedy(model, start, {"input_ids": input_ids.to(device)}, attention.to(device), settings,
                          max_new_tokens)


def fill_order(going: Sequence[bool]) -> list[int]:
    """The rows a batch keeps when some finish, in the order that moves fewest of them.

    Rows still answering keep their places, and the last ones still answering move into the places of
    finished ones, so the KV cache copies only those rows (``kvcache._RoomyLayer.batch_select_indices``)
    rather than every kept row. A row's own computation does not depend on its place in the batch.
    """
    size = sum(going)
    movers = iter([row for row in range(size, len(going)) if going[row]])
    return [row if going[row] else next(movers) for row in range(size)]


def _cached_greedy(model: Any, start: dict[str, torch.Tensor], first: dict[str, torch.Tensor], mask: torch.Tensor,
                   settings: GenerationSettings, max_new_tokens: int) -> list[list[int]]:
    """Greedy decoding with the KV cache for left-padded rows, each row leaving the batch at its end token.

    ``start`` (one row, possibly empty) is what every row begins with: it runs once and its cache is
    copied to every row; ``first`` holds each row's own left-padded tokens and ``mask`` their padding.
    Positions count from each row's first real token (what the row computes alone). A finished row's
    cache rows are dropped, so later steps cost only the rows still answering; each row's computation
    is unchanged, as rows never attend to each other (the last rows move into finished ones' places:
    ``fill_order``). ``generate`` instead carries finished rows to the end of the longest answer (on
    SmolLM2-135M, 80 product descriptions: bench/RESULTS.md).
    """
    device = settings.device
    rows = mask.shape[0]
    begun = next(iter(start.values())).shape[1] if start else 0
    if begun:
        mask = torch.cat([torch.ones(rows, begun, dtype=mask.dtype, device=device), mask], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    produced: list[list[int]] = [[] for _ in range(rows)]
    active = list(range(rows))  # the batch rows still answering, in the order the tensors hold them
    eos = torch.tensor(settings.eos_ids, device=device)
    with _autocast(settings):
        last_only = {"logits_to_keep": last_positions(1, device)} if supports_logits_to_keep(model) else {}
        cache = None
        if begun:
            begin = model(**start, attention_mask=mask[:1, :begun], position_ids=positions[:1, :begun], use_cache=True,
                          **last_only)
            cache = begin.past_key_values
            cache.batch_repeat_interleave(rows)
        output = model(**first, attention_mask=mask, position_ids=positions[:, begun:], past_key_values=cache,
                       use_cache=True, **last_only)
        cache = output.past_key_values
        reserve_room(cache, max_new_tokens)  # each step then writes its keys and values in place (engine.kvcache)
        for _ in range(max_new_tokens):
            # argmax over fp32: the same index (first of equal maxima) as over bf16, several times faster on CPU
            token = output.logits[:, -1].float().argmax(-1)
            for row, chosen in zip(active, token.tolist()):
                produced[row].append(chosen)
            going = ~torch.isin(token, eos)
            if not bool(going.any()):
                break
            if not bool(going.all()):
                order = fill_order(going.tolist())
                keep = torch.tensor(order, device=device)
                cache.batch_select_indices(keep)
                active = [active[k] for k in order]
                token, mask, positions = token[keep], mask[keep], positions[keep]
            mask = torch.cat([mask, torch.ones(len(active), 1, dtype=mask.dtype, device=device)], dim=1)
            positions = positions[:, -1:] + 1
            output = model(input_ids=token.unsqueeze(-1), attention_mask=mask, position_ids=positions,
                           past_key_values=cache, use_cache=True)
            cache = output.past_key_values
    return [_cut(row, settings.eos_ids) for row in produced]


@torch.no_grad()
def generate_batch(model: Any, prompts: Sequence[Sequence[int]], settings: GenerationSettings,
                   max_new_tokens: int | None = None) -> list[list[int]]:
    """Greedy decoding with the KV cache for prompts padded on the left; new tokens per prompt, cut at EOS."""
    if settings.decoding == "soft-prompt":
        return _soft_prompt_generate(model, prompts, settings, max_new_tokens or settings.max_new_tokens)
    if settings.decoding == "engine":
        return _engine_generate(model, prompts, settings, max_new_tokens or settings.max_new_tokens)
    input_ids, attention = _left_padded(prompts, settings.pad_id)
    width = input_ids.shape[1]
    with _autocast(settings):
        output = model.generate(
            input_ids=input_ids.to(settings.device),
            attention_mask=attention.to(settings.device),
            max_new_tokens=max_new_tokens or settings.max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=list(settings.eos_ids),
            pad_token_id=settings.pad_id,
        )
    new = output[:, width:].tolist()
    return [_cut(row, settings.eos_ids) for row in new]


def generate_all(model: Any, prompts: Sequence[Sequence[int]], settings: GenerationSettings,
                 progress: Callable[[int], None] | None = None) -> list[list[int]]:
    """Generate for every prompt, in the batches ``batches_for`` chooses, results in input order;
    ``progress(n)`` is told each finished batch's n prompts."""
    results: list[list[int]] = [[] for _ in prompts]
    for indices in batches_for(prompts, settings):
        for index, tokens in zip(indices, generate_batch(model, [prompts[i] for i in indices], settings)):
            results[index] = tokens
        if progress is not None:
            progress(len(indices))
    return results


@torch.no_grad()
def reference_greedy(model: Any, prompt: Sequence[int], settings: GenerationSettings, max_new_tokens: int
                     ) -> tuple[list[int], list[torch.Tensor]]:
    """Greedy decoding by full forward passes without a KV cache (batch size 1), with each step's logits."""

    ids = list(prompt)
    produced: list[int] = []
    step_logits: list[torch.Tensor] = []
    last_only = {"logits_to_keep": 1} if supports_logits_to_keep(model) else {}  # the LM head for one position
    for _ in range(max_new_tokens):
        tensor = torch.tensor([ids], device=settings.device)
        with _autocast(settings):
            logits = model(input_ids=tensor, attention_mask=torch.ones_like(tensor), **last_only).logits[0, -1].float()
        token = int(logits.argmax())
        step_logits.append(logits.cpu())
        if token in settings.eos_ids:
            break
        produced.append(token)
        ids.append(token)
    return produced, step_logits


@torch.no_grad()
def teacher_forced_logits(model: Any, prompt: Sequence[int], answer: Sequence[int], settings: GenerationSettings
                          ) -> torch.Tensor:
    """The logits that choose each answer token and the token after it: (len(answer) + 1, vocabulary).

    One forward pass without a KV cache over prompt + answer, one prompt at a time. Causal attention
    makes the logits at the position before answer token k a function of prompt + answer[:k] alone,
    which is exactly what step k of ``reference_greedy`` computes while the two agree; one pass replaces
    len(answer) + 1 of them.
    """
    tensor = torch.tensor([list(prompt) + list(answer)], device=settings.device)
    keep = len(answer) + 1
    only_needed = {"logits_to_keep": last_positions(keep, settings.device)} if supports_logits_to_keep(model) else {}
    with _autocast(settings):
        logits = model(input_ids=tensor, attention_mask=torch.ones_like(tensor), **only_needed).logits[0]
    # A soft-prompt model returns logits for its virtual tokens too; the answer's are always the last ones.
    return logits[-keep:].float().cpu()


@dataclass
class GuardReport:
    """The outcome of the generation guard."""

    passed: bool
    checked_prompts: int = 0
    compared_tokens: int = 0
    near_ties: int = 0
    detail: str = ""
    mismatches: list[dict[str, Any]] = field(default_factory=list)

    def as_record(self) -> dict[str, Any]:
        return {"passed": self.passed, "checked_prompts": self.checked_prompts,
                "compared_tokens": self.compared_tokens, "near_ties": self.near_ties, "detail": self.detail}


def _tie_margin(settings: GenerationSettings, top_logit: float) -> float:
    # Batched and single-prompt passes round differently; a flip between two logits this close is
    # arithmetic noise, not a generation bug, so the comparison stops there instead of failing.
    if settings.autocast_dtype is None:
        return 1e-3
    # Under bf16 autocast the logits come out of the LM head in bf16, which keeps 8 significant bits:
    # a logit near 32 is resolved only to 0.125-0.25. On SmolLM2-135M (CPU autocast, 20 test prompts)
    # the last-position logits of a prompt in a padded batch and alone differed by 0.25 (median) and
    # 0.5 (max), and 2 of 20 prompts flipped a token within 8 steps between two logits one bf16 unit
    # apart (0.125 at 21.9, 0.0625 at 15.25), failing the fixed 0.05 margin. So the margin scales
    # with the logit: 1/32 of it (4-8 bf16 units in the last place), never below 0.05.
    return max(0.05, abs(top_logit) / 32)


def generation_guard(model: Any, prompts: Sequence[Sequence[int]], settings: GenerationSettings,
                     generated: Sequence[Sequence[int]] | None = None) -> GuardReport:
    """Check generated answers token by token against the no-cache greedy reference.

    ``generated`` are the answers evaluation produced for ``prompts`` (batched as evaluation batches
    them, cut at the end token); without them the prompts are generated here, batched the same way.
    Every token of each answer is checked, and where an answer ended before ``max_new_tokens``, that the
    reference ends there too.
    """
    if generated is None:
        generated = generate_all(model, prompts, settings)
    report = GuardReport(passed=True, checked_prompts=len(prompts))
    for index, (prompt, answer) in enumerate(zip(prompts, generated)):
        logits = teacher_forced_logits(model, prompt, answer, settings)
        ended = len(answer) < settings.max_new_tokens  # cut at an end token rather than at the cap
        for position in range(len(answer) + (1 if ended else 0)):
            step = logits[position]
            top = float(step.max())
            wanted = int(step.argmax())
            if position < len(answer):
                have: int | None = answer[position]
                matches = wanted == have
                chosen = float(step[have])
            else:
                have = None
                matches = wanted in settings.eos_ids
                chosen = max(float(step[e]) for e in settings.eos_ids)
            if matches:
                report.compared_tokens += 1
                continue
            if top - chosen <= _tie_margin(settings, top):
                report.near_ties += 1
                break
            report.passed = False
            expected = None if wanted in settings.eos_ids else wanted
            report.mismatches.append({"prompt": index, "position": position, "expected": expected, "generated": have})
            break
    if not report.passed:
        first = report.mismatches[0]
        report.detail = (f"generate() disagrees with a no-cache greedy reference on {len(report.mismatches)} of "
                         f"{len(prompts)} prompts (first at new token {first['position']})")
    return report


def pick_guard_indices(prompts: Sequence[Sequence[int]], count: int = 2) -> list[int]:
    """Indices of the shortest and longest prompts (and more between, up to ``count``): a padded batch is
    part of the check."""
    if not prompts:
        return []
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    picks = [order[0], order[-1], order[len(order) // 2]]
    seen: list[int] = []
    for index in picks:
        if index not in seen:
            seen.append(index)
    return seen[:count]


def pick_guard_prompts(prompts: Sequence[Sequence[int]], count: int = 2) -> list[Sequence[int]]:
    """The prompts ``pick_guard_indices`` picks."""
    return [prompts[i] for i in pick_guard_indices(prompts, count)]
