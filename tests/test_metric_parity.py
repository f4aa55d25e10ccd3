"""Parity of the shipped metrics with the code they replaced, and of ROUGE-L with Google's rouge-score.

The expected numbers were computed by the old implementations (tuning_bench/metrics/<name>.py, evaluate
scripts loaded by path, at commit 6c23ef9) on the fixed inputs below, before they were deleted. Scores
must be equal to the last bit. chrF is now sacrebleu's: its parity with the hand-written chrF it
replaced (commit 00452c3) is checked separately below, with that code's numbers as literals.
"""

from __future__ import annotations

import numpy as np
import pytest

from tuning_bench.metrics import compute_metrics, example_scores
from tuning_bench.metrics.sacrebleu_metrics import bleu_from_statistics, chrf_from_statistics
from tuning_bench.metrics.text import rouge_l
from tuning_bench.stats.bootstrap import example_weights
from tuning_bench.stats.samples import macro_f1_combine, macro_f1_rows

TEXT = [
    (["the cat sat"], ["the cat sat down"]),
    (["The relationship between Obama and Netanyahu is not exactly friendly."],
     ["The ties between Obama and Netanyahu are not particularly friendly."]),
    (["Une tasse à café en grès, émaillée à la main.", "Straße 12 — naïve café", "", "...", "a b c"],
     ["Une tasse en grès émaillé, faite à la main.", "strasse 12 naive cafe", "", "!", "abc"]),
    (["Compact steel mug, 350 ml, keeps drinks hot for hours.", "", "Blue ceramic bowl", "日本語のテキスト です"],
     ["A compact 350 ml steel mug that keeps drinks hot.", "A handmade oak board.", "blue ceramic bowl, dishwasher safe", "日本語 の テキスト"]),
    (["x"], [""]),
    ([], []),
]
LABELS = [
    (["positive", "negative", "positive"], ["positive", "positive", "positive"]),
    (["a", "a", "b"], ["a", "b", "b"]),
    (["positive", "neutral", " negative\n", "Positive", ""], ["positive", "negative", "negative", "positive", "neutral"]),
    (["a", "a", "a", "a"], ["a", "a", "b", "b"]),
    ([], []),
]
JSON = [
    (['{"product": "mug", "color": "Blue ", "brand": "X"}', '{"price": 5}', "{}", '{"a": 1', '"mug"', "",
      '  {"b": [1, 2], "a": {"x": null}}\n', '{"flag": true, "n": 5.0, "s": "Ab  c"}'],
     ['{"product": "mug", "color": "blue", "size": "L"}', '{"price": "5.0"}', "{}", '{"a": 1}', '{"a": 1}',
      '{"a": 1}', '{"a": {"x": null}, "b": [1, 2]}', '{"flag": true, "n": 5, "s": "ab c"}']),
    ([], []),
]

# chrF is sacrebleu's now and has its own parity tests below; these cases check the other metrics.
GROUPS = ((TEXT, ["rouge_l"]), (LABELS, ["accuracy", "macro_f1"]), (JSON, ["json_exact_match", "json_field_f1"]))
CASES = [(p, r, names) for group, names in GROUPS for p, r in group]

# Computed by the old evaluate scripts (see the module docstring); chrF's entries are not read here.
OLD_SCORES = [{'chrf': 66.01764142221674, 'rouge_l': 0.8571428571428571}, {'chrf': 61.57637937811379, 'rouge_l': 0.7},
 {'chrf': 51.395235622876264, 'rouge_l': 0.5973684210526315},
 {'chrf': 48.86730472511358, 'rouge_l': 0.33749999999999997}, {'chrf': 0.0, 'rouge_l': 0.0},
 {'chrf': 0.0, 'rouge_l': 0.0}, {'accuracy': 0.6666666666666666, 'macro_f1': 0.8},
 {'accuracy': 0.6666666666666666, 'macro_f1': 0.6666666666666666},
 {'accuracy': 0.4, 'macro_f1': 0.4444444444444444}, {'accuracy': 0.5, 'macro_f1': 0.3333333333333333},
 {'accuracy': 0.0, 'macro_f1': 0.0}, {'json_exact_match': 0.25, 'json_field_f1': 0.5833333333333333},
 {'json_exact_match': 0.0, 'json_field_f1': 0.0}]
