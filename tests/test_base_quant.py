"""--base-quant nf4|int8: validation, the cache key, not_applicable (never a crash) where the installation or
the device cannot load a quantized base, and a QLoRA-style cell where bitsandbytes works."""

from __future__ import annotations

import pytest
import torch

from tuning_bench.api.errors import UsageError
from tuning_bench.api.model import LoadedModel
from tuning_bench.engine.cell import CellSpec, run_cell
from tuning_bench.models import quantization
from tuning_bench.run.settings import check_value


def spec(**overrides) -> CellSpec:
    values = dict(task="tiny-gen", method="lora", seed=0, model="tiny-llama", method_config={}, steps=2,
                  batch_size=4, val_examples=4, eval_batch_size=4, eval_examples=4, samples=1)
    values.update(overrides)
    return CellSpec(**values)


def test_base_quant_accepts_its_choices_and_refuses_anything_else():
    assert check_value("base_quant", "nf4", "--base-quant") == "nf4"
    assert check_value("base_quant", "int8", "x") == "int8"
    assert check_value("base_quant", None, "x") is None
    for wrong in ("fp4", "NF4", "", 4):
        with pytest.raises(UsageError, match="base_quant"):
            check_value("base_quant", wrong, "suite.yaml: key 'base_quant'")


def test_the_run_command_refuses_an_unknown_base_quant_in_one_line(tmp_path):
    from click.testing import CliRunner

    from tuning_bench.cli.main import cli

    result = CliRunner().invoke(cli, ["run", "--base-quant", "fp4", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "'fp4' is not one of 'nf4', 'int8'" in result.output


def test_a_suite_file_refuses_an_unknown_base_quant(tmp_path):
    from tuning_bench.run.settings import load_suite

    suite = tmp_path / "suite.yaml"
    suite.write_text("base_quant: q4\n")
    with pytest.raises(UsageError, match="base_quant must be one of nf4, int8"):
        load_suite(suite)
    suite.write_text("base_quant: nf4\n")
    assert load_suite(suite) == {"base_quant": "nf4"}


def test_base_quant_is_part_of_the_cache_key():
    from tuning_bench.run.cellcache import cell_key as _cell_key

    keys = {quant: _cell_key(spec(base_quant=quant), "task", "model") for quant in (None, "nf4", "int8")}
    assert len(set(keys.values())) == 3


@pytest.mark.parametrize("quant", ["nf4", "int8"])
@pytest.mark.parametrize("method", ["lora", "finetune", "zero-shot"])
def test_without_bitsandbytes_every_cell_is_not_applicable_with_the_reason(tiny, tmp_path, monkeypatch, quant, method):
    monkeypatch.setattr(quantization.importlib.util, "find_spec", lambda name: None)  # as on this project's CPUs
    record = run_cell(spec(base_quant=quant, method=method), tmp_path / "c", None)
    assert record["status"] == "not_applicable"
    assert record["error"] == f"--base-quant {quant} needs bitsandbytes, which is not installed here (pip install bitsandbytes)"


def test_a_backend_that_fails_its_probe_makes_the_cell_not_applicable_with_its_error(tiny, tmp_path, monkeypatch):
    def no_kernel(quant, device):
        raise RuntimeError("no kernel image is available for execution on the device\nmore detail")

    monkeypatch.setattr(quantization.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(quantization, "_probe", no_kernel)
    record = run_cell(spec(base_quant="nf4"), tmp_path / "c", None)
    assert record["status"] == "not_applicable"
    assert record["error"].startswith("--base-quant nf4: bitsandbytes ")
    assert record["error"].endswith("cannot run nf4 on cpu here (RuntimeError: no kernel image is available for "
                                    "execution on the device)")


def test_a_source_that_loads_unquantized_makes_the_cell_not_applicable(tiny, tmp_path, monkeypatch):
    # As if on a GPU with bitsandbytes: the tiny source builds its model itself, ignoring the quantized load.
    monkeypatch.setattr(quantization, "unavailable", lambda quant, device: None)
    record = run_cell(spec(base_quant="nf4"), tmp_path / "c", None)
    assert record["status"] == "not_applicable"
    assert record["error"].startswith("model source tiny-llama did not load a quantized base")


def test_quantized_loading_hands_load_pretrained_the_bitsandbytes_config_for_one_load():
    assert quantization.load_arguments() == {}
    with quantization.quantized_loading("nf4", torch.device("cpu"), torch.bfloat16):
        nf4 = quantization.load_arguments()
    assert quantization.load_arguments() == {}
    config = nf4["quantization_config"]
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16 and nf4["device_map"] == {"": "cpu"}
    with quantization.quantized_loading("int8", torch.device("cpu"), torch.float32):
        assert quantization.load_arguments()["quantization_config"].load_in_8bit
    with quantization.quantized_loading(None, torch.device("cpu"), torch.float32):
        assert quantization.load_arguments() == {}


def test_full_fine_tuning_is_not_applicable_to_a_quantized_base(tiny):
    from tuning_bench.host.plugins import load_catalog
    from tuning_bench.testing import TINY_GENERATION, TinyLlama

    finetune = load_catalog([]).methods.get("finetune")
    loaded = TinyLlama().load(task_kind=TINY_GENERATION.kind)
    assert not loaded.quantized and finetune.not_applicable_to(loaded, TINY_GENERATION, {}) is None
    loaded.model.hf_quantizer = object()  # what transformers sets on a model it loaded quantized
    assert isinstance(loaded, LoadedModel) and loaded.quantized
    assert "quantized base" in finetune.not_applicable_to(loaded, TINY_GENERATION, {})


@pytest.mark.parametrize("quant", ["nf4", "int8"])
def test_a_quantized_lora_cell_runs_where_bitsandbytes_works_on_the_device(tiny, tmp_path, quant):
    """Needs bitsandbytes (not a dependency of tbench): skipped without it, or where its probe fails."""
    pytest.importorskip("bitsandbytes")
    if quantization.unavailable(quant, torch.device("cpu")):
        pytest.skip(quantization.unavailable(quant, torch.device("cpu")))
    from tuning_bench.testing import tiny_llama, tiny_tokenizer

    folder = tmp_path / "tiny-llama"
    tokenizer = tiny_tokenizer("bpe", chat=True)
    tiny_llama(tokenizer, hidden=64).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    record = run_cell(spec(model=str(folder), base_quant=quant, eval_examples=8), tmp_path / "c", None)
    assert record["status"] == "ok", record["error"]
    m = record["measurements"]
    assert m["steps"] == 2 and m["trainable_params"] > 0 and m["latency_merged_seconds"] > 0
    assert record["config"]["base_quant"] == quant
    finetune = run_cell(spec(model=str(folder), base_quant=quant, method="finetune"), tmp_path / "f", None)
    assert finetune["status"] == "not_applicable" and "quantized base" in finetune["error"]


def test_generate_loads_a_quantized_runs_base_quantized_or_says_why_not(tiny, tmp_path, monkeypatch):
    import json

    from test_runner import _run, settings

    from tuning_bench.host.plugins import load_catalog
    from tuning_bench.run.inference import load_trained

    _run(settings(tmp_path, seeds=[0], methods=["lora"], latency=False))
    results = tmp_path / "run" / "results.json"
    data = json.loads(results.read_text())
    data["cells"][0]["config"]["base_quant"] = "nf4"  # as a --base-quant nf4 run records it
    results.write_text(json.dumps(data))
    monkeypatch.setattr(quantization.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UsageError, match="the run loaded its base model quantized: --base-quant nf4 needs bitsandbytes"):
        load_trained(tmp_path / "run", load_catalog(), "lora")
