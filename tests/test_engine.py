"""The engine on tiny models: loss, batches, measurements, generation guard, failures."""

from __future__ import annotations

import math

import pytest
import torch

from tuning_bench.engine.cell import CellSpec, run_cell
from tuning_bench.engine.data import Encoded, collate_causal, length_bucketed_batches
from tuning_bench.engine.generation import (GenerationSettings, generate_all, generation_guard, reference_greedy,
                                           teacher_forced_logits)
from tuning_bench.api.kinds import ModelKind
from tuning_bench.engine.losses import causal_target_loss
from tuning_bench.testing import tiny_llama, tiny_tokenizer
from tuning_bench.engine.trainer import Feeder


def spec(**overrides) -> CellSpec:
    values = dict(task="tiny-gen", method="fake-head", seed=0, model="tiny-llama", method_config={}, steps=6,
                  batch_size=4, val_examples=4, val_every=3, eval_batch_size=4, samples=2)
    values.update(overrides)
    return CellSpec(**values)


def test_target_only_loss_with_kept_logits_equals_full_logits_loss():
    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer)
    items = [Encoded([5, 6, 7, 8, 9], [10, 11]), Encoded([5, 6], [12, 13, 14, 15]), Encoded([7], [8])]
    batch = collate_causal(items, tokenizer.pad_token_id)
    kept, n_kept = causal_target_loss(model, batch, use_keep=True)
    full, n_full = causal_target_loss(model, batch, use_keep=False)
    assert n_kept == n_full == 7  # prompt and padding tokens carry no loss
    assert torch.allclose(kept, full, atol=1e-4)
    # and both equal a per-token computation done by hand
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    manual = 0.0
    for row, item in enumerate(items):
        start = len(item.prompt_ids)
        for offset, token in enumerate(item.target_ids):
            manual -= torch.log_softmax(logits[row, start + offset - 1], -1)[token].item()
    assert math.isclose(float(full.detach()), manual, rel_tol=1e-4)


def test_length_bucketed_batches_are_deterministic_and_full():
    lengths = [i % 17 + 3 for i in range(100)]
    first = [next(b) for b in [length_bucketed_batches(lengths, 8, seed=1)] for _ in range(12)]
    again = [next(b) for b in [length_bucketed_batches(lengths, 8, seed=1)] for _ in range(12)]
    other = [next(b) for b in [length_bucketed_batches(lengths, 8, seed=2)] for _ in range(12)]
    assert first == again and first != other
    assert all(len(batch) == 8 for batch in first)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first) / len(first)
    assert spread < 8  # similar lengths share a batch (random batches would spread ~14)


def test_cell_records_every_measurement_sanely(tiny, tmp_path):
    record = run_cell(spec(steps=8), tmp_path / "cell", tmp_path / "tokens")
    assert record["status"] == "ok", record["error"]
    m = record["measurements"]
    assert 0 < m["trainable_params"] < m["total_params"]
    assert math.isclose(m["trainable_percent"], 100 * m["trainable_params"] / m["total_params"])
    memory = m["memory"]
    # the 4M-float extra parameter with its gradient and two Adam moments is ~48 MB of training memory
    assert memory["train_peak_rss_bytes"] > memory["cpu_baseline_rss_bytes"] + 30e6
    assert memory["eval_peak_rss_bytes"] > 0 and memory["process_peak_rss_bytes"] >= memory["train_peak_rss_bytes"]
    for key in ("train_seconds", "median_step_seconds", "tokens_per_second", "eval_seconds", "load_seconds",
                "generation_seconds_per_example", "latency_seconds"):
        assert m[key] > 0, key
    assert m["steps"] == 8 and len(record["curves"]["train_loss"]) == 8
    assert [step for step, _ in record["curves"]["val_loss"]] == [3, 6, 8]
    assert m["train_tokens"] > m["train_target_tokens"] > 0
    assert m["saved_bytes"] > 0 and m["saved_bytes"] == sum(
        size for name, size in record["state"]["files"].items() if name.endswith(".safetensors"))
    assert record["guard"]["passed"] and record["guard"]["compared_tokens"] > 0
    env = record["environment"]
    assert env["torch_threads"] >= 1 and env["packages"]["torch"].startswith("2.") and env["device"] == "cpu"
    assert set(record["quality"]) == {"rouge_l"} and 0 <= record["headline"]["value"] <= 1


