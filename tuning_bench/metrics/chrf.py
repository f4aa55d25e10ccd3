"""chrF: character n-gram F-score (Popović, 2015) as sacrebleu computes it by default.

An evaluate module script: ``evaluate.load("<path>/chrf.py")`` works offline. Each import sits on its
own line because evaluate's dependency scanner misreads ``import a, b``.
"""

from collections import Counter

import datasets
import evaluate

_DESCRIPTION = """
chrF with sacrebleu's defaults (sacrebleu.corpus_chrf, the same number as the hub's "chrf" metric):
character n-grams of orders 1 to 6, whitespace removed, case kept, beta = 2 (recall weighs twice as
much as precision), no word n-grams (chrF, not chrF++). It is a corpus score: the n-gram counts of
all examples are summed first; for each order with n-grams on both sides, precision and recall are
taken, averaged over those orders, and combined as F_beta = (1 + b^2) P R / (b^2 P + R). Scale 0..100.
Edge cases: an empty prediction adds nothing to the matches, so it lowers recall (alone, it scores 0).
A pair where both sides are empty adds nothing at all; if every pair is empty the score is 100
(sacrebleu reports 0 there; we count an empty answer to an empty reference as exact).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): generated texts.
    references (list of str): one reference text per prediction.
    statistics (bool, default False): instead of the score, per pair the 18 counts it sums
        ([prediction n-grams, reference n-grams, matches] for orders 1..6).
Returns:
    chrf (float): corpus chrF, 0..100.
Examples:
    >>> metric = evaluate.load("tuning_bench/metrics/chrf.py")
    >>> round(metric.compute(predictions=["abc"], references=["abd"])["chrf"], 2)
    38.89
"""

_CITATION = """
@inproceedings{popovic-2015-chrf,
  title = {chrF: character n-gram F-score for automatic MT evaluation},
  author = {Popovi{\'c}, Maja},
  booktitle = {Proceedings of the Tenth Workshop on Statistical Machine Translation},
  year = {2015},
}
"""

CHAR_ORDER = 6
BETA = 2


def char_ngrams(text, n):
    """Counts of the character n-grams of a text with its whitespace removed."""
    text = "".join(text.split())
    return Counter(text[i : i + n] for i in range(len(text) - n + 1))


def pair_statistics(prediction, reference):
    """[prediction n-grams, reference n-grams, matches] for each order 1..CHAR_ORDER, flattened."""
    stats = []
    for n in range(1, CHAR_ORDER + 1):
        predicted = char_ngrams(prediction, n)
        expected = char_ngrams(reference, n)
        stats += [sum(predicted.values()), sum(expected.values()), sum((predicted & expected).values())]
    return stats


def f_score(stats):
    """chrF (0..100) from summed statistics, averaging precision and recall over effective orders."""
    precision = recall = 0.0
    effective_orders = 0
    for n in range(CHAR_ORDER):
        n_pred, n_ref, n_match = stats[3 * n : 3 * n + 3]
        if n_pred > 0 and n_ref > 0:
            precision += n_match / n_pred
            recall += n_match / n_ref
            effective_orders += 1
    if effective_orders == 0:
        return 0.0
    precision /= effective_orders
    recall /= effective_orders
    if precision + recall == 0:
        return 0.0
    factor = BETA**2
    return 100 * (1 + factor) * precision * recall / (factor * precision + recall)


def corpus_chrf(predictions, references):
    """chrF of a whole set of prediction/reference pairs."""
    totals = [0] * (3 * CHAR_ORDER)
    for prediction, reference in zip(predictions, references):
        totals = [t + s for t, s in zip(totals, pair_statistics(prediction, reference))]
    if not any(totals):
        # Every pair is empty on both sides (or there are no pairs): exact, unless there are none.
        return 100.0 if predictions else 0.0
    return f_score(totals)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ChrF(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, statistics=False):
        if statistics:
            # Per pair, the counts the corpus score sums (see pair_statistics): a resample of the
            # examples sums its pairs' rows and applies f_score, with no text needed.
            return {"chrf": [pair_statistics(p, r) for p, r in zip(predictions, references)]}
        return {"chrf": corpus_chrf(predictions, references)}
