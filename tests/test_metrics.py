"""Shipped metrics: hand-computed values, edge cases, and loading through evaluate by path, offline."""

from __future__ import annotations

import ast
import sys

import pytest

from tuning_bench.api.errors import UsageError
from tuning_bench.metrics import (
    METRICS_DIR,
    SHIPPED_METRICS,
    compute_metrics,
    metric_direction,
)


def score(name: str, predictions: list[str], references: list[str]) -> float:
    return compute_metrics([name], predictions, references)[name]


def test_shipped_metric_names():
    assert set(SHIPPED_METRICS) == {"rouge_l", "chrf", "accuracy", "macro_f1", "json_exact_match", "json_field_f1"}
    for name in SHIPPED_METRICS:
        assert (METRICS_DIR / f"{name}.py").is_file()


@pytest.mark.parametrize(
    "name", sorted({"rouge_l", "chrf", "accuracy", "macro_f1", "json_exact_match", "json_field_f1"})
)
def test_modules_suit_evaluates_loader(name):
    # evaluate scans a module's import lines for its dependencies and misreads "import a, b".
    tree = ast.parse((METRICS_DIR / f"{name}.py").read_text())
    allowed = set(sys.stdlib_module_names) | {"evaluate", "datasets"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert len(node.names) == 1, f"{name}: one import per line"
            assert node.names[0].name.split(".")[0] in allowed
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module.split(".")[0] in allowed


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
    assert score("chrf", [""], [""]) == 100.0
    # An empty pair adds nothing; an empty prediction for a real reference lowers recall.
    assert score("chrf", ["abc", ""], ["abc", ""]) == pytest.approx(100.0)
    assert 0 < score("chrf", ["abc", ""], ["abc", "abc"]) < 100


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
    with pytest.raises(ValueError, match="reference 0"):
        score("json_field_f1", ["{}"], ["not json"])
    with pytest.raises(ValueError, match="reference 0"):
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
