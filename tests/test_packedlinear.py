"""Linear layers laid out once for oneDNN while an answering block lasts (engine.packedlinear): the same
answers and logits, a shape whose product would round differently left alone, and the layers as they
were afterwards."""

from __future__ import annotations

import pytest
import torch

from tuning_bench.engine import packedlinear
from tuning_bench.engine.castcache import weights_cast_once
from tuning_bench.engine.generation import GenerationSettings, generate_all, teacher_forced_logits
from tuning_bench.engine.packedlinear import linears_packed, packing_applies
from tuning_bench.testing import tiny_lora_llama, tiny_tokenizer

CPU = torch.device("cpu")
needs_packing = pytest.mark.skipif(not packing_applies(CPU, torch.bfloat16),
                                   reason="this CPU's oneDNN has no bf16 kernels to lay weights out for")


def _lora_model(tokenizer):
    return tiny_lora_llama(tokenizer, seed=5)


def _prompts(tokenizer):
    return [tokenizer(text).input_ids for text in
            ("Features: red mug", "Features: a very long blue kettle with a lid", "Features: lamp")]


def _settings(tokenizer):
    return GenerationSettings(max_new_tokens=12, eos_ids=(tokenizer.eos_token_id,), pad_id=tokenizer.pad_token_id,
                              batch_size=4, decoding="engine", device=CPU, autocast_dtype=torch.bfloat16)


def _linears(model) -> int:
    return sum(1 for module in model.modules() if type(module) is torch.nn.Linear)


@needs_packing
def test_answers_and_logits_are_bit_identical_with_the_layers_packed():
    tokenizer = tiny_tokenizer()
    model = _lora_model(tokenizer)
    prompts, settings = _prompts(tokenizer), _settings(tokenizer)
    plain = generate_all(model, prompts, settings)
    forced = teacher_forced_logits(model, prompts[1], plain[1], settings)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), linears_packed(model, CPU, torch.bfloat16) as count:
        packed = generate_all(model, prompts, settings)
        forced_packed = teacher_forced_logits(model, prompts[1], plain[1], settings)
    assert count == _linears(model)  # the base's projections, the head and the adapters' A and B
    assert packed == plain
    assert torch.equal(forced_packed, forced)


@needs_packing
def test_the_answering_block_packs_and_the_layers_are_restored_even_after_an_error():
    tokenizer = tiny_tokenizer()
    model = _lora_model(tokenizer)
    calls = []
    original = packedlinear._product
    with pytest.raises(RuntimeError, match="a failed guard"):
        with weights_cast_once(model, CPU, torch.bfloat16):
            packedlinear._product = lambda *args: calls.append(1) or original(*args)
            try:
                model(input_ids=torch.tensor([_prompts(tokenizer)[0]]))
            finally:
                packedlinear._product = original
            raise RuntimeError("a failed guard")
    assert len(calls) == _linears(model)  # every linear layer of the forward pass went through the laid-out weight
    assert not any("forward" in vars(module) for module in model.modules())


@needs_packing
def test_a_bias_is_kept_and_a_subclass_of_linear_keeps_its_own_forward():
    class Quantized(torch.nn.Linear):  # as bitsandbytes' layers do: nn.Linear's shape, their own arithmetic
        pass

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(24, 40), torch.nn.GELU(), Quantized(40, 8))
    inputs = torch.randn(3, 5, 24)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        plain = model(inputs)
        with linears_packed(model, CPU, torch.bfloat16) as count:
            packed = model(inputs)
    assert count == 1
    assert torch.equal(packed, plain)


@needs_packing
def test_a_shape_whose_laid_out_product_rounds_differently_is_left_as_it_was(monkeypatch):
    tokenizer = tiny_tokenizer()
    model = _lora_model(tokenizer)
    prompts, settings = _prompts(tokenizer), _settings(tokenizer)
    plain = generate_all(model, prompts, settings)
    original = packedlinear._product

    def head_apart(inputs, packed, bias):  # a kernel whose vocabulary product differs (and would change answers)
        out = original(inputs, packed, bias)
        if out.shape[-1] == len(tokenizer):
            out = out.clone()
            out[..., 0] += 100
        return out

    monkeypatch.setattr(packedlinear, "_product", head_apart)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), linears_packed(model, CPU, torch.bfloat16) as count:
        assert generate_all(model, prompts, settings) == plain
    assert count == _linears(model) - 1  # all but the head


def test_nothing_is_packed_outside_cpu_bf16_autocast():
    tokenizer = tiny_tokenizer()
    model = _lora_model(tokenizer)
    for device, dtype in ((CPU, None), (CPU, torch.float16), (torch.device("cuda"), torch.bfloat16)):
        assert not packing_applies(device, dtype)
        with linears_packed(model, device, dtype) as count:
            assert count == 0
    assert not any("forward" in vars(module) for module in model.modules())
