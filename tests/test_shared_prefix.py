"""Prompts that begin alike: the engine's loops compute the common beginning once (generation.shared_prefix_length)
and every row still answers as it does alone."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from tuning_bench.engine.generation import (MIN_SHARED_PREFIX, GenerationSettings, generate_all, generation_guard,
                                            shared_prefix_length)
from tuning_bench.testing import tiny_llama, tiny_tokenizer

INSTRUCTION = "Write a short shop description of the product. Features: "


def _settings(tokenizer, decoding):
    return GenerationSettings(max_new_tokens=12, eos_ids=(tokenizer.eos_token_id,), pad_id=tokenizer.pad_token_id,
                              batch_size=4, decoding=decoding, device=torch.device("cpu"))


def _prompts(tokenizer):
    return [tokenizer(INSTRUCTION + text).input_ids for text in ("red mug", "a very long blue kettle", "green lamp shade")]


def test_the_shared_length_is_the_common_beginning_leaving_each_prompt_a_token_of_its_own():
    assert shared_prefix_length([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 7, 8]]) == 5
    assert shared_prefix_length([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6, 7]]) == 5  # one is the other's start
    assert shared_prefix_length([[1, 2, 3, 4, 5, 6]] * 3) == 5  # identical prompts keep their last token
    assert shared_prefix_length([[1, 2, 3, 4, 5, 6]]) == 0  # a prompt alone has nothing to share
    short = list(range(MIN_SHARED_PREFIX - 1))
    assert shared_prefix_length([short + [50, 51], short + [60, 61]]) == 0


def _soft_prompt_model(tokenizer):
    from peft import PromptTuningConfig, get_peft_model

    adapted = get_peft_model(tiny_llama(tokenizer, seed=1), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    with torch.no_grad():
        adapted.prompt_encoder["default"].embedding.weight.normal_(0, 1.0)
    return adapted.eval()


@pytest.mark.parametrize("decoding", ["engine", "soft-prompt"])
def test_prompts_that_begin_alike_answer_in_a_batch_as_each_does_alone(decoding):
    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer, seed=3) if decoding == "engine" else _soft_prompt_model(tokenizer)
    prompts = _prompts(tokenizer)
    assert shared_prefix_length(prompts) >= 10  # the case under test: a long common beginning
    settings = _settings(tokenizer, decoding)
    free = generate_all(model, prompts, settings)
    # An end token one row reaches early and another never produces: rows leave the batch at different steps.
    ender = next(t for t in free[0][1:] if all(t not in row for row in free[1:]))
    settings = replace(settings, eos_ids=(ender,))
    batched = generate_all(model, prompts, settings)
    assert len(batched[0]) < len(batched[1]) == 12
    assert batched == [generate_all(model, [p], settings)[0] for p in prompts]
    assert generation_guard(model, prompts, settings, batched).passed
    if decoding == "engine":  # and as the model's own generate answers the padded batch
        assert batched == generate_all(model, prompts, replace(settings, decoding="generate"))


def test_a_cache_with_reserved_room_holds_what_appending_holds():
    from tuning_bench.engine.kvcache import reserve_room

    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer, seed=3).eval()
    ids = torch.tensor(_prompts(tokenizer)[:2][0:1])
    with torch.no_grad():
        appended = model(input_ids=ids, use_cache=True).past_key_values
        roomy = model(input_ids=ids, use_cache=True).past_key_values
        reserve_room(roomy, 2)
        assert all(type(layer).__name__ == "_RoomyLayer" for layer in roomy.layers)
        for step in range(4):  # past the reserved room too: it grows as a dynamic layer does
            token = torch.tensor([[5 + step]])
            a = model(input_ids=token, past_key_values=appended, use_cache=True).logits
            b = model(input_ids=token, past_key_values=roomy, use_cache=True).logits
            assert torch.equal(a, b)
        for plain, reserved in zip(appended.layers, roomy.layers):
            assert torch.equal(plain.keys, reserved.keys) and torch.equal(plain.values, reserved.values)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"))])
def test_under_autocast_the_reserved_cache_holds_the_cast_states_and_attention_sees_the_same_values(device):
    """transformers' dynamic layer keeps fp32 keys and values under bf16 autocast, which attention casts at every
    step; the roomy layer holds them cast once: the same logits at every step, past the room too."""
    from tuning_bench.engine.kvcache import reserve_room

    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer, seed=3).eval().to(device)
    ids = torch.tensor(_prompts(tokenizer)[:1], device=device)
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
        appended = model(input_ids=ids, use_cache=True).past_key_values
        roomy = model(input_ids=ids, use_cache=True).past_key_values
        assert appended.layers[0].keys.dtype == appended.layers[0].values.dtype == torch.float32
        reserve_room(roomy, 2)
        for step in range(4):
            token = torch.tensor([[5 + step]], device=device)
            a = model(input_ids=token, past_key_values=appended, use_cache=True).logits
            b = model(input_ids=token, past_key_values=roomy, use_cache=True).logits
            assert torch.equal(a, b)
        for plain, reserved in zip(appended.layers, roomy.layers):
            assert reserved.keys.dtype == reserved.values.dtype == torch.bfloat16
            assert torch.equal(plain.keys.to(torch.bfloat16), reserved.keys)
            assert torch.equal(plain.values.to(torch.bfloat16), reserved.values)


def test_the_fill_order_keeps_rows_in_place_and_moves_the_last_ones_into_finished_places():
    from tuning_bench.engine.generation import fill_order

    assert fill_order([True, True, True]) == [0, 1, 2]
    assert fill_order([True, False, True, True]) == [0, 3, 2]
    assert fill_order([False, True, False, True, True]) == [3, 1, 4]
    assert fill_order([True, True, False, False]) == [0, 1]  # the finished ones were last: nothing moves
    assert fill_order([False, False]) == []


@pytest.mark.parametrize("order", [[3, 1, 4], [0, 1], [2, 0, 1]])  # fill orders, and one that is not (fallback)
def test_a_roomy_cache_keeps_the_rows_it_is_told_as_a_dynamic_cache_does(order):
    from transformers.cache_utils import DynamicLayer

    from tuning_bench.engine.kvcache import _RoomyLayer

    plain = DynamicLayer()
    keys, values = torch.randn(5, 2, 6, 4), torch.randn(5, 2, 6, 4)
    plain.update(keys.clone(), values.clone())
    source = DynamicLayer()
    source.update(keys.clone(), values.clone())
    roomy = _RoomyLayer(source, room=3)
    buffer = roomy._keys.data_ptr()
    indices = torch.tensor(order)
    plain.batch_select_indices(indices)
    roomy.batch_select_indices(indices)
    assert torch.equal(roomy.keys, plain.keys) and torch.equal(roomy.values, plain.values)
    moves_only_finished_places = all(i == row or i >= len(order) for row, i in enumerate(order))
    assert (roomy._keys.data_ptr() == buffer) == moves_only_finished_places  # cut by a view, not copied whole
    step = torch.randn(len(order), 2, 1, 4)  # and the next step still writes in place
    plain.update(step, step)
    roomy.update(step, step)
    assert torch.equal(roomy.keys, plain.keys) and torch.equal(roomy.values, plain.values)
