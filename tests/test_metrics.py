"""Shipped metrics: hand-computed values, edge cases, registration through the metric hook, Hub names."""

from __future__ import annotations

import math

import pytest

from tuning_bench.api.errors import UsageError
from tuning_bench.host.plugins import load_catalog, reset_default_host
from tuning_bench.metrics import (
    SHIPPED_METRICS,
    compute_metrics,
    example_scores,
    metric_direction,
)
from tuning_bench.stats.samples import cell_statistic


def score(name: str, predictions: list[str], references: list[str]) -> float:
    return compute_metrics([name], predictions, references)[name]


def test_shipped_metrics_are_registered_by_the_builtin_plugin_through_the_hook():
    assert set(SHIPPED_METRICS) == {"rouge_l", "chrf", "bleu", "accuracy", "macro_f1", "json_exact_match", "json_field_f1"}
    catalog = load_catalog()
    assert sorted(catalog.metrics.names()) == sorted(SHIPPED_METRICS)
    assert {catalog.metrics.owner(name) for name in SHIPPED_METRICS} == {"builtin:metrics"}
    kinds = {name: catalog.metrics.get(name).per_example for name in SHIPPED_METRICS}
    assert [name for name, per_example in kinds.items() if not per_example] == ["bleu", "chrf", "macro_f1"]
    assert all(catalog.metrics.get(name).higher_is_better for name in SHIPPED_METRICS)
    assert catalog.metrics.get("chrf").from_statistics is not None and not catalog.failures
    assert catalog.metrics.get("bleu").from_statistics is not None


def test_shipped_metrics_do_not_load_evaluate(monkeypatch):
    import evaluate

    monkeypatch.setattr(evaluate, "load", lambda *a, **k: pytest.fail("a shipped metric went to evaluate.load"))
    assert compute_metrics(SHIPPED_METRICS, ['{"a": 1}'], ['{"a": 1}'])["json_field_f1"] == 1.0


def test_blocking_the_builtin_metric_plugin_says_so(monkeypatch):
    monkeypatch.setenv("TBENCH_BLOCK_PLUGINS", "builtin:metrics")
    reset_default_host()
    with pytest.raises(UsageError, match="built-in plugin 'builtin:metrics', which is blocked"):
        compute_metrics(["rouge_l"], ["a"], ["a"])


def test_compute_loads_every_shipped_metric_offline():
    scores = compute_metrics(SHIPPED_METRICS, ['{"a": 1}'], ['{"a": 1}'])
    assert set(scores) == set(SHIPPED_METRICS)
    assert scores["json_exact_match"] == 1.0 and scores["accuracy"] == 1.0


def test_rouge_l():
    assert score("rouge_l", ["the cat sat"], ["the cat sat down"]) == pytest.approx(2 * 1 * 0.75 / 1.75)
    assert score("rouge_l", ["The CAT, sat!"], ["the cat sat"]) == pytest.approx(1.0)
    assert score("rouge_l", ["sat cat the"], ["the cat sat"]) == pytest.approx(1 / 3)
    # Averaged over examples, not pooled.
    assert score("rouge_l", ["the cat sat", "dog"], ["the cat sat", "bird"]) == pytest.approx(0.5)


def test_rouge_l_edge_cases():
    assert score("rouge_l", [""], ["the cat sat"]) == 0.0
    assert score("rouge_l", ["the cat"], [""]) == 0.0
    assert score("rouge_l", [""], [""]) == 1.0
    assert score("rouge_l", ["..."], ["!"]) == 1.0  # no word tokens on either side


def test_chrf_matches_sacrebleu():
    # Reference values: sacrebleu's corpus_chrf with its defaults (as printed in the hub metric card).
    single = score(
        "chrf",
        ["The relationship between Obama and Netanyahu is not exactly friendly."],
        ["The ties between Obama and Netanyahu are not particularly friendly."],
    )
    assert single == pytest.approx(61.576379378113785)
    corpus = score(
        "chrf",
        [
            "The relationship between cats and dogs is not exactly friendly.",
            "a good bookshop is just a genteel black hole that knows how to read.",
        ],
        [
            "The relationship between dogs and cats is not exactly friendly.",
            "A good bookshop is just a genteel Black Hole that knows how to read.",
        ],
    )
    assert corpus == pytest.approx(84.64214891738334)


