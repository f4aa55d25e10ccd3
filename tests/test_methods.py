"""Each built-in method: it learns, changes only its own parameters, counts them right, saves and reloads."""

from __future__ import annotations

import pytest
import torch

from tuning_bench.engine.cell import CellSpec, run_cell
from tuning_bench.api.errors import UsageError
from tuning_bench.api.options import resolve_options
from tuning_bench.host.plugins import load_catalog
from tuning_bench.testing import check_method

TRAINABLE = ["prompt", "prefix", "ptuning", "lora", "ia3", "finetune"]
# The named PEFT variants (not in the default run): each keeps the same contract as the methods above.
VARIANTS = ["dora", "rslora", "pissa", "adalora", "lora-plus", "vera", "loha", "lokr", "oft", "ln-tuning"]
HIDDEN, LAYERS, KV, FF, VOCAB = 32, 2, 16, 64, 400  # the tiny Llama of tuning_bench.testing
Q_AND_V = (HIDDEN + HIDDEN) + (HIDDEN + KV)  # in + out features of q_proj and v_proj together

EXPECTED_TRAINABLE_LLAMA = {
    "prompt": 20 * HIDDEN,  # virtual tokens x hidden size
    # embedding (in the key/value width) + reparameterization MLP to 2 x layers x key/value width
    "prefix": 20 * KV + (KV * 512 + 512) + (512 * 2 * LAYERS * KV + 2 * LAYERS * KV),
    # embedding + MLP prompt encoder hidden -> 256 -> 256 -> hidden
    "ptuning": 20 * HIDDEN + (HIDDEN * 256 + 256) + (256 * 256 + 256) + (256 * HIDDEN + HIDDEN),
    "lora": LAYERS * 8 * Q_AND_V,  # r x (in + out) for q_proj and v_proj
    "ia3": LAYERS * (KV + KV + FF),  # k_proj and v_proj outputs, down_proj input
    "dora": LAYERS * (8 * Q_AND_V + HIDDEN + KV),  # LoRA + a magnitude per output feature
    "rslora": LAYERS * 64 * Q_AND_V,  # LoRA at r = 64
    "pissa": LAYERS * 8 * Q_AND_V,  # LoRA's shapes; only the initialisation differs
    "lora-plus": LAYERS * 8 * Q_AND_V,  # LoRA's adapter; only the optimiser differs
    "adalora": LAYERS * (12 * Q_AND_V + 2 * 12),  # P and Q at init_r 12, plus 12 singular values per module
    "vera": LAYERS * ((HIDDEN + 256) + (KV + 256)),  # b (output width) and d (r = 256) per module
    "loha": LAYERS * 2 * 8 * Q_AND_V,  # two rank-8 factorisations per module
    "oft": LAYERS * 2 * (32 * 31 // 2),  # one 32 x 32 skew-symmetric block per module (input width 32)
    "ln-tuning": (2 * LAYERS + 1) * HIDDEN,  # copies of the two norms per layer and the final norm
}


# Rates that move a random two-layer model within 40 steps (about ten times the defaults; the
# prefix MLP diverges above its default on the tiny encoder).
FAST_RATES = {"prompt": 0.3, "prefix": 1e-2, "ptuning": 1e-2, "lora": 1e-2, "ia3": 3e-2, "finetune": 5e-4,
              # the variants train for VARIANT_STEPS only, at about twice the rates above
              "dora": 2e-2, "rslora": 2e-2, "pissa": 2e-2, "adalora": 6e-2, "lora-plus": 6e-3, "vera": 0.2,
              "loha": 2e-2, "lokr": 3e-2, "oft": 2e-2, "ln-tuning": 6e-2}
# Half check_method's 40 steps: the contract is the same, and ten variants on two models add up
# (the loss still falls by a quarter or more on both tiny models).
VARIANT_STEPS = 20
# PEFT stores prefix tuning's and P-tuning's prompt as computed by their MLP, not the MLP itself, and
# AdaLoRA's factors cut to the ranks it kept.
SAVED = {"prefix": "derived", "ptuning": "derived", "adalora": "derived"}

# One row per (method, model, task): each runs the whole contract of tuning_bench.testing.check_method.
CONTRACT_CASES = [(method, model, task) for method in TRAINABLE + VARIANTS
                  for model, task in [("tiny-llama", "tiny-gen"), ("tiny-bert", "tiny-cls")]]


def _setup(method_name, model_name="tiny-llama", task_name="tiny-gen", overrides=None):
    catalog = load_catalog(["tuning_bench.testing"])
    method = catalog.methods.get(method_name)
    task = catalog.tasks.get(task_name)
    torch.manual_seed(0)  # the tiny models' random weights too: otherwise they depend on earlier tests
    loaded = catalog.models.get(model_name).load(task_kind=task.kind, labels=task.labels)
    config = resolve_options(method.name, method.options, overrides or {})
    torch.manual_seed(0)
    return catalog, method, task, loaded, config


@pytest.mark.parametrize(("method_name", "model_name", "task_name"), CONTRACT_CASES,
                         ids=[f"{model}-{task}-{method}" for method, model, task in CONTRACT_CASES])
def test_method_keeps_the_contract(method_name, model_name, task_name):
    method = load_catalog(["tuning_bench.testing"]).methods.get(method_name)
    report = check_method(method, model_name, task_name, learning_rate=FAST_RATES[method_name],
                          saved=SAVED.get(method_name, "trained"), rewrites_base=method_name == "pissa",
                          steps=VARIANT_STEPS if method_name in VARIANTS else 40)
    if method_name == "finetune":
        assert report["state_kind"] == "full-model" and len(report["changed"]) > 0.5 * report["base_parameters"]
    elif method_name == "pissa":
        # PiSSA leaves the residual W - B·A in the adapted weights when it adapts, and nothing else; training
        # then changes no frozen weight (check_method compared them with the residual)
        adapted = ("q_proj.weight", "v_proj.weight", "query.weight", "value.weight")
        assert report["rewritten"] and all(name.endswith(adapted) for name in report["rewritten"]), report["rewritten"]
        assert report["state_kind"] == "peft-adapter" and report["changed"] == [], report["changed"][:5]
    else:
        # PEFT keeps every original weight bit-identical (it trains its own copy of an encoder's head)
        assert report["state_kind"] == "peft-adapter" and report["changed"] == [], report["changed"][:5]
    if model_name == "tiny-llama":
        assert report["guard"]["passed"] and report["guard"]["checked_prompts"] == 3


@pytest.mark.parametrize("method_name", list(EXPECTED_TRAINABLE_LLAMA) + ["finetune"])
def test_trainable_count_matches_the_formula(method_name):
    _, method, task, loaded, config = _setup(method_name)
    total_base = sum(p.numel() for p in loaded.model.parameters())
    adapted = method.adapt(loaded, task, config)
    trainable = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
    expected = total_base if method_name == "finetune" else EXPECTED_TRAINABLE_LLAMA[method_name]
    assert trainable == expected


def test_prompt_text_init_uses_the_instruction_embeddings():
    _, method, task, loaded, config = _setup("prompt")
    adapted = method.adapt(loaded, task, config)
    ids = loaded.tokenizer(task.instruction, add_special_tokens=False).input_ids
    prompt = adapted.prompt_encoder["default"].embedding.weight
    words = adapted.get_base_model().get_input_embeddings().weight
    assert torch.equal(prompt[0], words[ids[0]]) and torch.equal(prompt[len(ids)], words[ids[0]])  # repeated


# Variants whose saved state is rebuilt on load, not just read (the others' reload check_method covers):
# PiSSA's residual is recomputed, AdaLoRA's factors are cut to the kept ranks, VeRA's projections are
# regenerated from their seed, LN tuning's norms are copies.
REBUILT_ON_LOAD = ["pissa", "adalora", "vera", "ln-tuning"]


@pytest.mark.parametrize("method_name", TRAINABLE + REBUILT_ON_LOAD)
def test_save_then_load_gives_identical_outputs(method_name, tiny, tmp_path):
    from tuning_bench.run.inference import load_trained
    from tuning_bench.run.runner import execute, plan_run
    from tuning_bench.run.settings import RunSettings

    settings = RunSettings(methods=[method_name], tasks=["tiny-gen"], model="tiny-llama", steps=3, batch_size=4,
                           eval_examples=3, val_examples=2, eval_batch_size=4, out=str(tmp_path / "run"),
                           executor="in-process", keep="all")
    catalog = load_catalog()
    data = execute(plan_run(settings, catalog), prepare_model=False)
    cell = data["cells"][0]
    assert cell["status"] == "ok", cell["error"]
    trained = load_trained(tmp_path / "run", catalog, method_name)
    assert cell["family"] == catalog.methods.get(method_name).family and cell["guard"]["passed"]
    inputs = [ex["features"] for ex in catalog.tasks.get("tiny-gen").splits()["test"][:3]]
    assert trained.answer(inputs) == cell["predictions"][:3]
    if method_name != "finetune":
        from peft import PeftModel

        assert isinstance(trained.model, PeftModel)


@pytest.mark.parametrize("method_name", ["zero-shot", "few-shot", "hard-prompt", *TRAINABLE])
@pytest.mark.parametrize("task_name", ["tiny-gen", "tiny-cls"])
def test_every_method_passes_the_generation_guard(method_name, task_name, tiny, tmp_path):
    spec = CellSpec(task=task_name, method=method_name, seed=0, model="tiny-llama", method_config={}, steps=2,
                    batch_size=4, val_examples=2, eval_batch_size=8, eval_examples=6)
    record = run_cell(spec, tmp_path / "cell", None)
    assert record["status"] == "ok", record["error"]
    assert record["guard"]["passed"] and record["guard"]["checked_prompts"] == 2


def test_zero_shot_records_the_exact_prompt(tiny, tmp_path):
    spec = CellSpec(task="tiny-gen", method="zero-shot", seed=0, model="tiny-llama", method_config={}, steps=2,
                    eval_examples=3)
    record = run_cell(spec, tmp_path / "cell", None)
    prompt = record["prompt"]
    assert record["measurements"]["trainable_params"] == 0 and record["measurements"]["steps"] == 0
    assert prompt["shots"] == []
    assert prompt["example_prompt"] == (
        "<|im_start|>system\nDescribe the product.<|im_end|>\n<|im_start|>user\n"
        f"{prompt['example_input']}<|im_end|>\n<|im_start|>assistant\n")


def test_few_shot_examples_come_from_the_train_split_only(tiny, tmp_path):
    catalog = load_catalog()
    task = catalog.tasks.get("tiny-gen")
    train_inputs = {task.render_input(ex) for ex in task.splits()["train"]}
    held_out = {task.render_input(ex) for ex in task.splits()["test"] + task.splits()["validation"]}
    for seed in range(5):
        shots = catalog.methods.get("few-shot").context_examples(task, {"k": 4, "balanced": True}, seed)
        assert len(shots) == 4 and {task.render_input(s) for s in shots} <= train_inputs
        assert not {task.render_input(s) for s in shots} & held_out
    spec = CellSpec(task="tiny-gen", method="few-shot", seed=0, model="tiny-llama", method_config={"k": 2}, steps=1,
                    eval_examples=3)
    record = run_cell(spec, tmp_path / "cell", None)
    assert len(record["prompt"]["shots"]) == 2
    for shot in record["prompt"]["shots"]:
        assert shot["input"] in record["prompt"]["example_prompt"] and shot["input"] in train_inputs


def test_few_shot_classification_shots_are_balanced():
    catalog = load_catalog(["tuning_bench.testing"])
    task = catalog.tasks.get("tiny-cls")
    shots = catalog.methods.get("few-shot").context_examples(task, {"k": 4, "balanced": True}, 0)
    assert sorted(s["label"] for s in shots) == ["negative", "negative", "positive", "positive"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_virtual_tokens": "0"}, "prompt.num_virtual_tokens must be at least 1, got 0"),
        ({"num_virtual_tokens": "many"}, "prompt.num_virtual_tokens expected integer, got 'many'"),
        ({"init": "zeros"}, "prompt.init must be one of text, vocab, random"),
        ({"learning_rate": "-1"}, "prompt.learning_rate must be at least"),
        ({"tokens": "5"}, "Unknown option 'tokens' of method 'prompt'"),
    ],
)
def test_invalid_options_are_one_clear_error(overrides, message):
    catalog = load_catalog()
    with pytest.raises(UsageError, match=None) as info:
        resolve_options("prompt", catalog.methods.get("prompt").options, overrides)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_options_from_suite_file_keep_their_types():
    catalog = load_catalog()
    config = resolve_options("lora", catalog.methods.get("lora").options,
                             {"r": 4, "target_modules": ["q_proj", "k_proj"], "dropout": 0})
    assert config["r"] == 4 and config["target_modules"] == ["q_proj", "k_proj"] and config["dropout"] == 0.0
    with pytest.raises(UsageError, match="lora.r expected integer"):
        resolve_options("lora", catalog.methods.get("lora").options, {"r": 2.5})


def test_invalid_set_fails_before_any_training(cli_runner, tmp_path):
    from tuning_bench.cli.main import cli

    result = cli_runner.invoke(cli, ["run", "--methods", "prompt", "--set", "prompt.num_virtual_tokens=0",
                                     "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "must be at least 1" in result.output
    assert not (tmp_path / "out").exists()
