"""BitFit, a built-in method outside PEFT (it sets requires_grad on the model's own biases), is a
first-class method: its saved size is what it trains, its state is kept under --keep adapters, `tbench
generate` answers with it exactly as the run evaluated, and it declines a model without bias terms
(Llama, SmolLM2) unless asked to tune the norms instead."""

from __future__ import annotations

import pytest
import torch

from conftest import run_tbench
from tuning_bench.engine.cell import CellSpec, run_cell
from tuning_bench.host.plugins import load_catalog
from tuning_bench.testing import check_method


@pytest.fixture
def bitfit(tiny):
    return load_catalog().methods.get("bitfit")


@pytest.mark.parametrize(("model", "task", "trains"), [("tiny-llama", "tiny-gen", "norm"), ("tiny-bert", "tiny-cls", "bias")])
def test_bitfit_keeps_the_contract(bitfit, model, task, trains):
    # the tiny Llama, like SmolLM2, has no biases: it is asked to tune its norms instead
    options = {"norms_when_no_bias": True} if model == "tiny-llama" else {}
    report = check_method(bitfit, model, task, learning_rate=3e-2, options=options)
    assert report["state_kind"] == "trained-tensors"
    assert report["saved_bytes"] == report["trained_bytes"] + report["metadata_bytes"]
    assert report["changed"] and all(trains in name or "classifier" in name for name in report["changed"])


def test_bitfit_state_is_its_size_is_kept_and_answers_through_generate(bitfit, tmp_path, cli_runner):
    from safetensors.torch import load_file

    from tuning_bench.run.inference import load_trained
    from tuning_bench.run.runner import execute, plan_run
    from tuning_bench.run.settings import RunSettings

    settings = RunSettings(methods=["bitfit"], tasks=["tiny-gen"], model="tiny-llama", steps=3, batch_size=4,
                           eval_examples=3, val_examples=2, eval_batch_size=4, out=str(tmp_path / "run"),
                           executor="in-process", options={"bitfit": {"norms_when_no_bias": True}})
    assert settings.keep == "adapters"
    catalog = load_catalog()
    data = execute(plan_run(settings, catalog), prepare_model=False)
    cell = data["cells"][0]
    assert cell["status"] == "ok", cell["error"]
    state = cell["state"]
    assert state["kind"] == "trained-tensors" and state["kept"]
    state_file = tmp_path / "run" / "cells" / cell["key"] / state["path"] / "state.safetensors"
    tensors = load_file(str(state_file))
    trained = sum(t.numel() * t.element_size() for t in tensors.values())
    header = 8 + int.from_bytes(state_file.read_bytes()[:8], "little")
    # the tiny Llama: 2 layers x 2 RMSNorms + the final norm, 32 floats each
    assert trained == 5 * 32 * 4 == cell["measurements"]["trainable_params"] * 4
    assert cell["measurements"]["saved_bytes"] == trained + header and header < 1024

    inputs = [ex["features"] for ex in catalog.tasks.get("tiny-gen").splits()["test"][:3]]
    assert load_trained(tmp_path / "run", catalog, "bitfit").answer(inputs) == cell["predictions"][:3]
    result = run_tbench(cli_runner, "generate", str(tmp_path / "run"), "--method", "bitfit", inputs[0])
    printable = "".join(c for c in cell["predictions"][0] if c.isprintable())  # the console drops control codes
    assert result.exit_code == 0 and f"{inputs[0]}\n  {printable}\n" in result.output


def test_bitfit_is_not_applicable_to_a_model_without_biases_by_default(bitfit, tmp_path):
    spec = CellSpec(task="tiny-gen", method="bitfit", seed=0, model="tiny-llama",
                    method_config={}, steps=2, batch_size=4, eval_examples=2)
    record = run_cell(spec, tmp_path / "cell", None)
    assert record["status"] == "not_applicable" and record["family"] == "selective"
    assert record["error"] == ("tiny-llama has no bias terms to tune "
                               "(set bitfit.norms_when_no_bias=true to tune its norms)")
