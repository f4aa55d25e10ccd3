"""Retention (engine/retention.py): before is the base model, an untrained adapter forgets nothing, an
overfitted model forgets, and records, tables, CSV and plots carry the figures."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from tuning_bench.api.kinds import TaskKind
from tuning_bench.api.options import resolve_options
from tuning_bench.engine.cell import CellSpec, run_cell
from tuning_bench.engine.data import encode_task
from tuning_bench.engine.prompting import resolve_format
from tuning_bench.engine.retention import ENCODER_SKIP, PROBE_PROMPTS, RetentionMeter, load_or_make_probe
from tuning_bench.engine.strategies import strategy_for
from tuning_bench.engine.trainer import TrainConfig, make_feeder, mean_loss, train
from tuning_bench.run.records import CellRecord, Retention
from tuning_bench.run.results import csv_text, validate
from tuning_bench.testing import TINY_CLASSIFICATION, TINY_GENERATION, TinyLlama, trained_looking_lora
from tuning_bench_plugins.finetune import FineTune
from tuning_bench_plugins.lora import LoRA
from tuning_bench_plugins.prompt_tuning import PromptTuning

DATA = Path(__file__).parent / "data"


def loaded_and_meter(tmp_path, examples: int = 2):
    loaded = TinyLlama().load(task_kind=TaskKind.GENERATION)
    meter = RetentionMeter(loaded, TINY_GENERATION.name, [TINY_GENERATION, TINY_CLASSIFICATION],
                           resolve_format(loaded.tokenizer), strategy_for(loaded.kind, TINY_GENERATION.kind),
                           torch.device("cpu"), None, 8, 512, examples, 0, tmp_path / "probes")
    meter.measure_base(loaded.model)
    return loaded, meter


def adapt(method, loaded, **options):
    return method.adapt(loaded, TINY_GENERATION, resolve_options(method.name, method.options, options))


def test_an_untrained_adapter_shows_no_forgetting(tmp_path):
    loaded, meter = loaded_and_meter(tmp_path)
    retention = meter.measure_trained(adapt(LoRA(), loaded), LoRA.decoding)  # B = 0: the base model's output
    assert retention.probe_texts == len(PROBE_PROMPTS) and retention.probe_tokens > 0
    assert retention.probe_loss_before > 0
    assert retention.probe_loss_after == pytest.approx(retention.probe_loss_before, abs=1e-5)
    assert abs(retention.probe_loss_change) < 1e-5
    [entry] = retention.tasks  # the other task only, never the cell's own
    assert (entry.task, entry.metric, entry.examples) == ("tiny-cls", "accuracy", 2)
    assert entry.before is not None and entry.change == 0.0 and retention.tasks_change == 0.0


def test_in_bf16_retention_answers_in_one_block_with_the_figures_of_casting_at_every_pass(tmp_path, monkeypatch):
    from contextlib import contextmanager

    from tuning_bench.engine import castcache

    def measured(folder):
        loaded = TinyLlama().load(task_kind=TaskKind.GENERATION)
        meter = RetentionMeter(loaded, TINY_GENERATION.name, [TINY_GENERATION, TINY_CLASSIFICATION],
                               resolve_format(loaded.tokenizer), strategy_for(loaded.kind, TINY_GENERATION.kind),
                               torch.device("cpu"), torch.bfloat16, 8, 512, 2, 0, folder)
        meter.measure_base(loaded.model)
        adapted = trained_looking_lora(adapt(LoRA(), loaded))
        return meter.measure_trained(adapted, LoRA.decoding).to_json()

    blocks = []
    in_one_block = castcache.weights_cast_once

    def counted(model, device, dtype):
        blocks.append(dtype)
        return in_one_block(model, device, dtype)

    @contextmanager
    def every_pass(model, device, dtype):  # no block: autocast casts (and no layer is laid out) at every pass
        with torch.no_grad():
            yield

    monkeypatch.setattr(castcache, "weights_cast_once", counted)
    once = measured(tmp_path / "once")
    assert blocks == [torch.bfloat16, torch.bfloat16]  # the base side and the trained side, one block each
    monkeypatch.setattr(castcache, "weights_cast_once", every_pass)
    again = measured(tmp_path / "every")
    for figures in (once, again):
        figures.pop("seconds")
    assert once == again


def test_before_is_the_base_model_not_a_freshly_initialised_soft_prompt(tmp_path):
    loaded, meter = loaded_and_meter(tmp_path)
    base_loss = meter.base.probe_loss
    adapted = adapt(PromptTuning(), loaded)
    retention = meter.measure_trained(adapted, PromptTuning.decoding)
    assert retention.probe_loss_before == base_loss
    # The initial prompt alone moves the output: a "before" taken from it would not be the base model.
    assert abs(retention.probe_loss_change) > 1e-3
    # PEFT's adapter switched off gives the same "before" as the base model measured before adapt.
    feeder = make_feeder(adapted, loaded.kind, loaded.tokenizer.pad_token_id, torch.device("cpu"), None)
    with adapted.disable_adapter():
        switched_off = mean_loss(adapted, meter.probe.encoded(), feeder, 8)
    assert switched_off == pytest.approx(base_loss, abs=1e-5)


def test_full_fine_tuning_to_overfit_tiny_data_shows_forgetting(tmp_path):
    loaded, meter = loaded_and_meter(tmp_path)
    adapted = adapt(FineTune(), loaded)
    fmt = resolve_format(loaded.tokenizer)
    examples = encode_task(TINY_GENERATION, loaded.tokenizer, loaded.kind, fmt, [], 512).splits["train"][:4]
    feeder = make_feeder(adapted, loaded.kind, loaded.tokenizer.pad_token_id, torch.device("cpu"), None)
    log = train(adapted, examples, [], feeder, TrainConfig(steps=15, batch_size=4, learning_rate=1e-2, seed=0))
    assert log.train_loss[-1] < 0.5 * log.train_loss[0]  # it did overfit the four examples
    retention = meter.measure_trained(adapted, FineTune.decoding)
    assert retention.probe_loss_change > 0.5, retention


def test_the_probe_is_made_once_per_model_and_reused_from_the_cache(tmp_path, monkeypatch):
    loaded, meter = loaded_and_meter(tmp_path)
    [path] = (tmp_path / "probes").glob("probe-*.json")
    stored = json.loads(path.read_text())
    assert stored["prompts"] == list(PROBE_PROMPTS) and len(stored["continuations"]) == len(stored["texts"])
    from tuning_bench.engine import retention

    monkeypatch.setattr(retention, "make_probe", lambda *a: pytest.fail("the cached probe was not reused"))
    again = load_or_make_probe(loaded.model, loaded.tokenizer, loaded.fingerprint, torch.device("cpu"),
                               tmp_path / "probes")
    assert again == meter.probe and again.fingerprint == meter.probe.fingerprint


def cell(tmp_path, name, run_cache=None, **overrides):
    values = dict(task="tiny-gen", method="lora", seed=0, model="tiny-llama", method_config={}, steps=3,
                  batch_size=4, val_examples=4, val_every=3, eval_batch_size=8, samples=1, latency=False,
                  retention_examples=2)
    values.update(overrides)
    record = run_cell(CellSpec(**values), tmp_path / name, run_cache)
    assert record["status"] == "ok", record["error"]
    return CellRecord.from_json(record)


def test_cells_record_retention_for_trained_methods_only(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("TBENCH_CACHE", str(tmp_path / "cache"))
    trained = cell(tmp_path, "lora").measurements.retention
    assert trained.probe_loss_before is not None and trained.probe_loss_change is not None
    assert trained.seconds > 0 and trained.skipped is None
    names = {entry.task for entry in trained.tasks}
    assert "tiny-cls" in names and "tiny-gen" not in names  # every other registered task, not its own
    assert all(entry.examples == 2 for entry in trained.tasks if entry.error is None)
    assert list((tmp_path / "cache" / "retention").glob("probe-*.json"))
    assert cell(tmp_path, "zero", method="zero-shot").measurements.retention is None  # nothing changed
    assert cell(tmp_path, "off", retention_examples=0).measurements.retention.tasks == []
    assert cell(tmp_path, "none", retention=False).measurements.retention is None
    encoder = cell(tmp_path, "bert", model="tiny-bert", task="tiny-cls").measurements.retention
    assert encoder.skipped == ENCODER_SKIP and encoder.probe_loss_before is None


def base_side(retention: Retention) -> tuple:
    """The figures of a retention record that come from the base model."""
    return (retention.probe_loss_before, retention.probe_texts, retention.probe_tokens, retention.probe_fingerprint,
            [(entry.task, entry.before, entry.error) for entry in retention.tasks])


def test_the_base_side_is_measured_once_per_run_and_reused_with_identical_figures(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("TBENCH_CACHE", str(tmp_path / "cache"))
    from tuning_bench.engine import retention

    measured = []
    measure = retention.RetentionMeter._measure_base_model
    monkeypatch.setattr(retention.RetentionMeter, "_measure_base_model",
                        lambda meter, model: (measured.append(meter.own_task), measure(meter, model))[1])
    cells = [dict(method="lora", seed=0), dict(method="lora", seed=1), dict(method="prompt", seed=0)]
    # Without the run's cache folder every cell measures the base model itself, as before.
    alone = [cell(tmp_path, f"alone-{i}", **c) for i, c in enumerate(cells)]
    assert len(measured) == 3 and not any(r.measurements.retention.base_reused for r in alone)
    # With it, the first cell measures and stores the base side; the others read it.
    run_cache = tmp_path / "out" / ".cache"
    shared = [cell(tmp_path, f"shared-{i}", run_cache, **c) for i, c in enumerate(cells)]
    assert len(measured) == 4
    assert [r.measurements.retention.base_reused for r in shared] == [False, True, True]
    assert len(list(run_cache.glob("retention-base-*.json"))) == 1
    for a, s in zip(alone, shared):
        ra, rs = a.measurements.retention, s.measurements.retention
        assert base_side(rs) == base_side(ra) and ra.probe_loss_before is not None
        # The trained side, the changes and everything else the cell measured are unchanged too.
        assert (rs.probe_loss_after, rs.probe_loss_change, rs.tasks_change) == \
            (ra.probe_loss_after, ra.probe_loss_change, ra.tasks_change)
        assert [e.to_json() for e in rs.tasks] == [e.to_json() for e in ra.tasks]
        assert s.curves.train_loss == a.curves.train_loss and s.quality == a.quality
        assert s.measurements.final_val_loss == a.measurements.final_val_loss
    # A setting the base side depends on makes another key: measured again, not read.
    other = cell(tmp_path, "shared-other", run_cache, retention_examples=1)
    assert len(measured) == 5 and other.measurements.retention.base_reused is False
    assert len(list(run_cache.glob("retention-base-*.json"))) == 2


def test_a_damaged_stored_base_side_is_measured_again(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("TBENCH_CACHE", str(tmp_path / "cache"))
    run_cache = tmp_path / ".cache"
    first = cell(tmp_path, "first", run_cache).measurements.retention
    [stored] = run_cache.glob("retention-base-*.json")
    stored.write_text("{not json")
    again = cell(tmp_path, "again", run_cache).measurements.retention
    assert again.base_reused is False and base_side(again) == base_side(first)
    assert json.loads(stored.read_text())["probe_loss"] == first.probe_loss_before  # stored anew


def with_retention(data: dict) -> dict:
    """gen-results.json with a retention record in every trained cell: the change grows with the method's index."""
    data = copy.deepcopy(data)
    methods = sorted({c["method"] for c in data["cells"]})
    for c in data["cells"]:
        if c["status"] == "ok" and c["measurements"].get("steps"):
            change = 0.125 * (methods.index(c["method"]) + 1)
            c["measurements"]["retention"] = {
                "probe_loss_before": 2.0, "probe_loss_after": 2.0 + change, "probe_loss_change": change,
                "tasks": [{"task": "other", "metric": "accuracy", "higher_is_better": True, "examples": 8,
                           "before": 0.5, "after": 0.5 - change / 2, "change": -change / 2}],
                "tasks_change": -change / 2, "seconds": 1.5}
    return validate(data, "with_retention")