def test_loss_decreases_on_a_learnable_task(tiny, tmp_path):
    record = run_cell(spec(steps=30, method_config={"learning_rate": 3e-2}), tmp_path / "c", None)
    curve = record["curves"]["train_loss"]
    assert sum(curve[-5:]) / 5 < 0.6 * sum(curve[:5]) / 5


def test_tokenized_task_is_cached_and_reused_across_methods(tiny, tmp_path):
    first = run_cell(spec(steps=1), tmp_path / "a", tmp_path / "tokens")
    second = run_cell(spec(steps=1, method="lora"), tmp_path / "b", tmp_path / "tokens")
    assert not first["measurements"]["token_cache_hit"]
    assert second["measurements"]["token_cache_hit"]
    assert len(list((tmp_path / "tokens").glob("tokens-*.json"))) == 1


def test_nan_loss_fails_the_cell_with_the_reason(tiny, tmp_path):
    record = run_cell(spec(method="fake-nan", method_config={"after": 2}), tmp_path / "c", None)
    assert record["status"] == "failed"
    assert record["error"] == "loss became nan at step 3"


def test_a_crashing_method_fails_its_cell_with_the_error(tiny, tmp_path):
    record = run_cell(spec(method="fake-crash"), tmp_path / "c", None)
    assert record["status"] == "failed" and "deliberate failure in adapt" in record["error"]
    assert "Traceback" in (tmp_path / "c" / "error.log").read_text()


def test_not_applicable_is_recorded_with_reason(tiny, tmp_path):
    record = run_cell(spec(method="zero-shot", model="tiny-bert", task="tiny-cls"), tmp_path / "c", None)
    assert record["status"] == "not_applicable" and "causal-lm" in record["error"]
    record = run_cell(spec(method="lora", model="tiny-bert", task="tiny-gen"), tmp_path / "d", None)
    assert record["status"] == "not_applicable" and "cannot generate" in record["error"]


def test_long_sequences_are_truncated_and_counted(tiny, tmp_path):
    record = run_cell(spec(steps=1, max_length=16), tmp_path / "c", None)
    assert record["status"] == "ok", record["error"]
    assert record["measurements"]["truncated_examples"] > 0


def _settings(tokenizer, padded=True, decoding="generate"):
    return GenerationSettings(max_new_tokens=10, eos_ids=(tokenizer.eos_token_id,), pad_id=tokenizer.pad_token_id,
                              batch_size=4, decoding=decoding if padded else "unpadded", device=torch.device("cpu"))


@pytest.mark.parametrize("decoding", ["generate", "engine"])
def test_generate_matches_the_no_cache_reference_on_a_padded_batch(decoding):
    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer, seed=3)
    prompts = [tokenizer("Features: red mug").input_ids, tokenizer("Features: a very long blue kettle").input_ids]
    settings = _settings(tokenizer, decoding=decoding)
    batched = generate_all(model, prompts, settings)
    for prompt, tokens in zip(prompts, batched):
        expected, _ = reference_greedy(model, prompt, settings, 10)
        assert tokens == expected
    assert generation_guard(model, prompts, settings).passed


def test_one_teacher_forced_pass_gives_the_reference_loops_logits():
    """The guard's single no-cache pass over prompt + answer computes what the greedy reference computes
    step by step, so checking evaluation's own answers needs no second generation."""
    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer, seed=3)
    prompt = tokenizer("Features: a very long blue kettle").input_ids
    settings = _settings(tokenizer)
    answer, steps = reference_greedy(model, prompt, settings, 10)
    forced = teacher_forced_logits(model, prompt, answer, settings)
    assert forced.shape[0] == len(answer) + 1
    for step, logits in enumerate(steps):
        assert torch.allclose(forced[step], logits, atol=1e-4)


def test_guard_checks_every_token_of_the_given_answers_and_where_they_end():
    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer, seed=3)
    prompts = [tokenizer("Features: red mug").input_ids, tokenizer("Features: a very long blue kettle").input_ids]
    settings = _settings(tokenizer)
    answers = generate_all(model, prompts, settings)
    assert generation_guard(model, prompts, settings, answers).passed
    late = [list(a) for a in answers]
    late[1][-1] = (late[1][-1] + 1) % 300  # a wrong last token: only a check of every token sees it
    report = generation_guard(model, prompts, settings, late)
    assert not report.passed and report.mismatches[0] == {"prompt": 1, "position": len(late[1]) - 1,
                                                           "expected": answers[1][-1], "generated": late[1][-1]}
    cut_short = [answers[0], answers[1][:3]]  # ends where the reference goes on
    report = generation_guard(model, prompts, settings, cut_short)
    assert not report.passed and report.mismatches[0]["position"] == 3 and report.mismatches[0]["generated"] is None


