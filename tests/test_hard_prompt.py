"""hard-prompt (PEZ): it learns, the model stays untouched, its prompt is real tokens read as token ids,
it saves as token ids and reloads without parameters, and the reports show the prompt it learned."""

from __future__ import annotations

import html

import pytest
import torch

from tuning_bench.api.errors import UsageError
from tuning_bench.api.options import resolve_options
from tuning_bench.engine.cell import CellSpec, run_cell
from tuning_bench.host.plugins import load_catalog
from tuning_bench.report.markdown import md_text
from tuning_bench.testing import check_method

FAST_RATE = 0.3  # moves the tiny random model's prompt within 40 steps


def _adapted(overrides=None, train_steps=0):
    """The tiny Llama adapted by hard-prompt (and trained on one batch for ``train_steps`` steps)."""
    from tuning_bench.engine.data import encode_task
    from tuning_bench.engine.prompting import resolve_format
    from tuning_bench.engine.trainer import TrainConfig, make_feeder, train

    catalog = load_catalog(["tuning_bench.testing"])
    method, task = catalog.methods.get("hard-prompt"), catalog.tasks.get("tiny-gen")
    config = resolve_options(method.name, method.options, overrides or {})
    torch.manual_seed(0)
    loaded = catalog.models.get("tiny-llama").load(task_kind=task.kind, labels=task.labels)
    adapted = method.adapt(loaded, task, config)
    encoded = encode_task(task, loaded.tokenizer, loaded.kind, resolve_format(loaded.tokenizer), [], 512)
    feeder = make_feeder(adapted, loaded.kind, loaded.tokenizer.pad_token_id, torch.device("cpu"), None)
    if train_steps:
        train(adapted, encoded.splits["train"][:4], [], feeder,
              TrainConfig(steps=train_steps, batch_size=4, learning_rate=config["learning_rate"], seed=0),
              param_groups=method.parameter_groups(adapted, config))
    return method, loaded, adapted, feeder, encoded


@pytest.mark.parametrize("task_name", ["tiny-gen", "tiny-cls"])
def test_hard_prompt_keeps_the_contract(task_name):
    method = load_catalog(["tuning_bench.testing"]).methods.get("hard-prompt")
    # 30 tokens of a 400-token vocabulary move the tiny random model's loss by ~10 % in 40 steps (soft
    # prompts: over 20 %); the batch repeats, so any fall is the learned tokens' doing, not noise.
    report = check_method(method, "tiny-llama", task_name, learning_rate=FAST_RATE, options={"num_tokens": 30},
                          saved="none", min_drop=0.05)
    assert report["changed"] == [], report["changed"][:5]  # not one weight of the model moved
    assert report["state_kind"] == "prompt-only" and report["saved_bytes"] == 0
    assert report["guard"]["passed"] and report["guard"]["checked_prompts"] == 3


def test_the_prompt_is_real_vocabulary_tokens_and_moves_while_training():
    method, loaded, adapted, _, _ = _adapted({"init": "vocab"})
    before = adapted.token_ids().tolist()
    _, _, trained, _, _ = _adapted({"init": "vocab", "learning_rate": FAST_RATE}, train_steps=20)
    after = trained.token_ids().tolist()
    tokenizer = loaded.tokenizer
    special = set(tokenizer.all_special_ids)
    for ids in (before, after):
        assert len(ids) == 10 and all(0 <= i < len(tokenizer) and i not in special for i in ids)
    assert after != before  # training changed the tokens, not only the continuous embeddings behind them
    learned = method.learned_prompt(trained, tokenizer)
    assert learned == {"text": tokenizer.decode(after), "token_ids": after}


def test_text_init_starts_from_the_instruction_tokens():
    _, loaded, adapted, _, _ = _adapted({"num_tokens": 12})
    ids = loaded.tokenizer("Describe the product.", add_special_tokens=False).input_ids
    assert adapted.token_ids().tolist() == (ids * 12)[:12]