def test_records_round_trip_and_tables_csv_and_reports_carry_the_figures():
    from tuning_bench.report import render_html, render_markdown
    from tuning_bench.report.plots import retention_plot
    from tuning_bench.report.tables import build_tasks

    data = with_retention(json.loads((DATA / "gen-results.json").read_text(encoding="utf-8")))
    cells = [CellRecord.from_json(c) for c in data["cells"]]
    for raw, record in zip(data["cells"], cells):
        assert record.to_json() == raw  # key order and all
    retained = [c for c in cells if c.measurements.retention is not None]
    assert retained and isinstance(retained[0].measurements.retention, Retention)
    assert retained[0].measurements.retention.tasks[0].change < 0

    [view] = build_tasks(data)
    by_method = {row.method: row for row in view.rows}
    for row in view.rows:
        if row.trains:
            assert row.values["probe_loss_change"] > 0 and row.values["tasks_change"] < 0
        else:
            assert row.values["probe_loss_change"] is None
    markdown = render_markdown(data)
    assert "Probe loss Δ" in markdown and "Other tasks Δ" in markdown and "gain-vs-retention" in markdown
    some = next(row for row in by_method.values() if row.trains)
    assert f"{some.values['probe_loss_change']:+.3f}" in markdown
    assert "**Retention.**" in markdown and "Probe loss Δ" in render_html(data)

    csv = csv_text(data).splitlines()
    header = csv[0].split(",")
    column = header.index("probe_loss_change")
    values = {float(line.split(",")[column]) for line in csv[1:] if line.split(",")[column]}
    assert values and all(v > 0 for v in values)

    figure = retention_plot(view, {})
    drawn = {text.get_text() for text in figure.axes[0].get_legend().get_texts()}
    assert {row.method for row in view.rows if row.headline.mean is not None} <= drawn
