"""One strategy per (model kind, task kind); `tbench generate` answers exactly as the run's evaluation did."""

from __future__ import annotations

import pytest
from conftest import run_tbench

from tuning_bench.api.errors import UsageError
from tuning_bench.api.kinds import ModelKind, TaskKind
from tuning_bench.engine.strategies import (CausalClassification, CausalGeneration, EncoderClassification,
                                            PromptContext, strategy_for, unsupported)

INPUT_FIELD = {"tiny-gen": "features", "tiny-cls": "review"}


def _run(tmp_path, model, task, method, **overrides):
    from tuning_bench.host.plugins import load_catalog
    from tuning_bench.run.runner import execute, plan_run
    from tuning_bench.run.settings import RunSettings

    values = dict(methods=[method], tasks=[task], model=model, steps=3, batch_size=4, eval_examples=5,
                  val_examples=2, eval_batch_size=2, out=str(tmp_path / "run"), executor="in-process", keep="all")
    data = execute(plan_run(RunSettings(**(values | overrides)), load_catalog()), prepare_model=False)
    cell = data["cells"][0]
    assert cell["status"] == "ok", cell["error"]
    return cell


@pytest.mark.parametrize(
    ("model", "task", "method", "overrides"),
    [
        ("tiny-llama", "tiny-gen", "prompt", {}),  # soft-prompt decoding, batches of 2 with a partial last one
        ("tiny-llama", "tiny-cls", "lora", {}),
        ("tiny-bert", "tiny-cls", "lora", {"max_length": 6}),  # inputs longer than max_length are truncated
    ],
    ids=["causal-generation", "causal-classification", "encoder-classification"],
)
def test_generate_reproduces_the_recorded_predictions(model, task, method, overrides, tiny, tmp_path, cli_runner):
    from tuning_bench.host.plugins import load_catalog

    cell = _run(tmp_path, model, task, method, **overrides)
    if overrides.get("max_length"):
        assert cell["measurements"]["truncated_examples"] > 0  # so the truncation path is what is compared
    from tuning_bench.run.inference import load_trained

    inputs = [ex[INPUT_FIELD[task]] for ex in load_catalog().tasks.get(task).splits()["test"][:5]]
    assert load_trained(tmp_path / "run", load_catalog(), method).answer(inputs) == cell["predictions"]
    override = ["--device", "cpu", "--precision", "fp32"] if model == "tiny-bert" else []  # the run's own, given
    result = run_tbench(cli_runner, "generate", str(tmp_path / "run"), *inputs, "--method", method, *override)
    assert result.exit_code == 0, result.output
    answers = [line[2:] for line in result.output.splitlines() if line.startswith("  ")]
    assert len(answers) == 5
    if task == "tiny-cls":  # the tiny LM's generated text holds control characters the console drops
        assert answers == cell["predictions"]


def test_latency_answers_as_the_strategy_does(tiny, tmp_path):
    """A causal LM classifies by label likelihood, so its one-example latency generates no tokens."""
    cell = _run(tmp_path, "tiny-llama", "tiny-cls", "zero-shot")
    assert cell["measurements"]["latency_new_tokens"] == 0 and cell["measurements"]["latency_seconds"] > 0
    assert cell["classification_by"] == "label likelihood"


def test_one_strategy_per_model_and_task_kind():
    assert isinstance(strategy_for(ModelKind.CAUSAL_LM, TaskKind.GENERATION), CausalGeneration)
    assert isinstance(strategy_for(ModelKind.CAUSAL_LM, TaskKind.CLASSIFICATION), CausalClassification)
    assert isinstance(strategy_for(ModelKind.ENCODER, TaskKind.CLASSIFICATION), EncoderClassification)
    assert unsupported(ModelKind.ENCODER, TaskKind.GENERATION) == "an encoder model cannot generate text"
    assert unsupported(ModelKind.CAUSAL_LM, TaskKind.GENERATION) is None
    with pytest.raises(ValueError, match="cannot generate"):
        strategy_for(ModelKind.ENCODER, TaskKind.GENERATION)


@pytest.mark.parametrize(("model", "task", "max_length"),
                         [("tiny-llama", "tiny-gen", 512), ("tiny-llama", "tiny-cls", 512), ("tiny-bert", "tiny-cls", 6)])
def test_a_new_input_encodes_as_the_evaluated_example(model, task, max_length, tiny):
    """What `tbench generate` feeds the model is the prompt the evaluation fed it (when the prompt fits)."""
    from tuning_bench.engine.prompting import resolve_format
    from tuning_bench.host.plugins import load_catalog

    catalog = load_catalog()
    task_obj = catalog.tasks.get(task)
    source = catalog.models.get(model)
    loaded = source.load(task_kind=task_obj.kind, labels=task_obj.labels, trust_remote_code=False)
    strategy = strategy_for(loaded.kind, task_obj.kind)
    fmt = resolve_format(loaded.tokenizer, "auto") if loaded.kind is ModelKind.CAUSAL_LM else None
    context = PromptContext(loaded.tokenizer, fmt, task_obj.instruction, [("an input", "an answer")], max_length)
    truncated = 0
    for example in task_obj.splits()["test"]:
        encoded = strategy.encode(context, task_obj, example)
        truncated += encoded.truncated
        assert strategy.encode_input(context, task_obj.render_input(example)) == encoded.prompt_ids
        assert len(encoded.prompt_ids) <= max_length
    assert (truncated > 0) == (max_length == 6)


def test_generate_on_a_device_this_machine_lacks_is_one_line(tiny, tmp_path):
    import torch

    from tuning_bench.run.inference import load_trained
    from tuning_bench.host.plugins import load_catalog

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    _run(tmp_path, "tiny-llama", "tiny-gen", "prompt", eval_examples=1)
    with pytest.raises(UsageError, match="which this machine lacks; answer on the CPU with --device cpu"):
        load_trained(tmp_path / "run", load_catalog(), "prompt", device="cuda")