class _DropsThePrompt(torch.nn.Module):
    """Simulates the transformers 5.24 bug: generate() ignores what the adaptation adds."""

    def __init__(self, adapted, base):
        super().__init__()
        self.adapted, self.base = adapted, base

    def forward(self, **kwargs):
        return self.adapted(**kwargs)

    def generate(self, **kwargs):
        return self.base.generate(**kwargs)


def test_guard_catches_a_generate_that_drops_the_soft_prompt():
    from peft import PromptTuningConfig, get_peft_model

    tokenizer = tiny_tokenizer()
    base = tiny_llama(tokenizer, seed=1)
    adapted = get_peft_model(tiny_llama(tokenizer, seed=1), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    with torch.no_grad():
        adapted.prompt_encoder["default"].embedding.weight.normal_(0, 1.0)  # a prompt that changes the output
    prompts = [tokenizer("Features: red mug").input_ids, tokenizer("Features: blue lamp").input_ids]
    assert generation_guard(adapted, prompts, _settings(tokenizer, decoding="soft-prompt")).passed
    report = generation_guard(_DropsThePrompt(adapted, base), prompts, _settings(tokenizer))
    assert not report.passed and "disagrees with a no-cache greedy reference" in report.detail


def test_guard_catches_a_generate_that_reprepends_the_prompt_each_step():
    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer, seed=2)

    class Drifting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, **kwargs):
            return model(**kwargs)

        def generate(self, input_ids, attention_mask, max_new_tokens, **kwargs):
            # right first token, then each step sees the prompt twice: the 5.24 prompt-tuning drift
            out = input_ids
            for step in range(max_new_tokens):
                context = out if step == 0 else torch.cat([input_ids, out], dim=1)
                nxt = model(input_ids=context).logits[:, -1].argmax(-1, keepdim=True)
                out = torch.cat([out, nxt], dim=1)
            return out

    prompts = [tokenizer("Features: red mug").input_ids]
    report = generation_guard(Drifting(), prompts, _settings(tokenizer))
    assert not report.passed and report.mismatches[0]["position"] >= 1


def test_a_failed_guard_fails_the_cell(tiny, tmp_path, monkeypatch):
    import tuning_bench.engine.generation as generation

    real = generation.generate_batch

    def corrupted(model, prompts, settings, max_new_tokens=None):
        return [[(t + 1) % 300 for t in row] + [7] for row in real(model, prompts, settings, max_new_tokens)]

    monkeypatch.setattr(generation, "generate_batch", corrupted)
    record = run_cell(spec(steps=1), tmp_path / "c", None)
    assert record["status"] == "failed" and record["error"].startswith("generation guard failed")


def test_feeder_moves_batches_to_its_device():
    feeder = Feeder(ModelKind.CAUSAL_LM, 0, torch.device("cpu"))
    batch = feeder.batch([Encoded([1, 2], [3])])
    assert batch["input_ids"].device.type == "cpu" and batch["keep"] == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_cell_records_cuda_memory_and_bf16(tiny, tmp_path):
    record = run_cell(spec(steps=4, device="cuda", precision="bf16"), tmp_path / "c", None)
    assert record["status"] == "ok", record["error"]
    memory = record["measurements"]["memory"]
    assert memory["device_type"] == "cuda"
    assert memory["train_peak_allocated_bytes"] > memory["cuda_baseline_allocated_bytes"]
    assert memory["train_peak_reserved_bytes"] >= memory["train_peak_allocated_bytes"]
    assert record["environment"]["device"] == "cuda" and record["guard"]["passed"]


