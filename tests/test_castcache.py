"""Weights cast to the autocast precision once per answering block (engine.castcache): same answers,
fewer casts, and the model as it was afterwards."""

from __future__ import annotations

from dataclasses import replace

import torch

from tuning_bench.engine.castcache import weights_cast_once
from tuning_bench.engine.generation import GenerationSettings, generate_all, teacher_forced_logits
from tuning_bench.testing import tiny_lora_llama, tiny_tokenizer

CPU = torch.device("cpu")


def _lora_model(tokenizer):
    return tiny_lora_llama(tokenizer, seed=3)


def _bf16_settings(tokenizer, decoding="engine"):
    return GenerationSettings(max_new_tokens=12, eos_ids=(tokenizer.eos_token_id,), pad_id=tokenizer.pad_token_id,
                              batch_size=4, decoding=decoding, device=CPU, autocast_dtype=torch.bfloat16)


def _prompts(tokenizer):
    return [tokenizer(text).input_ids for text in
            ("Features: red mug", "Features: a very long blue kettle", "Features: green lamp shade")]


def test_answers_and_logits_are_bit_identical_with_the_weights_cast_once():
    tokenizer = tiny_tokenizer()
    model = _lora_model(tokenizer)
    prompts = _prompts(tokenizer)
    for decoding in ("engine", "generate"):
        settings = _bf16_settings(tokenizer, decoding)
        cast_every_pass = generate_all(model, prompts, settings)
        forced = teacher_forced_logits(model, prompts[1], cast_every_pass[1], settings)
        with weights_cast_once(model, CPU, torch.bfloat16):
            cast_once = generate_all(model, prompts, settings)
            forced_once = teacher_forced_logits(model, prompts[1], cast_every_pass[1], settings)
        assert cast_once == cast_every_pass
        assert torch.equal(forced_once, forced)


def _weight_casts(model, ids) -> int:
    """How many fp32 -> bf16 copies one forward pass makes."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof, torch.autocast("cpu", dtype=torch.bfloat16):
        model(input_ids=ids)
    return sum(event.count for event in prof.key_averages() if event.key == "aten::_to_copy")


def test_inside_the_block_a_frozen_weight_is_cast_only_at_its_first_use():
    tokenizer = tiny_tokenizer()
    model = _lora_model(tokenizer)
    ids = torch.tensor([_prompts(tokenizer)[1]])
    with torch.no_grad():
        outside = [_weight_casts(model, ids) for _ in range(2)]
    with weights_cast_once(model, CPU, torch.bfloat16):
        first, second = (_weight_casts(model, ids) for _ in range(2))
    assert outside[0] == outside[1]  # without the block the frozen base is cast again at every pass
    frozen_matrices = sum(1 for p in model.parameters() if not p.requires_grad and p.dim() == 2)
    # the second pass inside the block reuses every frozen weight's copy: at least that many casts fewer
    assert second <= outside[1] - frozen_matrices + 1  # + 1: the tied head shares the embedding tensor
    assert first >= second


def test_the_block_leaves_requires_grad_as_it_was_and_records_no_graph():
    tokenizer = tiny_tokenizer()
    model = _lora_model(tokenizer)
    before = {name: p.requires_grad for name, p in model.named_parameters()}
    assert any(before.values()) and not all(before.values())
    ids = torch.tensor([_prompts(tokenizer)[0]])
    for dtype in (torch.bfloat16, None):
        with weights_cast_once(model, CPU, dtype):
            assert not model(input_ids=ids).logits.requires_grad
        assert {name: p.requires_grad for name, p in model.named_parameters()} == before
    try:
        with weights_cast_once(model, CPU, torch.bfloat16):
            raise RuntimeError("a failed guard")
    except RuntimeError:
        pass
    assert {name: p.requires_grad for name, p in model.named_parameters()} == before


def test_a_merge_after_the_block_is_seen_by_the_next_block():
    """The copies live only as long as the block: weights changed between blocks are cast afresh."""
    tokenizer = tiny_tokenizer()
    model = _lora_model(tokenizer)
    settings = replace(_bf16_settings(tokenizer), max_new_tokens=6)
    prompts = _prompts(tokenizer)
    with weights_cast_once(model, CPU, torch.bfloat16):
        before = generate_all(model, prompts, settings)
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.requires_grad:
                parameter.mul_(-1.0)
    with weights_cast_once(model, CPU, torch.bfloat16):
        after = generate_all(model, prompts, settings)
    assert after == generate_all(model, prompts, settings)  # the same as casting at every pass
    assert after != before
