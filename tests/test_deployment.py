"""Deployment cost on tiny models: throughput at batch 8, latency and throughput merged (LoRA, IA3), and the
check that merged answers equal unmerged ones."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
import torch

from tuning_bench.engine.cell import CellSpec, run_cell
from tuning_bench.engine.deployment import SERVE_BATCH, measure_deployment

DEPLOYMENT_KEYS = ("throughput_answers_per_second", "latency_merged_seconds", "throughput_answers_per_second_merged",
                   "merged_outputs_match", "deployment_seconds")


def spec(**overrides) -> CellSpec:
    values = dict(task="tiny-gen", method="lora", seed=0, model="tiny-llama", method_config={}, steps=4,
                  batch_size=4, val_examples=4, val_every=2, eval_batch_size=4, eval_examples=12, samples=1)
    values.update(overrides)
    return CellSpec(**values)


@pytest.mark.parametrize(("method", "model", "task"), [("lora", "tiny-llama", "tiny-gen"), ("ia3", "tiny-llama", "tiny-gen"),
                                                       ("lora", "tiny-llama", "tiny-cls"), ("ia3", "tiny-bert", "tiny-cls")])
def test_merging_methods_record_merged_figures_and_answer_as_unmerged(tiny, tmp_path, method, model, task):
    # a learning rate high enough that the trained update is far from its zero initialisation
    record = run_cell(spec(method=method, model=model, task=task, method_config={"learning_rate": 3e-2}),
                      tmp_path / "c", None)
    assert record["status"] == "ok", record["error"]
    m = record["measurements"]
    assert m["throughput_batch_size"] == min(SERVE_BATCH, m["eval_examples"])  # tiny-cls has 6 test examples
    assert m["throughput_answers_per_second"] > 0 and m["throughput_answers_per_second_merged"] > 0
    assert m["latency_merged_seconds"] > 0 and m["latency_seconds"] > 0
    assert m["merged_outputs_match"] is True and m["merged_answers_differing"] == 0
    assert "merge_refused" not in m and not any("merg" in w for w in record["warnings"])
    assert 0 < m["deployment_seconds"] < record["cell_seconds"]
    assert m["memory"]["serve_peak_rss_bytes"] > 0


@pytest.mark.parametrize("method", ["prompt", "fake-head", "zero-shot"])
def test_methods_with_nothing_to_merge_have_throughput_but_no_merged_figures(tiny, tmp_path, method):
    record = run_cell(spec(method=method), tmp_path / "c", None)
    assert record["status"] == "ok", record["error"]
    m = record["measurements"]
    assert m["throughput_answers_per_second"] > 0
    assert m["latency_merged_seconds"] is None and m["throughput_answers_per_second_merged"] is None
    assert m["merged_outputs_match"] is None


def test_no_latency_means_no_deployment_phase(tiny, tmp_path):
    events = []
    record = run_cell(spec(latency=False), tmp_path / "c", None, events.append)
    assert record["status"] == "ok", record["error"]
    assert not set(DEPLOYMENT_KEYS) & set(record["measurements"])
    assert "serve_peak_rss_bytes" not in record["measurements"]["memory"]
    assert not any(e.get("phase") == "measuring deployment cost" for e in events)


def test_few_test_examples_give_a_smaller_serving_batch(tiny, tmp_path):
    record = run_cell(spec(eval_examples=3), tmp_path / "c", None)
    assert record["status"] == "ok", record["error"]
    assert record["measurements"]["throughput_batch_size"] == 3


def test_lora_merged_context_folds_the_update_into_the_weights_and_restores_them(tiny):
    from tuning_bench.host.plugins import load_catalog
    from tuning_bench.testing import TINY_GENERATION, TinyLlama

    lora = load_catalog([]).methods.get("lora")
    loaded = TinyLlama().load(task_kind=TINY_GENERATION.kind)
    adapted = lora.adapt(loaded, TINY_GENERATION, {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": None,
                                                   "learning_rate": 1e-3}).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    layer = next(m for n, m in adapted.named_modules() if n.endswith("q_proj"))
    original = layer.base_layer.weight.detach().clone()
    torch.manual_seed(0)
    with torch.no_grad():
        base = adapted(input_ids=ids).logits  # LoRA starts with B = 0: the base model's logits
        for name, p in adapted.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # a real update
        unmerged = adapted(input_ids=ids).logits
        with lora.merged(adapted):
            assert layer.merged and not torch.allclose(layer.base_layer.weight, original)
            merged = adapted(input_ids=ids).logits
        assert not layer.merged and torch.allclose(layer.base_layer.weight, original, atol=1e-6)
        after = adapted(input_ids=ids).logits
    assert not torch.allclose(unmerged, base, atol=1e-3)
    assert torch.allclose(merged, unmerged, atol=1e-5) and torch.allclose(after, unmerged, atol=1e-5)


def test_methods_that_change_no_weights_declare_nothing_to_merge(tiny):
    from tuning_bench.api.options import resolve_options
    from tuning_bench.host.plugins import load_catalog
    from tuning_bench.testing import TINY_GENERATION, TinyLlama

    catalog = load_catalog([])
    for name in ("prompt", "prefix", "ptuning", "finetune", "zero-shot"):
        method = catalog.methods.get(name)
        config = resolve_options(name, method.options, {})
        adapted = method.adapt(TinyLlama().load(task_kind=TINY_GENERATION.kind), TINY_GENERATION, config)
        assert method.merged(adapted) is None, name


class _FakeStrategy:
    """Answers "a" per prompt, or "b" while ``merged`` is set (a merge that changed the answers)."""

    def __init__(self):
        self.merged = False

    def answer(self, answerer, prompts):
        return ["b" if self.merged else "a" for _ in prompts]

    def latency(self, answerer, prompt):
        return SimpleNamespace(seconds=0.01, new_tokens=1, text=self.answer(answerer, [prompt])[0])


@dataclass
class _Answerer:
    feeder: object = field(default_factory=lambda: SimpleNamespace(device=torch.device("cpu"), autocast_dtype=None))
    generation: object = None
    batch_size: int = 128
    progress: object = None


def _measure(strategy, merged):
    method = SimpleNamespace(merged=lambda adapted: merged)
    return measure_deployment(strategy, _Answerer(), [[1, 2]] * 10, method, None, {"text": "a"})


def test_merged_answers_that_differ_are_recorded_with_a_warning():
    strategy = _FakeStrategy()

    @contextmanager
    def merged():
        strategy.merged = True
        yield
        strategy.merged = False

    result = _measure(strategy, merged())
    assert result.merged_outputs_match is False and result.merged_answers_differing == SERVE_BATCH + 1
    assert result.measurements()["merged_outputs_match"] is False
    assert f"changed {SERVE_BATCH + 1} of {SERVE_BATCH + 1} greedy answers" in result.warning()
    assert not strategy.merged  # the model is restored


def test_a_refused_merge_is_recorded_without_merged_figures():
    @contextmanager
    def refused():
        raise ValueError("Cannot merge LORA layers when the model is tied\nlong explanation")
        yield

    result = _measure(_FakeStrategy(), refused())
    assert result.latency_merged_seconds is None and result.merged_outputs_match is None
    assert result.measurements()["merge_refused"] == "ValueError: Cannot merge LORA layers when the model is tied"
    assert "merge failed" in result.warning()
    assert result.throughput_answers_per_second > 0

    @contextmanager
    def not_implemented():  # what PEFT raises for IA3 on a bitsandbytes layer
        raise NotImplementedError
        yield

    result = _measure(_FakeStrategy(), not_implemented())
    assert result.merge_refused == "NotImplementedError: no message" and result.latency_merged_seconds is None


def _with_deployment(data: dict) -> dict:
    """gen-results.json as if measured with deployment cost: throughput everywhere, merged for lora and ia3."""
    for cell in data["cells"]:
        if cell["status"] == "ok":
            m = cell["measurements"]
            m["throughput_answers_per_second"] = 12.5
            if cell["method"] in ("lora", "ia3"):
                m.update(latency_merged_seconds=0.0123, throughput_answers_per_second_merged=14.25,
                         merged_outputs_match=True)
    return data


def test_reports_show_deployment_figures_only_where_measured():
    from rich.console import Console
    from test_report import load, table_rows

    from tuning_bench.report import render_html, render_markdown, terminal_tables
    from tuning_bench.run.results import csv_text

    plain = render_markdown(load("gen-results.json"))
    plain_header = next(line for line in plain.splitlines() if line.startswith("| Method | n |"))
    assert "Latency merged" not in plain_header and "Answers/s" not in plain_header  # older records, --quick
    data = _with_deployment(load("gen-results.json"))
    markdown = render_markdown(data)
    header = next(line for line in markdown.splitlines() if line.startswith("| Method | n |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    rows = {r[0]: r for r in table_rows(markdown, "| Method | n |")}
    merged, throughput = columns.index("Latency merged"), columns.index("Answers/s (batch 8)")
    assert rows["lora"][merged] == "12.3 ms" and rows["prefix"][merged] == "—"
    assert rows["prefix"][throughput] == "12.5" and "Answers/s merged" in columns
    assert "Deployment cost" in markdown  # its one-line definition
    assert "Latency merged" in render_html(data, plots={})
    assert "latency_merged_seconds" in csv_text(data).splitlines()[0]
    console = Console(record=True, width=80, color_system=None, file=open("/dev/null", "w"))
    for table in terminal_tables(data):
        console.print(table)
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80 and not any("…" in line for line in lines)
    head = next(line for line in lines if "Params" in line)
    assert "Merged ms" in head and "Ans/s" in head
    lora = next(line for line in lines if line.split()[:1] == ["lora"])
    assert "12.3" in lora.split() and "12.5" in lora.split()


def test_cuda_peaks_show_the_reserved_peak_beside_the_allocated_one():
    from test_report import load, table_rows

    from tuning_bench.report import render_markdown
    from tuning_bench.report.tables import COST_COLUMNS

    data = load("gen-results.json")
    for cell in data["cells"]:
        cell["measurements"]["memory"] = {"device_type": "cuda", "train_peak_allocated_bytes": 2 * 1024 ** 3,
                                          "train_peak_reserved_bytes": 3 * 1024 ** 3,
                                          "eval_peak_allocated_bytes": 1024 ** 3}
    rows = {r[0]: r for r in table_rows(render_markdown(data), "| Method | n |")}
    train = 3 + [c.key for c in COST_COLUMNS].index("train_peak_bytes")
    assert rows["lora"][train] == "2.00 GiB (3.00 GiB reserved)"
    assert rows["lora"][train + 1] == "1.00 GiB"  # no reserved figure recorded: the allocated one alone
