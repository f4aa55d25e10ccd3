"""Parity of the shipped metrics with the evaluate module scripts they replaced.

The expected numbers were computed by the old implementations (tuning_bench/metrics/<name>.py, evaluate
scripts loaded by path, at commit 6c23ef9) on the fixed inputs below, before they were deleted. Scores
must be equal to the last bit; chrF's bootstrap resamples may differ in the last bits only, because the
bootstrap now uses the metric's own score-from-statistics (which equals the corpus score exactly).
"""

from __future__ import annotations

import numpy as np
import pytest

from tuning_bench.metrics import compute_metrics, example_scores
from tuning_bench.metrics.text import chrf_from_statistics
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

GROUPS = ((TEXT, ["rouge_l", "chrf"]), (LABELS, ["accuracy", "macro_f1"]), (JSON, ["json_exact_match", "json_field_f1"]))
CASES = [(p, r, names) for group, names in GROUPS for p, r in group]

# Computed by the old evaluate scripts (see the module docstring).
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
    assert compute_metrics(names, predictions, references) == OLD_SCORES[case]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_per_example_data_equals_the_old_scripts(case):
    predictions, references, names = CASES[case]
    per = example_scores(names, predictions, references)
    assert per == OLD_EXAMPLES[case]
    for rows in per["statistics"].values():  # chrF's counts stay integers in the record
        assert all(type(value) is int for row in rows for value in row)


def _resamples(groups, count):
    rng = np.random.default_rng(0)  # the draws the expected values were computed with
    draws = []
    for group in groups:
        for predictions, references in group[:count]:
            draws.append((predictions, references, rng.integers(0, len(predictions), size=(5, len(predictions)))))
    return draws


def test_chrf_resamples_equal_the_old_bootstrap():
    draws = _resamples([TEXT, LABELS], 4)
    for (predictions, references, drawn), expected in zip(draws[:4], OLD_CHRF_RESAMPLES):
        stats = np.asarray(example_scores(["chrf"], predictions, references)["statistics"]["chrf"], dtype=np.float64)
        assert chrf_from_statistics(stats[drawn].sum(axis=1)).tolist() == pytest.approx(expected, rel=1e-13)
    for (predictions, references, drawn), expected in zip(draws[4:], OLD_MACRO_F1_RESAMPLES):
        rows, classes = macro_f1_rows(predictions, references)
        assert macro_f1_combine(classes)(rows[drawn].sum(axis=1)).tolist() == expected


def test_corpus_chrf_is_its_statistics_summed_and_scored():
    for predictions, references in TEXT[:4]:
        stats = np.asarray(example_scores(["chrf"], predictions, references)["statistics"]["chrf"])
        assert chrf_from_statistics(stats.sum(axis=0, keepdims=True))[0] == compute_metrics(["chrf"], predictions, references)["chrf"]
