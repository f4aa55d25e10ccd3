"""PEFT conventions both ways: a run's PEFT states load with ``PeftModel.from_pretrained`` as they are, and
``tbench export`` hands one over with a model card."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import run_tbench

from tuning_bench.host.plugins import load_catalog
from tuning_bench.run.executor import InProcessExecutor
from tuning_bench.run.export import model_card
from tuning_bench.run.results import load_document
from tuning_bench.run.runner import execute, plan_run
from tuning_bench.run.settings import RunSettings
from tuning_bench.testing import TINY_CLASSIFICATION, tiny_bert, tiny_llama, tiny_tokenizer

# (model, task, the fresh base model the state applies to, PEFT methods) — a new PEFT method is one more name.
CASES = [
    ("tiny-llama", "tiny-gen", lambda: tiny_llama(tiny_tokenizer("bpe", chat=True)),
     ["prompt", "prefix", "ptuning", "lora", "ia3"]),
    ("tiny-bert", "tiny-cls", lambda: tiny_bert(tiny_tokenizer("wordpiece", chat=False, vocab_size=300),
                                                TINY_CLASSIFICATION.labels), ["lora", "ia3"]),
]


def tiny_run(tmp_path: Path, model: str, task: str, methods: list[str], **overrides) -> Path:
    values = dict(methods=methods, tasks=[task], model=model, seeds=[0], steps=2, batch_size=4, eval_examples=3,
                  val_examples=2, eval_batch_size=4, out=str(tmp_path / "run"), executor="in-process", samples=1,
                  latency=False)
    values.update(overrides)
    execute(plan_run(RunSettings(**values), load_catalog()), executor=InProcessExecutor(), prepare_model=False)
    return tmp_path / "run"


def state_dir(run_dir: Path, method: str) -> Path:
    cell = next(c for c in load_document(run_dir).cells if c.method == method)
    assert cell.ok, cell.error
    return run_dir / "cells" / str(cell.key) / cell.state.path


def check_loads_as_is(directory: Path, make_base) -> None:
    """PeftModel.from_pretrained on a fresh base model: every saved tensor lands, and the adapter acts."""
    from peft import PeftModel, get_peft_model_state_dict
    from safetensors.torch import load_file

    base = make_base()
    inputs = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with torch.no_grad():
        before = base(input_ids=inputs).logits[:, -1].clone()
    model = PeftModel.from_pretrained(base, directory).eval()
    saved = load_file(directory / "adapter_model.safetensors")
    loaded = get_peft_model_state_dict(model)
    assert set(loaded) == set(saved), directory
    for name, tensor in saved.items():
        assert torch.equal(loaded[name], tensor), name
    with torch.no_grad():
        after = model(input_ids=inputs).logits[:, -1]
    assert not torch.allclose(before, after), f"{directory}: the loaded adapter changes nothing"


@pytest.mark.parametrize("model, task, make_base, methods", CASES, ids=[c[0] for c in CASES])
def test_peft_states_load_with_peft_model_from_pretrained_as_they_are(tiny, tmp_path, model, task, make_base, methods):
    run_dir = tiny_run(tmp_path, model, task, methods)
    for method in methods:
        directory = state_dir(run_dir, method)
        assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in directory.iterdir()}, method
        check_loads_as_is(directory, make_base)


def test_export_writes_the_state_and_a_model_card(tiny, tmp_path, cli_runner):
    run_dir = tiny_run(tmp_path, "tiny-llama", "tiny-gen", ["zero-shot", "lora"])
    dest = tmp_path / "shared" / "lora-tiny"
    result = run_tbench(cli_runner, "export", str(run_dir), "--method", "lora", str(dest))
    assert result.exit_code == 0, result.output
    assert {p.name for p in dest.iterdir()} == {"adapter_config.json", "adapter_model.safetensors",
                                                  "tbench-prompt.json", "README.md"}
    card = (dest / "README.md").read_text()
    cell = next(c for c in load_document(run_dir).cells if c.method == "lora")
    assert card.startswith("---\nlibrary_name: peft\n")
    assert "# lora on tiny-gen" in card and "Tiny learnable generation task" in card
    assert "| rouge\\_l (higher is better), this state | " in card and "95 % CI \\[" in card
    assert "the run's verdict: mean over 1 seed, paired bootstrap over 3 test examples" in card
    assert "2 steps of 4 examples" in card
    assert f"peft {cell.environment['packages']['peft']}" in card and "transformers " in card
    assert "PeftModel.from_pretrained(base" in card and "weights of tbench's model source \"tiny-llama\"" in card
    check_loads_as_is(dest, CASES[0][2])


def test_the_model_card_escapes_text_from_the_record(tiny, tmp_path):
    run_dir = tiny_run(tmp_path, "tiny-llama", "tiny-gen", ["lora"])
    document = load_document(run_dir)
    cell = document.cells[0]
    cell.task_info["description"] = "a | b <img src=x onerror=alert(1)> *c*"
    card = model_card(document, cell)
    assert "a \\| b &lt;img src=x onerror=alert(1)&gt; \\*c\\*" in card and "<img" not in card


def test_export_errors_are_one_line_with_the_fix(tiny, tmp_path, cli_runner):
    run_dir = tiny_run(tmp_path, "tiny-llama", "tiny-gen", ["zero-shot", "lora"], keep="none")

    def error(*args: str) -> str:
        result = run_tbench(cli_runner, "export", *args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        return " ".join(result.output.split())

    assert "no such run: " in error(str(tmp_path / "nowhere"), "--method", "lora", str(tmp_path / "a"))
    assert "this run has no cell for method 'ia3'; it has: lora, zero-shot" in \
        error(str(run_dir), "--method", "ia3", str(tmp_path / "b"))
    assert ("was not kept (the run used --keep none); run it again with --keep adapters (the default) or --keep all"
            in error(str(run_dir), "--method", "lora", str(tmp_path / "c")))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep me")
    assert "exists and is not an empty folder" in error(str(run_dir), "--method", "zero-shot", str(tmp_path / "full"))
    assert (tmp_path / "full" / "mine.txt").read_text() == "keep me"