def test_peft_generate_is_inexact_for_padded_soft_prompts_and_the_engine_loop_is_exact():
    """Why the engine decodes soft-prompt models itself: PEFT's generate shifts padded rows."""
    from peft import PromptTuningConfig, get_peft_model

    tokenizer = tiny_tokenizer()
    adapted = get_peft_model(tiny_llama(tokenizer, seed=1), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    with torch.no_grad():
        adapted.prompt_encoder["default"].embedding.weight.normal_(0, 1.0)
    prompts = [tokenizer("Features: red mug").input_ids, tokenizer("Features: a very long blue kettle").input_ids]
    settings = _settings(tokenizer)

    class PeftGenerate(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = adapted

        def forward(self, **kwargs):
            return adapted(**kwargs)

        def generate(self, **kwargs):
            return adapted.generate(**kwargs)

    assert not generation_guard(PeftGenerate(), prompts, settings).passed
    assert generation_guard(adapted, prompts, _settings(tokenizer, decoding="soft-prompt")).passed


def test_soft_prompt_rows_that_finish_leave_the_batch_and_the_rest_answer_as_if_alone():
    from dataclasses import replace

    from peft import PromptTuningConfig, get_peft_model

    tokenizer = tiny_tokenizer()
    adapted = get_peft_model(tiny_llama(tokenizer, seed=1), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    with torch.no_grad():
        adapted.prompt_encoder["default"].embedding.weight.normal_(0, 1.0)
    prompts = [tokenizer(text).input_ids for text in
               ("Features: red mug", "Features: a very long blue kettle", "Features: green lamp shade")]
    settings = replace(_settings(tokenizer, decoding="soft-prompt"), max_new_tokens=12)
    free = generate_all(adapted, prompts, settings)
    # An end token that one row reaches early and another never produces: rows finish at different steps.
    ender = next(t for t in free[0][1:] if all(t not in row for row in free[1:]))
    settings = replace(settings, eos_ids=(ender,))
    batched = generate_all(adapted, prompts, settings)
    assert len(batched[0]) < len(batched[1]) == 12
    assert batched == [generate_all(adapted, [p], settings)[0] for p in prompts]
    assert generation_guard(adapted, prompts, settings, batched).passed


def test_the_engine_loop_answers_as_generate_does_while_rows_end_at_different_steps():
    from dataclasses import replace

    tokenizer = tiny_tokenizer()
    model = tiny_llama(tokenizer, seed=3)
    prompts = [tokenizer(text).input_ids for text in
               ("Features: red mug", "Features: a very long blue kettle", "Features: green lamp shade")]
    settings = replace(_settings(tokenizer), max_new_tokens=12)
    free = generate_all(model, prompts, settings)
    ender = next(t for t in free[0][1:] if all(t not in row for row in free[1:]))
    settings = replace(settings, eos_ids=(ender,))
    by_generate = generate_all(model, prompts, settings)
    by_engine = generate_all(model, prompts, replace(settings, decoding="engine"))
    assert len(by_engine[0]) < len(by_engine[1]) == 12
    assert by_engine == by_generate


@pytest.mark.parametrize(("model", "task"), [("tiny-llama", "tiny-gen"), ("tiny-llama", "tiny-cls"), ("tiny-bert", "tiny-cls")])
def test_evaluation_reports_progress_against_a_known_total(tiny, tmp_path, model, task):
    events = []
    record = run_cell(spec(model=model, task=task, method="lora", steps=1, eval_batch_size=3), tmp_path / "cell", None,
                      events.append)
    assert record["status"] == "ok", record["error"]
    start = next(i for i, e in enumerate(events) if e.get("phase") == "evaluating")
    total = events[start]["total"]
    assert total == record["measurements"]["eval_examples"] > 3
    advances = [e["advance"] for e in events[start:] if e["event"] == "progress"]
    assert sum(advances) == total and len(advances) >= 2  # batch by batch, not once at the end


def test_live_view_counts_only_phases_with_a_total():
    from types import SimpleNamespace

    from rich.console import Console

    from tuning_bench.cli.liveview import LiveView

    view, job = LiveView(), SimpleNamespace(key="k", spec=SimpleNamespace(label="t/m/seed0"))
    console = Console(width=120, record=True, color_system=None, file=open("/dev/null", "w"))
    view.start(job, 0, 1)
    shown = []
    for event in ({"event": "phase", "phase": "loading model"}, {"event": "phase", "phase": "evaluating", "total": 80},
                  {"event": "progress", "advance": 16}, {"event": "phase", "phase": "checking answers"}):
        view.event(job, event)
        console.print(view.steps.make_tasks_table(view.steps.tasks))
        shown.append(console.export_text().strip())
    assert "?" not in "".join(shown) and "16/80" in shown[2] and "/80" not in shown[3]