def test_chrf_by_hand():
    # abc vs abd: unigrams 2/3, bigrams 1/2, trigrams 0; orders 4-6 have no n-grams and do not count.
    assert score("chrf", ["abc"], ["abd"]) == pytest.approx(100 * (2 / 3 + 1 / 2 + 0) / 3)
    assert score("chrf", ["a b c"], ["abc"]) == pytest.approx(100.0)  # whitespace is ignored
    assert score("chrf", ["ABC"], ["abc"]) == 0.0  # case is kept


def test_chrf_edge_cases():
    assert score("chrf", [""], ["abc"]) == 0.0
    assert score("chrf", [""], [""]) == 0.0  # sacrebleu's convention (the hand-written one said 100)
    # An empty pair adds nothing; an empty prediction for a real reference lowers recall.
    assert score("chrf", ["abc", ""], ["abc", ""]) == pytest.approx(100.0)
    assert 0 < score("chrf", ["abc", ""], ["abc", "abc"]) < 100


def test_bleu_by_hand():
    # 13a tokens, one reference: 1-4-gram precisions 5/6, 3/5, 2/4, 1/3; same length, so no brevity penalty.
    expected = 100 * math.exp((math.log(5 / 6) + math.log(3 / 5) + math.log(2 / 4) + math.log(1 / 3)) / 4)
    assert score("bleu", ["the cat sat on the mat"], ["the cat sat on a mat"]) == pytest.approx(expected, rel=1e-12)
    assert score("bleu", ["Hello, world!"] * 2, ["Hello, world!"] * 2) == pytest.approx(100.0)
    assert score("bleu", [], []) == 0.0


def test_accuracy():
    assert score(
        "accuracy", ["positive", "negative", "positive"], ["positive", "positive", "positive"]
    ) == pytest.approx(2 / 3)
    assert score("accuracy", [" positive\n"], ["positive"]) == 1.0
    assert score("accuracy", ["Positive"], ["positive"]) == 0.0
    assert score("accuracy", [""], ["positive"]) == 0.0


def test_macro_f1():
    assert score("macro_f1", ["a", "a", "b"], ["a", "b", "b"]) == pytest.approx(2 / 3)
    assert score("macro_f1", ["a", "b"], ["a", "b"]) == 1.0
    # An invalid answer is a miss for its class but not a class of its own.
    assert score("macro_f1", ["positive", "neutral"], ["positive", "negative"]) == pytest.approx(0.5)
    # Always predicting one class: F1 2/3 for it and 0 for the other.
    assert score("macro_f1", ["a", "a", "a", "a"], ["a", "a", "b", "b"]) == pytest.approx((2 / 3 + 0) / 2)


def test_json_exact_match():
    reference = '{"product": "mug", "color": "blue"}'
    assert score("json_exact_match", ['{"color": "blue", "product": "mug"}'], [reference]) == 1.0
    assert score("json_exact_match", ['  {"product":"mug","color":"blue"}\n'], [reference]) == 1.0
    assert score("json_exact_match", ['{"product": "mug", "color": "Blue"}'], [reference]) == 0.0
    assert score("json_exact_match", ['{"product": "mug"}'], [reference]) == 0.0
    assert score("json_exact_match", ['{"product": "mug", "color": "blue"'], [reference]) == 0.0  # invalid JSON
    assert score("json_exact_match", ['["product", "mug"]'], [reference]) == 0.0  # not an object
    assert score("json_exact_match", [""], [reference]) == 0.0
    assert score("json_exact_match", [reference, "nope"], [reference, reference]) == 0.5