OLD_EXAMPLES = [{'scores': {'rouge_l': [0.8571428571428571]},
  'statistics': {'chrf': [[9, 13, 9, 8, 12, 8, 7, 11, 7, 6, 10, 6, 5, 9, 5, 4, 8, 4]]}},
 {'scores': {'rouge_l': [0.7]},
  'statistics': {'chrf': [[60, 58, 54, 59, 57, 40, 58, 56, 33, 57, 55, 29, 56, 54, 27, 55, 53, 25]]}},
 {'scores': {'rouge_l': [0.7368421052631577, 0.25, 1.0, 1.0, 0.0]},
  'statistics': {'chrf': [[36, 35, 33, 35, 34, 26, 34, 33, 22, 33, 32, 18, 32, 31, 14, 31, 30, 10],
                          [18, 18, 13, 17, 17, 9, 16, 16, 5, 15, 15, 2, 14, 14, 1, 13, 13, 0],
                          [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                          [3, 1, 0, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                          [3, 3, 3, 2, 2, 2, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]]}},
 {'scores': {'rouge_l': [0.6, 0.0, 0.7499999999999999, 0.0]},
  'statistics': {'chrf': [[45, 40, 35, 44, 39, 29, 43, 38, 25, 42, 37, 21, 41, 36, 17, 40, 35, 13],
                          [0, 18, 0, 0, 17, 0, 0, 16, 0, 0, 15, 0, 0, 14, 0, 0, 13, 0],
                          [15, 30, 14, 14, 29, 13, 13, 28, 12, 12, 27, 11, 11, 26, 10, 10, 25, 9],
                          [10, 8, 8, 9, 7, 7, 8, 6, 6, 7, 5, 5, 6, 4, 4, 5, 3, 3]]}},
 {'scores': {'rouge_l': [0.0]}, 'statistics': {'chrf': [[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]}},
 {'scores': {'rouge_l': []}, 'statistics': {'chrf': []}},
 {'scores': {'accuracy': [1.0, 0.0, 1.0]}, 'statistics': {}},
 {'scores': {'accuracy': [1.0, 0.0, 1.0]}, 'statistics': {}},
 {'scores': {'accuracy': [1.0, 0.0, 1.0, 0.0, 0.0]}, 'statistics': {}},
 {'scores': {'accuracy': [1.0, 1.0, 0.0, 0.0]}, 'statistics': {}}, {'scores': {'accuracy': []}, 'statistics': {}},
 {'scores': {'json_exact_match': [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
             'json_field_f1': [0.6666666666666666, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0]},
  'statistics': {}},
 {'scores': {'json_exact_match': [], 'json_field_f1': []}, 'statistics': {}}]
OLD_CHRF_RESAMPLES = [[66.01764142221674, 66.01764142221674, 66.01764142221674, 66.01764142221674, 66.01764142221674],
 [61.576379378113785, 61.576379378113785, 61.576379378113785, 61.576379378113785, 61.576379378113785],
 [30.057420355741872, 61.77527170367589, 78.57142857142857, 65.65656565656565, 46.1767418717176],
 [60.25623416429827, 58.4475234711666, 58.4475234711666, 0.0, 59.88171139127687]]
OLD_MACRO_F1_RESAMPLES = [[0.5, 0.8, 0.5, 0.8, 0.8], [1.0, 0.6666666666666666, 0.8, 0.25, 0.5],
 [0.5555555555555555, 0.25, 0.3333333333333333, 0.0, 0.26666666666666666],
 [0.42857142857142855, 0.3333333333333333, 0.3333333333333333, 0.2, 0.3333333333333333]]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_scores_equal_the_old_scripts_to_the_last_bit(case):
    predictions, references, names = CASES[case]
    assert compute_metrics(names, predictions, references) == {k: v for k, v in OLD_SCORES[case].items() if k in names}


@pytest.mark.parametrize("case", range(len(CASES)))
def test_per_example_data_equals_the_old_scripts(case):
    predictions, references, names = CASES[case]
    per = example_scores(names, predictions, references)
    assert per == {"scores": OLD_EXAMPLES[case]["scores"], "statistics": {}}


def _resamples(groups, count):
    rng = np.random.default_rng(0)  # the draws the expected values were computed with
    draws = []
    for group in groups:
        for predictions, references in group[:count]:
            draws.append((predictions, references, rng.integers(0, len(predictions), size=(5, len(predictions)))))
    return draws


def test_macro_f1_resamples_equal_the_old_bootstrap():
    draws = _resamples([TEXT, LABELS], 4)  # the TEXT draws come first: they fix the generator's state
    for (predictions, references, drawn), expected in zip(draws[4:], OLD_MACRO_F1_RESAMPLES):
        rows, classes = macro_f1_rows(predictions, references)
        assert macro_f1_combine(classes)(rows[drawn].sum(axis=1)).tolist() == expected


# --- chrF: sacrebleu against the hand-written chrF it replaced -------------------------------------
# CHRF_TEXT's first five cases are TEXT's; the others add whitespace, repeats, punctuation and emoji.
CHRF_TEXT = [*TEXT[:5],
             (["A\tmulti\nline   answer,\r\nwith  tabs."], ["a multi-line answer with tabs"]),
             (["aaaaaaa", "ab", "Hello, World!"], ["aaa", "ba", "hello world"]),
             (["Größe: 42 cm; Farbe: Weiß 😀", "price 12.50 EUR"], ["Farbe weiß, Größe 42 cm 😀", "12,50 € price"])]
# Computed by the hand-written chrF (tuning_bench/metrics/text.py at commit 00452c3: chrf,
# chrf_statistics, and chrf_from_statistics of the summed statistics under
# example_weights-style draws: rng = default_rng(0), per case rng.multinomial(n, [1/n]*n, size=6)),
# before it was deleted.
OLD_CHRF = [66.01764142221674, 61.57637937811379, 51.395235622876264, 48.86730472511358, 0.0, 66.9574620056373,
 35.774992784445004, 38.595230203729145]
OLD_CHRF_STATISTICS = [[[9, 13, 9, 8, 12, 8, 7, 11, 7, 6, 10, 6, 5, 9, 5, 4, 8, 4]],
 [[60, 58, 54, 59, 57, 40, 58, 56, 33, 57, 55, 29, 56, 54, 27, 55, 53, 25]],
 [[36, 35, 33, 35, 34, 26, 34, 33, 22, 33, 32, 18, 32, 31, 14, 31, 30, 10],
  [18, 18, 13, 17, 17, 9, 16, 16, 5, 15, 15, 2, 14, 14, 1, 13, 13, 0],
  [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [3, 1, 0, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
  [3, 3, 3, 2, 2, 2, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]],
 [[45, 40, 35, 44, 39, 29, 43, 38, 25, 42, 37, 21, 41, 36, 17, 40, 35, 13],
  [0, 18, 0, 0, 17, 0, 0, 16, 0, 0, 15, 0, 0, 14, 0, 0, 13, 0],
  [15, 30, 14, 14, 29, 13, 13, 28, 12, 12, 27, 11, 11, 26, 10, 10, 25, 9],
  [10, 8, 8, 9, 7, 7, 8, 6, 6, 7, 5, 5, 6, 4, 4, 5, 3, 3]],
 [[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]],
 [[26, 25, 23, 25, 24, 20, 24, 23, 17, 23, 22, 14, 22, 21, 11, 21, 20, 8]],
 [[7, 3, 3, 6, 2, 2, 5, 1, 1, 4, 0, 0, 3, 0, 0, 2, 0, 0], [2, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
  [12, 10, 8, 11, 9, 6, 10, 8, 4, 9, 7, 2, 8, 6, 0, 7, 5, 0]],
 [[22, 20, 18, 21, 19, 13, 20, 18, 9, 19, 17, 5, 18, 16, 2, 17, 15, 0],
  [13, 11, 9, 12, 10, 6, 11, 9, 3, 10, 8, 2, 9, 7, 1, 8, 6, 0]]]
OLD_CHRF_RESAMPLES_6 = [[66.01764142221674, 66.01764142221674, 66.01764142221674, 66.01764142221674, 66.01764142221674, 66.01764142221674],
 [61.57637937811379, 61.57637937811379, 61.57637937811379, 61.57637937811379, 61.57637937811379, 61.57637937811379],
 [63.281054772615256, 51.15210996632603, 46.52073930559141, 62.12094947225616, 55.49886213855714, 65.65656565656565],
 [45.87608325283832, 54.00042108522591, 48.86730472511358, 30.491990702130376, 39.95399012385259, 58.4475234711666],
 [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
 [66.9574620056373, 66.9574620056373, 66.9574620056373, 66.9574620056373, 66.9574620056373, 66.9574620056373],
 [35.774992784445004, 35.774992784445004, 36.23148239765584, 36.03062346330266, 68.84384384384383, 50.0],
 [34.316649628667136, 38.595230203729145, 34.316649628667136, 38.595230203729145, 40.84852191051497,
  34.316649628667136]]


def _sacrebleu_counts(old_row):
    """The one known difference: sacrebleu counts no prediction n-grams of an order the reference has
    none of (a reference shorter than n characters); the hand-written chrF counted them."""
    row = list(old_row)
    for order in range(6):
        if row[3 * order + 1] == 0:
            row[3 * order] = 0
    return row


@pytest.mark.parametrize("case", range(len(CHRF_TEXT)))
def test_chrf_statistics_equal_the_old_counts_but_for_short_references(case):
    predictions, references = CHRF_TEXT[case]
    rows = example_scores(["chrf"], predictions, references)["statistics"]["chrf"]
    assert rows == [_sacrebleu_counts(row) for row in OLD_CHRF_STATISTICS[case]]
    assert all(type(value) is int for row in rows for value in row)  # counts stay integers in the record


# The cases with a reference shorter than some n-gram order that the prediction has ("!", "", "ab").
SHORT_REFERENCE_CASES = [2, 4, 6]


def test_the_short_reference_cases_are_those_whose_counts_differ():
    differ = [case for case, rows in enumerate(OLD_CHRF_STATISTICS) if any(_sacrebleu_counts(r) != r for r in rows)]
    assert differ == SHORT_REFERENCE_CASES
    # where they differ, the corpus score moves (here by 0.12 and 0.42 points; "x" vs "" stays 0)
    assert compute_metrics(["chrf"], *CHRF_TEXT[2])["chrf"] == pytest.approx(51.518628187224365, rel=1e-12)
    assert compute_metrics(["chrf"], *CHRF_TEXT[6])["chrf"] == pytest.approx(36.19821912504839, rel=1e-12)


@pytest.mark.parametrize("case", [c for c in range(len(CHRF_TEXT)) if c not in SHORT_REFERENCE_CASES])
def test_chrf_equals_the_old_chrf_where_the_counts_agree(case):
    predictions, references = CHRF_TEXT[case]
    new = compute_metrics(["chrf"], predictions, references)["chrf"]
    assert new == pytest.approx(OLD_CHRF[case], rel=1e-12, abs=1e-12)
    rng = np.random.default_rng(0)
    for earlier in CHRF_TEXT[:case]:  # replay the draws of the cases before this one
        rng.multinomial(len(earlier[0]), np.full(len(earlier[0]), 1 / len(earlier[0])), size=6)
    weights = rng.multinomial(len(predictions), np.full(len(predictions), 1 / len(predictions)), size=6)
    stats = np.asarray(example_scores(["chrf"], predictions, references)["statistics"]["chrf"], dtype=np.float64)
    assert chrf_from_statistics(weights @ stats).tolist() == pytest.approx(OLD_CHRF_RESAMPLES_6[case], rel=1e-12, abs=1e-12)


def test_chrf_resamples_through_the_bootstrap_weights():
    predictions, references = CHRF_TEXT[3]
    stats = np.asarray(example_scores(["chrf"], predictions, references)["statistics"]["chrf"], dtype=np.float64)
    weights = example_weights(len(predictions), resamples=50)
    resampled = chrf_from_statistics(weights @ stats)
    by_library = [compute_metrics(["chrf"], [predictions[i] for i in np.repeat(np.arange(len(predictions)), w.astype(int))],
                                  [references[i] for i in np.repeat(np.arange(len(references)), w.astype(int))])["chrf"]
                  for w in weights]
    assert resampled.tolist() == pytest.approx(by_library, rel=1e-12, abs=1e-12)
    assert len(set(np.round(resampled, 9))) > 1  # the resamples differ: the corpus metric is recomputed


def test_corpus_chrf_and_bleu_are_their_statistics_summed_and_scored():
    for predictions, references in CHRF_TEXT:
        for name, from_statistics in (("chrf", chrf_from_statistics), ("bleu", bleu_from_statistics)):
            stats = np.asarray(example_scores([name], predictions, references)["statistics"][name])
            assert from_statistics(stats.sum(axis=0, keepdims=True))[0] == compute_metrics([name], predictions, references)[name]


# --- ROUGE-L against Google's rouge-score on ASCII ----------------------------------------------
ASCII_PAIRS = [
    ("the cat sat", "the cat sat down"),
    ("The relationship between Obama and Netanyahu is not exactly friendly.",
     "The ties between Obama and Netanyahu are not particularly friendly."),
    ("A compact 350 ml steel mug; keeps drinks hot!", "Compact steel mug (350ml), keeps drinks hot for hours."),
    ("the the the cat", "the cat the"),
    ("snake_case and kebab-case words", "snake case, kebab case: words"),
    ("Hello", "goodbye"),
    ("x", "..."),
    ("12.50 EUR", "EUR 12 50"),
]


@pytest.mark.parametrize("pair", range(len(ASCII_PAIRS)))
def test_rouge_l_equals_rouge_score_on_ascii(pair):
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer", reason="rouge-score is a test extra: pip install rouge-score")
    prediction, reference = ASCII_PAIRS[pair]
    expected = rouge_scorer.RougeScorer(["rougeL"]).score(reference, prediction)["rougeL"].fmeasure
    assert rouge_l(prediction, reference) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_rouge_l_differs_from_rouge_score_where_documented():
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer", reason="rouge-score is a test extra: pip install rouge-score")
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    # Non-ASCII words: rouge-score drops them (no tokens: 0); here they are words.
    assert scorer.score("日本語 の テキスト", "日本語 の テキスト")["rougeL"].fmeasure == 0.0
    assert rouge_l("日本語 の テキスト", "日本語 の テキスト") == 1.0
    # rouge-score splits "naïve" into "na" and "ve"; here it stays one word.
    assert scorer.score("na ve", "naïve")["rougeL"].fmeasure == 1.0 and rouge_l("naïve", "na ve") == 0.0
    # No words on either side: rouge-score says 0, here 1 (nothing was asked for and nothing was said).
    assert scorer.score("", "")["rougeL"].fmeasure == 0.0 and rouge_l("", "") == 1.0
