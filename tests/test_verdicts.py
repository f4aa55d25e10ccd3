"""Paired bootstrap, verdicts and per-example scores: synthetic records with known differences."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from tuning_bench.metrics import compute_metrics, example_scores
from tuning_bench.report import compare_runs, render_html, render_markdown, terminal_verdicts
from tuning_bench.report.html import SORT_SCRIPT
from tuning_bench.report.verdicts import build_verdicts, change_interval, verdicts_of
from tuning_bench.run.results import SCHEMA, validate
from tuning_bench.stats.bootstrap import example_weights
from tuning_bench.stats.samples import cell_statistic

DATA = Path(__file__).parent / "data"


def cell(method: str, seed: int, scores: list[float], trains: bool = True, params: int = 1000,
         peak: int = 2 ** 30, seconds: float = 10.0) -> dict:
    n = len(scores)
    return {"task": "t", "method": method, "seed": seed, "status": "ok", "error": None, "trial": "",
            "quality": {"rouge_l": float(np.mean(scores))},
            "headline": {"metric": "rouge_l", "value": float(np.mean(scores)), "higher_is_better": True},
            "measurements": {"trainable_params": params if trains else 0, "steps": 10 if trains else 0,
                             "train_seconds": seconds if trains else 0.0,
                             "memory": {"device_type": "cpu", "train_peak_rss_bytes": peak, "eval_peak_rss_bytes": peak}},
            "predictions": [""] * n,
            "per_example": {"index": list(range(n)), "references": [""] * n, "scores": {"rouge_l": list(scores)},
                            "statistics": {}}}


def record(cells: list[dict], quick: bool = False) -> dict:
    methods = list(dict.fromkeys(c["method"] for c in cells))
    return validate({"schema": SCHEMA, "schema_version": 2, "cells": cells, "environment": {},
                     "run": {"tasks": ["t"], "methods": methods, "seeds": [0, 1, 2], "quick": quick},
                     "tasks": {"t": {"headline": "rouge_l", "higher_is_better": True, "kind": "generation",
                                     "metrics": ["rouge_l"]}}}, "test")


def scores(mean: float, n: int = 100, seed: int = 0, noise: float = 0.15) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(np.clip(mean + noise * rng.standard_normal(n), 0, 1))


def three_seeds(method: str, mean: float, **costs) -> list[dict]:
    return [cell(method, s, scores(mean, seed=s), **costs) for s in range(3)]


def test_a_large_difference_is_separated_and_named():
    data = record(three_seeds("good", 0.7, params=500) + three_seeds("bad", 0.4)
                  + [cell("zero-shot", s, scores(0.2, seed=s), trains=False) for s in range(3)])
    [verdict] = build_verdicts(data)
    assert verdict["best"] == ["good"]
    assert verdict["best_group"] == ["good"]
    assert verdict["separated_below_best"] == ["bad", "zero-shot"]
    bad = verdict["methods"]["bad"]
    assert bad["difference_ci95"][1] < 0  # the whole interval below the best
    assert bad["difference_ci95"][0] < bad["difference_to_best"] < bad["difference_ci95"][1]
    assert verdict["separation_estimate"] is None and not verdict["smoke"]


def test_a_tiny_difference_is_not_separated_and_the_sentence_estimates_the_examples_needed():
    base = [scores(0.5, seed=s) for s in range(3)]
    data = record([cell("a", s, [v + 0.004 for v in base[s]], params=9000) for s in range(3)]
                  + [cell("b", s, list(np.array(base[s]) + 0.05 * np.random.default_rng(10 + s).standard_normal(100)),
                          params=100) for s in range(3)])
    [verdict] = build_verdicts(data)
    assert set(verdict["best_group"]) == {"a", "b"} and verdict["separated_below_best"] == []
    assert verdict["cheapest"]["trainable_params"]["methods"] == ["b"]
    estimate = verdict["separation_estimate"]
    assert estimate is not None and estimate["examples_needed"] > 100
    assert any(s.startswith("Little is separated") and f"{estimate['examples_needed']:,}" in s for s in verdict["summary"])


def test_the_bootstrap_is_deterministic_under_its_seed():
    data = record(three_seeds("a", 0.55) + three_seeds("b", 0.5))
    first = json.dumps(build_verdicts(data), sort_keys=True)
    assert json.dumps(build_verdicts(copy.deepcopy(data)), sort_keys=True) == first
    other = build_verdicts(data, seed=7)[0]["methods"]["a"]["ci95"]
    assert other != json.loads(first)[0]["methods"]["a"]["ci95"]


def test_seeds_are_resampled_so_disagreeing_seeds_widen_the_interval():
    same = record([cell("a", s, scores(0.5, seed=0)) for s in range(3)])
    spread = record([cell("a", s, [v + 0.1 * (s - 1) for v in scores(0.5, seed=0)]) for s in range(3)])
    width = lambda d: np.diff(build_verdicts(d)[0]["methods"]["a"]["ci95"])[0]  # noqa: E731
    assert width(spread) > 1.5 * width(same)


def test_verdict_json_shape():
    [verdict] = build_verdicts(record(three_seeds("a", 0.6) + three_seeds("b", 0.3)))
    for key in ("task", "metric", "best", "not_separated_from_best", "separated_below_best", "cheapest", "methods"):
        assert key in verdict
    assert set(verdict["cheapest"]) == {"trainable_params", "train_peak_memory", "train_seconds"}
    for entry in verdict["methods"].values():
        low, high = entry["ci95"]
        assert low <= entry["mean"] <= high


def test_a_quick_run_says_it_supports_no_conclusion():
    few = build_verdicts(record([cell("a", 0, [1, 0, 1, 1]), cell("b", 0, [0, 0, 1, 1])]))[0]
    assert few["smoke"] and "supports no conclusion" in few["summary"][0]  # 4 examples: smoke even without --quick
    clear = three_seeds("a", 0.8) + three_seeds("b", 0.2)
    assert not build_verdicts(record(clear))[0]["smoke"]
    [verdict] = build_verdicts(record(clear, quick=True))  # the same data, marked --quick
    assert verdict["smoke"] and "supports no conclusion" in verdict["summary"][0]


def test_per_example_mean_equals_the_aggregate_for_every_per_example_metric():
    predictions = ["the cat sat", "a b c", '{"a": 1, "b": "X"}', "positive", ""]
    references = ["the cat sat down", "a b d", '{"a": 1, "b": "x"}', "positive", "nothing"]
    rouge = example_scores(["rouge_l", "accuracy"], predictions, references)["scores"]
    totals = compute_metrics(["rouge_l", "accuracy"], predictions, references)
    for name in ("rouge_l", "accuracy"):
        assert len(rouge[name]) == 5 and np.mean(rouge[name]) == pytest.approx(totals[name], abs=1e-12)
    json_refs = ['{"a": 1}', '{"a": 1, "b": 2}', '{"c": "x"}']
    json_preds = ['{"a": 1}', '{"a": 1, "b": 3}', "not json"]
    per = example_scores(["json_field_f1", "json_exact_match"], json_preds, json_refs)["scores"]
    totals = compute_metrics(["json_field_f1", "json_exact_match"], json_preds, json_refs)
    assert per["json_exact_match"] == [1.0, 0.0, 0.0]
    for name in ("json_field_f1", "json_exact_match"):
        assert np.mean(per[name]) == pytest.approx(totals[name], abs=1e-12)


def _corpus_cell(metric: str, predictions: list[str], references: list[str]) -> dict:
    per = example_scores([metric], predictions, references)
    return {"predictions": predictions, "per_example": {"index": list(range(len(predictions))), "references": references, **per}}


@pytest.mark.parametrize("metric, predictions, references", [
    ("macro_f1", ["a", "a", "b", "c", "zzz", "b"], ["a", "b", "b", "c", "a", "c"]),
    ("chrf", ["the cat sat", "", "hello world", "abc"], ["the cat sat down", "x", "hello there world", "abd"]),
])
def test_corpus_metrics_are_recomputed_exactly_on_each_resample(metric, predictions, references):
    statistic = cell_statistic(_corpus_cell(metric, predictions, references), metric, list(range(len(predictions))))
    assert statistic.value() == pytest.approx(compute_metrics([metric], predictions, references)[metric], abs=1e-9)
    weights = example_weights(len(predictions), resamples=5, seed=3)
    values = statistic.resampled(weights)
    for row, value in zip(weights.astype(int), values):
        drawn = [i for i, times in enumerate(row) for _ in range(times)]
        expected = compute_metrics([metric], [predictions[i] for i in drawn], [references[i] for i in drawn])[metric]
        assert value == pytest.approx(expected, abs=1e-9)


def test_reports_show_the_verdict_first():
    data = record(three_seeds("a", 0.6) + three_seeds("b<script>", 0.3))
    data["verdicts"] = build_verdicts(data)
    markdown = render_markdown(data)
    assert markdown.index("## Verdict") < markdown.index("Model **") < markdown.index("## Task:")
    assert "Best on rouge\\_l: a" in markdown
    page = render_html(data)
    assert page.index('id="verdict"') < page.index("<p>Model") < page.index('id="task-0"', page.index("</nav>"))
    assert "<script>" not in page.split("<style>")[0] + page.split("</style>")[1].replace(f"<script>{SORT_SCRIPT}</script>", "")
    assert "b&lt;script&gt;" in page
    console = Console(width=200, record=True, file=open("/dev/null", "w"))
    for item in terminal_verdicts(data):
        console.print(item)
    text = console.export_text()
    assert text.startswith("Best on rouge_l: a") and "below best" in text


def test_a_results_file_from_before_per_example_scores_still_reports():
    data = validate(json.loads((DATA / "gen-results.json").read_text(encoding="utf-8")), "gen")
    assert data["schema_version"] == 1
    [verdict] = verdicts_of(data)
    assert not verdict["computed"] and "no per-example scores" in verdict["summary"][0]
    assert "no per-example scores" in render_markdown(data)


def test_compare_gives_a_paired_interval_for_each_methods_change():
    before = record(three_seeds("a", 0.5))
    after = record([cell("a", s, [min(1.0, v + 0.2) for v in scores(0.5, seed=s)][:80]) for s in range(3)])
    change = change_interval(before["cells"], after["cells"], "rouge_l")
    assert change["examples"] == 80  # only the examples both runs scored
    assert 0.1 < change["ci95"][0] < change["change"] < change["ci95"][1]
    same = change_interval(before["cells"], copy.deepcopy(before["cells"]), "rouge_l")
    assert same["change"] == 0 and same["ci95"] == [0.0, 0.0]
    console = Console(width=250, record=True, file=open("/dev/null", "w"))
    for table in compare_runs(before, after):
        console.print(table)
    assert "n=80" in console.export_text()


def test_a_real_run_records_per_example_scores_and_verdicts(tiny, tmp_path):
    from tuning_bench.host.plugins import load_catalog
    from tuning_bench.run.executor import InProcessExecutor
    from tuning_bench.run.results import load_results
    from tuning_bench.run.runner import execute, plan_run
    from tuning_bench.run.settings import RunSettings

    settings = RunSettings(methods=["zero-shot", "lora"], tasks=["tiny-gen"], model="tiny-llama", seeds=[0, 1], steps=2,
                           batch_size=4, eval_examples=3, val_examples=2, eval_batch_size=4, out=str(tmp_path / "run"),
                           executor="in-process", samples=2)
    plan = plan_run(settings, load_catalog())
    execute(plan, executor=InProcessExecutor(), prepare_model=False)
    # A cached record from before per-example scores is run again, not reused without them.
    old = next(job for job in plan.jobs if job.spec.method == "lora")
    path = old.cell_dir.parent / f"{old.key}.json"
    path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "per_example"}))
    execute(plan_run(settings, load_catalog()), executor=InProcessExecutor(), prepare_model=False)
    data = load_results(tmp_path / "run")
    assert [c["cached"] for c in data["cells"] if c["key"] == old.key] == [False]
    assert sum(c["cached"] for c in data["cells"]) == 3
    assert list(data)[0] == "verdicts" and data["run"]["quick"] is False
    for cell in data["cells"]:
        per_example = cell["per_example"]
        assert per_example["index"] == [0, 1, 2] and len(per_example["references"]) == 3
        for metric, values in per_example["scores"].items():
            assert np.mean(values) == pytest.approx(cell["quality"][metric], abs=1e-12)
    [verdict] = data["verdicts"]
    assert verdict["computed"] and verdict["task"] == "tiny-gen" and verdict["examples"] == 3
    assert set(verdict["methods"]) == {"zero-shot", "lora"}
    assert verdict["smoke"]  # 3 examples of a random tiny model: the intervals cover every difference
    assert (tmp_path / "run" / "report.md").read_text().startswith("# tbench report\n\n## Verdict")