def test_json_field_f1():
    reference = '{"product": "mug", "color": "blue", "size": "L"}'
    partial = '{"product": "mug", "color": "Blue ", "brand": "X"}'
    # product and color match (values normalized), brand is extra, size is missing: 2*2/(3+3).
    assert score("json_field_f1", [partial], [reference]) == pytest.approx(2 / 3)
    assert score("json_field_f1", ['{"product": "mug"}'], [reference]) == pytest.approx(2 * 1 / (1 + 3))
    assert score("json_field_f1", ['{"price": 5}'], ['{"price": "5.0"}']) == 1.0
    assert score("json_field_f1", ["{}"], ["{}"]) == 1.0
    assert score("json_field_f1", ["{}"], [reference]) == 0.0
    assert score("json_field_f1", ['{"product": "mug"'], [reference]) == 0.0  # invalid JSON
    assert score("json_field_f1", ['"mug"'], [reference]) == 0.0  # not an object
    assert score("json_field_f1", [""], [reference]) == 0.0
    assert score("json_field_f1", [reference, "x"], [reference, reference]) == 0.5


def test_a_broken_reference_is_an_error():
    with pytest.raises(ValueError, match="metric 'json_field_f1', example 1: reference is not a JSON object: 'not json'"):
        score("json_field_f1", ["{}", "{}"], ["{}", "not json"])
    with pytest.raises(ValueError, match="example 0: reference is not a JSON object"):
        score("json_exact_match", ["{}"], ["[1]"])


def test_several_metrics_at_once_and_length_mismatch():
    scores = compute_metrics(["rouge_l", "chrf"], ["the cat sat"], ["the cat sat"])
    assert scores == {"rouge_l": pytest.approx(1.0), "chrf": pytest.approx(100.0)}
    with pytest.raises(ValueError):
        compute_metrics(["accuracy"], ["a", "b"], ["a"])


def test_a_metric_that_cannot_load_is_a_usage_error(monkeypatch):
    import evaluate

    def offline(name, **kwargs):
        raise ConnectionError("Couldn't reach the Hugging Face Hub\nmore detail")

    monkeypatch.setattr(evaluate, "load", offline)
    with pytest.raises(UsageError) as caught:
        compute_metrics(["bleurt-not-shipped"], ["a"], ["a"])
    message = str(caught.value)
    assert "\n" not in message
    assert "'bleurt-not-shipped'" in message and "offline" in message
    assert all(name in message for name in SHIPPED_METRICS)


def test_metric_direction():
    assert all(metric_direction(name) for name in SHIPPED_METRICS)
    assert metric_direction("bleu") is True
    assert metric_direction("wer") is False
    assert metric_direction("perplexity") is False


def test_a_plugin_corpus_metric_with_statistics_is_resampled(fake_plugin):
    # A corpus metric from summed counts: the fraction of characters predicted (sum of lengths / sum of lengths).
    fake_plugin("tbench-ratio", register_metrics=lambda register: register(
        "char_ratio", lambda ps, rs: sum(map(len, ps)) / sum(map(len, rs)), per_example=False,
        statistics=lambda p, r: [len(p), len(r)], from_statistics=lambda summed: summed[:, 0] / summed[:, 1]))
    predictions, references = ["ab", "abcd", ""], ["ab", "ab", "abcd"]
    per = example_scores(["char_ratio"], predictions, references)
    assert per == {"scores": {}, "statistics": {"char_ratio": [[2, 2], [4, 2], [0, 4]]}}
    cell = {"predictions": predictions, "per_example": {"index": [0, 1, 2], "references": references, **per}}
    statistic = cell_statistic(cell, "char_ratio", [0, 1, 2])
    assert statistic.value() == pytest.approx(score("char_ratio", predictions, references)) == 0.75
    assert cell_statistic(cell, "char_ratio", [1]).value() == pytest.approx(2.0)


@pytest.mark.parametrize(("kwargs", "problem"), [
    ({"statistics": lambda p, r: [1]}, "statistics and from_statistics are for corpus metrics"),
    ({"per_example": False, "statistics": lambda p, r: [1]}, "give both statistics and from_statistics"),
])
def test_statistics_need_a_corpus_metric_and_both_functions(fake_plugin, kwargs, problem):
    fake_plugin("tbench-stats", register_metrics=lambda register: register("stat", lambda p, r: 1.0, **kwargs))
    catalog = load_catalog()
    assert "stat" not in catalog.metrics
    assert problem in next(f for f in catalog.failures if f.plugin == "tbench-stats").message()
