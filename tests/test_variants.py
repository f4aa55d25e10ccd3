"""What sets the named PEFT variants apart from LoRA, beyond the contract test_methods.py checks for
each: LoRA+'s second learning rate, AdaLoRA's rank budget over the run's own steps, VeRA's regenerated
projections, PiSSA's residual, LN tuning's norms."""

from __future__ import annotations

import json

import pytest
import torch

from tuning_bench.api.options import resolve_options
from tuning_bench.engine.cell import CellSpec, run_cell
from tuning_bench.host.plugins import load_catalog


def _adapted(method_name, model_name="tiny-llama", task_name="tiny-gen", overrides=None):
    catalog = load_catalog(["tuning_bench.testing"])
    method, task = catalog.methods.get(method_name), catalog.tasks.get(task_name)
    torch.manual_seed(0)
    loaded = catalog.models.get(model_name).load(task_kind=task.kind, labels=task.labels)
    config = resolve_options(method.name, method.options, overrides or {})
    return method, loaded, method.adapt(loaded, task, config), config


def test_lora_plus_trains_b_at_its_own_higher_rate():
    method, _, adapted, config = _adapted("lora-plus")
    low, high = method.parameter_groups(adapted, config)
    named = {id(p): name for name, p in adapted.named_parameters()}
    assert low["lr"] == config["learning_rate"] and high["lr"] == 16.0 * config["learning_rate"]
    assert {named[id(p)].split(".lora_")[1][0] for p in high["params"]} == {"B"}
    assert {named[id(p)].split(".lora_")[1][0] for p in low["params"]} == {"A"}
    assert len(low["params"]) + len(high["params"]) == sum(p.requires_grad for p in adapted.parameters())


def test_adalora_spans_the_runs_steps_and_ends_at_its_rank_budget(tiny, tmp_path):
    steps = 6
    spec = CellSpec(task="tiny-gen", method="adalora", seed=0, model="tiny-llama", method_config={}, steps=steps,
                    batch_size=4, val_examples=2, eval_examples=2, keep="all")
    record = run_cell(spec, tmp_path / "cell", None)
    assert record["status"] == "ok", record["error"]
    saved = json.loads((tmp_path / "cell" / "state" / "adapter_config.json").read_text())
    assert saved["total_step"] == steps  # the placeholder schedule was replaced by the run's budget
    kept = {name: sum(mask) for name, mask in saved["rank_pattern"].items()}
    assert len(kept) == 4 and all(len(mask) == 12 for mask in saved["rank_pattern"].values())  # init_r 12
    assert sum(kept.values()) == 8 * len(kept)  # target_r 8 on average: the final budget, spent unevenly or not


@pytest.mark.parametrize(("total", "fractions", "expected"),
                         [(48, (0.04, 0.1), (1, 4)), (5000, (0.04, 0.1), (200, 500)), (3, (0.5, 0.5), (1, 1)),
                          (1, (0.0, 0.0), (0, 0))])
def test_adalora_schedule_leaves_a_pruning_phase(total, fractions, expected):
    from tuning_bench_plugins.adalora import _phases

    tinit, tfinal = _phases(total, *fractions)
    assert (tinit, tfinal) == expected and tinit < total - tfinal


def test_vera_saves_only_its_vectors_and_reloads_its_projections_from_the_seed(tiny, tmp_path):
    from safetensors.torch import load_file

    method, _, adapted, config = _adapted("vera")
    method.save_state(adapted, tmp_path)
    saved = load_file(str(tmp_path / "adapter_model.safetensors"))
    assert saved and all("lambda" in name for name in saved), sorted(saved)[:4]


def test_pissa_starts_from_the_principal_directions_and_keeps_the_weight_it_adapts():
    catalog = load_catalog(["tuning_bench.testing"])
    torch.manual_seed(0)
    original = catalog.models.get("tiny-llama").load(task_kind=None).model.model.layers[0].self_attn.q_proj.weight
    original = original.detach().clone()
    _, _, adapted, _ = _adapted("pissa")
    layer = adapted.base_model.model.model.layers[0].self_attn.q_proj
    a, b, residual = layer.lora_A["default"].weight, layer.lora_B["default"].weight, layer.base_layer.weight
    scaling = layer.scaling["default"]
    torch.testing.assert_close(residual + scaling * b @ a, original, rtol=0, atol=1e-5)  # W = residual + B·A at init
    top = torch.linalg.svdvals(original)[:8]
    torch.testing.assert_close(torch.linalg.svdvals(scaling * b @ a)[:8], top, rtol=1e-4, atol=1e-5)


def test_ln_tuning_finds_the_norms_of_each_architecture():
    from tuning_bench_plugins.ln_tuning import norm_module_names

    catalog = load_catalog(["tuning_bench.testing"])
    llama = catalog.models.get("tiny-llama").load(task_kind=None).model
    bert = catalog.models.get("tiny-bert").load(task_kind=None, labels=("negative", "positive")).model
    assert norm_module_names(llama) == ["input_layernorm", "norm", "post_attention_layernorm"]  # PEFT's Llama default
    assert norm_module_names(bert) == ["LayerNorm"]  # PEFT has no default for BERT
    _, _, adapted, _ = _adapted("ln-tuning")
    trained = [name for name, p in adapted.named_parameters() if p.requires_grad]
    assert len(trained) == 5 and all(".ln_tuning_layers." in name for name in trained)
