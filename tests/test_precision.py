"""Precision chosen by measurement: the probe's decision, its cache, the forced-bf16 warning, bf16 cells on CPU."""

from __future__ import annotations

import json

import pytest
import torch

from tuning_bench.engine import precision
from tuning_bench.engine.cell import CellSpec, run_cell
from tuning_bench.engine.precision import MIN_SPEEDUP, Probe, choose_precision
from tuning_bench.engine.precision import cached_probe as real_cached_probe  # conftest pins the module's name

FAST = Probe(fp32_seconds=0.010, bf16_seconds=0.003)  # 3.33x
SLOW = Probe(fp32_seconds=0.005, bf16_seconds=0.25)  # 0.02x: no bf16 instructions, emulated


def _never() -> Probe:
    raise AssertionError("the probe must not run here")


def test_fast_bf16_is_chosen_and_the_reason_carries_the_measured_ratio():
    choice = choose_precision("auto", "cpu", probe=lambda: FAST)
    assert choice.precision == "bf16" and choice.warning is None
    assert "3.33x the speed of fp32" in choice.reason
    record = choice.as_record()
    assert record["probe"]["bf16_speedup"] == pytest.approx(3.333, abs=1e-3)
    assert record["device_name"] and record["requested"] == "auto"


@pytest.mark.parametrize("probe", [SLOW, Probe(0.010, 0.010 / (MIN_SPEEDUP - 0.1))], ids=["much-slower", "marginal"])
def test_slow_or_marginal_bf16_resolves_to_fp32(probe):
    choice = choose_precision("auto", "cpu", probe=lambda: probe)
    assert choice.precision == "fp32" and choice.warning is None
    assert f"below the {MIN_SPEEDUP}x needed" in choice.reason


def test_fp32_asked_for_is_not_probed():
    choice = choose_precision("fp32", "cpu", probe=_never)
    assert choice.precision == "fp32" and choice.probe is None and choice.as_record()["reason"] == "requested"


def test_forced_bf16_on_a_slow_cpu_runs_with_a_one_line_warning():
    choice = choose_precision("bf16", "cpu", probe=lambda: SLOW)
    assert choice.precision == "bf16"
    assert choice.warning and "\n" not in choice.warning and "0.02x the speed of fp32" in choice.warning
    assert "50x" not in choice.warning  # no claim about another machine
    assert choose_precision("bf16", "cpu", probe=lambda: FAST).warning is None