def test_evaluation_reads_the_prompt_as_token_ids_and_training_sees_the_same_values():
    _, loaded, adapted, feeder, encoded = _adapted({"learning_rate": FAST_RATE}, train_steps=5)
    batch = feeder.batch(encoded.splits["test"][:3])
    ids, mask = batch["input_ids"], batch["attention_mask"]
    prompt = adapted.token_ids().expand(ids.shape[0], -1)
    with torch.no_grad():
        adapted.eval()
        evaluated = adapted(input_ids=ids, attention_mask=mask).logits
        typed = loaded.model(input_ids=torch.cat([prompt, ids], 1),
                             attention_mask=torch.cat([torch.ones_like(prompt), mask], 1)).logits
        adapted.train()
        trained_view = adapted(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(evaluated, typed)  # exactly a prompt typed in front of the input
    torch.testing.assert_close(trained_view, typed)  # the straight-through forward holds the projected values


def test_the_gradient_at_the_projected_prompt_reaches_the_continuous_one():
    _, _, adapted, feeder, encoded = _adapted()
    adapted.train()
    loss, count = feeder.loss(adapted, feeder.batch(encoded.splits["train"][:4]))
    (loss / count).backward()
    assert adapted.soft.grad is not None and float(adapted.soft.grad.abs().sum()) > 0
    assert all(p.grad is None for p in adapted.get_base_model().parameters())


def test_encoders_are_not_applicable(tiny, tmp_path):
    spec = CellSpec(task="tiny-cls", method="hard-prompt", seed=0, model="tiny-bert", method_config={}, steps=1)
    record = run_cell(spec, tmp_path / "cell", None)
    assert record["status"] == "not_applicable" and "causal-lm" in record["error"]


def test_a_run_records_reloads_and_reports_the_learned_prompt(tiny, tmp_path):
    from tuning_bench.run.inference import load_trained
    from tuning_bench.run.runner import execute, plan_run
    from tuning_bench.run.settings import RunSettings

    settings = RunSettings(methods=["hard-prompt"], tasks=["tiny-gen"], model="tiny-llama", steps=3, batch_size=4,
                           eval_examples=3, val_examples=2, eval_batch_size=4, out=str(tmp_path / "run"),
                           executor="in-process", keep="none")
    catalog = load_catalog()
    data = execute(plan_run(settings, catalog), prepare_model=False)
    cell = data["cells"][0]
    assert cell["status"] == "ok", cell["error"]
    learned = cell["prompt"]["learned"]
    assert len(learned["token_ids"]) == 10 and learned["text"]
    assert cell["state"]["kind"] == "prompt-only" and cell["measurements"]["saved_bytes"] == 0
    assert cell["measurements"]["trainable_params"] == 10 * 32  # the continuous prompt, while training

    # Even under --keep none the prompt is kept (it is text); reloaded, it answers as evaluation did and
    # adds no parameter to the model.
    trained = load_trained(tmp_path / "run", catalog, "hard-prompt")
    inputs = [ex["features"] for ex in catalog.tasks.get("tiny-gen").splits()["test"][:3]]
    assert trained.answer(inputs) == cell["predictions"][:3]
    assert trained.model.token_ids().tolist() == learned["token_ids"]
    base = sum(p.numel() for p in trained.model.get_base_model().parameters())
    assert sum(p.numel() for p in trained.model.parameters()) == base

    markdown = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    page = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "### Learned prompts" in markdown and md_text(learned["text"]) in markdown
    assert "<h3>Learned prompts</h3>" in page and html.escape(learned["text"], quote=True) in page


def test_reports_escape_a_learned_prompt():
    from tuning_bench.report import render_html, render_markdown
    from tuning_bench.report.tables import build_tasks

    cell = {"task": "t", "method": "hard-prompt", "seed": 0, "status": "ok", "error": None,
            "quality": {"rouge_l": 0.5}, "headline": {"metric": "rouge_l", "value": 0.5},
            "measurements": {"steps": 2}, "prompt": {"learned": {"text": "<b>| *x*", "token_ids": [1, 2, 3]}}}
    data = {"schema": "tuning_bench.results", "schema_version": 2, "run": {"methods": ["hard-prompt"], "tasks": ["t"]},
            "environment": {}, "tasks": {}, "cells": [cell], "verdicts": []}
    views = build_tasks(data)
    assert views[0].learned_prompts[0].tokens == 3
    markdown, page = render_markdown(data, views), render_html(data, views, {})
    assert "&lt;b&gt;\\| \\*x\\*" in markdown and "<b>|" not in markdown
    assert "&lt;b&gt;| *x*" in page and "<b>| *x*" not in page


@pytest.mark.parametrize(("overrides", "message"), [
    ({"num_tokens": "0"}, "hard-prompt.num_tokens must be at least 1, got 0"),
    ({"init": "random"}, "hard-prompt.init must be one of text, vocab"),
    ({"weight_decay": "-1"}, "hard-prompt.weight_decay must be at least 0"),
])
def test_invalid_options_are_one_clear_error(overrides, message):
    method = load_catalog().methods.get("hard-prompt")
    with pytest.raises(UsageError) as info:
        resolve_options(method.name, method.options, overrides)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_it_runs_when_named_but_not_in_the_default_run(tiny, tmp_path):
    from tuning_bench.run.runner import plan_run
    from tuning_bench.run.settings import RunSettings

    catalog = load_catalog()
    assert catalog.methods.get("hard-prompt").in_default_run is False
    default = plan_run(RunSettings(tasks=["tiny-gen"], model="tiny-llama", out=str(tmp_path / "a")), catalog)
    named = plan_run(RunSettings(methods=["hard-prompt", "lora"], tasks=["tiny-gen"], model="tiny-llama",
                                 out=str(tmp_path / "b")), catalog)
    assert "hard-prompt" not in default.method_configs and {"zero-shot", "prompt", "lora"} <= set(default.method_configs)
    assert set(named.method_configs) == {"hard-prompt", "lora"}