@pytest.mark.parametrize(("supported", "expected"), [(True, "bf16"), (False, "fp32")])
def test_cuda_keeps_bf16_where_supported_without_a_probe(monkeypatch, supported, expected):
    from tuning_bench.engine import measure

    monkeypatch.setattr(measure, "device_name", lambda device: "a GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)
    choice = choose_precision("auto", "cuda", probe=_never)
    assert choice.precision == expected and choice.probe is None


class CountingMeasure:
    def __init__(self, probe: Probe):
        self.probe, self.calls = probe, 0

    def __call__(self) -> Probe:
        self.calls += 1
        return self.probe


def test_probe_is_cached_per_machine_and_read_back(tmp_path):
    measure = CountingMeasure(FAST)
    first = real_cached_probe(measure, tmp_path)
    second = real_cached_probe(measure, tmp_path)
    assert measure.calls == 1 and not first.cached and second.cached
    assert (second.fp32_seconds, second.bf16_seconds) == (FAST.fp32_seconds, FAST.bf16_seconds)
    [path] = tmp_path.glob("bf16-probe-*.json")
    stored = json.loads(path.read_text())
    assert stored["key"] == precision.machine_key() and stored["key"]["torch"] == torch.__version__
    assert stored["key"]["cpu"] and stored["bf16_speedup"] == pytest.approx(FAST.speedup)


@pytest.mark.parametrize("damage", ["{not json", "[]", '{"key": {}, "fp32_seconds": 1, "bf16_seconds": 1, "rounds": 1}',
                                    "negative"])
def test_a_damaged_cache_file_is_measured_again_and_replaced(tmp_path, damage):
    path = precision.cache_file(precision.machine_key(), tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if damage == "negative":  # the right key, impossible timings
        damage = json.dumps({"key": precision.machine_key(), "fp32_seconds": -1, "bf16_seconds": 1, "rounds": 1})
    path.write_text(damage)
    measure = CountingMeasure(SLOW)
    assert not real_cached_probe(measure, tmp_path).cached and measure.calls == 1
    assert real_cached_probe(measure, tmp_path).cached and measure.calls == 1  # rewritten, valid now


def test_an_unwritable_cache_still_gives_a_measurement(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert real_cached_probe(CountingMeasure(FAST), blocker / "sub").speedup == pytest.approx(FAST.speedup)


def test_cache_lives_in_the_tbench_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TBENCH_CACHE", str(tmp_path))
    assert precision.cache_file(precision.machine_key()).parent == tmp_path / "precision"


def test_the_real_probe_measures_both_and_leaves_the_thread_count_alone():
    threads = torch.get_num_threads()
    probe = precision.measure()
    assert probe.fp32_seconds > 0 and probe.bf16_seconds > 0
    assert precision._MIN_ROUNDS <= probe.rounds <= precision._MAX_ROUNDS
    assert torch.get_num_threads() == threads


GENERATING = ["zero-shot", "few-shot", "prompt", "prefix", "ptuning", "lora", "ia3", "finetune"]


def _cell(tmp_path, method, precision_name, **overrides):
    values = dict(task="tiny-gen", method=method, seed=0, model="tiny-llama", method_config={}, steps=4, batch_size=4,
                  val_examples=4, val_every=2, eval_batch_size=4, eval_examples=6, samples=2, precision=precision_name)
    values.update(overrides)
    return run_cell(CellSpec(**values), tmp_path / f"{method}-{precision_name}", None)


@pytest.mark.parametrize("method", GENERATING)
def test_tiny_cells_run_in_bf16_on_cpu_and_pass_the_generation_guard(tiny, tmp_path, method):
    record = _cell(tmp_path, method, "bf16")
    assert record["status"] == "ok", record["error"]
    assert record["guard"]["passed"] and record["guard"]["compared_tokens"] >= 2, record["guard"]
    assert record["config"]["precision"] == "bf16"


def test_bf16_autocast_is_in_effect_on_cpu_and_close_to_fp32(tiny, tmp_path):
    fp32 = _cell(tmp_path, "lora", "fp32")["measurements"]
    bf16 = _cell(tmp_path, "lora", "bf16")["measurements"]
    assert bf16["final_train_loss"] != fp32["final_train_loss"]  # bf16 rounding changed the arithmetic
    assert bf16["final_train_loss"] == pytest.approx(fp32["final_train_loss"], rel=0.05)


def test_bf16_encoder_cell_on_cpu(tiny, tmp_path):
    record = _cell(tmp_path, "lora", "bf16", task="tiny-cls", model="tiny-bert")
    assert record["status"] == "ok", record["error"]


def _run_args(tmp_path, *extra):
    return ["run", "--model", "tiny-llama", "--tasks", "tiny-gen", "--methods", "lora", "--steps", "2",
            "--eval-examples", "2", "--executor", "in-process", "--out", str(tmp_path / "run"), *extra]


def test_forced_bf16_on_a_slow_cpu_warns_and_records_why(tiny, tmp_path, cli_runner, monkeypatch):
    from tuning_bench.cli.main import cli
    from tuning_bench.run.results import load_results

    monkeypatch.setattr(precision, "cached_probe", lambda: SLOW)
    result = cli_runner.invoke(cli, _run_args(tmp_path, "--precision", "bf16", "--device", "cpu"))
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: --precision bf16")]
    assert len(warnings) == 1 and "0.02x the speed of fp32" in warnings[0]
    data = load_results(tmp_path / "run")
    assert data["run"]["precision"] == "bf16" and data["cells"][0]["guard"]["passed"]
    assert data["run"]["precision_choice"]["warning"] == warnings[0].removeprefix("warning: ")


def test_auto_on_a_fast_bf16_cpu_runs_bf16_and_records_the_ratio_and_cpu(tiny, tmp_path, cli_runner, monkeypatch):
    from tuning_bench.cli.main import cli
    from tuning_bench.engine.measure import cpu_name
    from tuning_bench.run.results import load_results

    monkeypatch.setattr(precision, "cached_probe", lambda: FAST)
    result = cli_runner.invoke(cli, _run_args(tmp_path))
    assert result.exit_code == 0, result.output
    assert "warning:" not in result.output
    data = load_results(tmp_path / "run")
    choice = data["run"]["precision_choice"]
    assert data["run"]["precision"] == "bf16" and data["cells"][0]["config"]["precision"] == "bf16"
    assert choice["probe"]["bf16_speedup"] == pytest.approx(FAST.speedup, abs=1e-3)
    assert cpu_name() in choice["device_name"] and cpu_name() in choice["reason"]


def test_auto_defaults_to_fp32_in_the_tests_whatever_the_cpu(tiny, tmp_path):
    """conftest pins the probe, so the other tests' results do not depend on the machine's bf16 speed."""
    assert choose_precision("auto", "cpu").precision == "fp32"


def test_bf16_tie_margin_scales_with_the_logit_fp32_stays_tight():
    from tuning_bench.engine.generation import GenerationSettings, _tie_margin

    def settings(dtype):
        return GenerationSettings(8, (0,), 0, 4, True, torch.device("cpu"), dtype)

    assert _tie_margin(settings(None), 32.0) == 1e-3
    assert _tie_margin(settings(torch.bfloat16), 32.0) == 1.0  # a bf16 logit near 32 is resolved to 0.25
    assert _tie_margin(settings(torch.bfloat16), 0.5) == 0.05


def test_a_wrong_generation_still_fails_the_guard_in_bf16(tiny, tmp_path, monkeypatch):
    import tuning_bench.engine.generation as generation

    real = generation.generate_batch

    def corrupted(model, prompts, settings, max_new_tokens=None):
        return [[(t + 1) % 300 for t in row] + [7] for row in real(model, prompts, settings, max_new_tokens)]

    monkeypatch.setattr(generation, "generate_batch", corrupted)
    record = _cell(tmp_path, "lora", "bf16", steps=1)
    assert record["status"] == "failed" and record["error"].startswith("generation guard failed")
