"""ROUGE-L: longest common subsequence F1 over lowercased word tokens, averaged over examples.

An evaluate module script: ``evaluate.load("<path>/rouge_l.py")`` works offline. Each import sits on
its own line because evaluate's dependency scanner misreads ``import a, b``.
"""

import re

import datasets
import evaluate

_DESCRIPTION = """
ROUGE-L F1 (Lin, 2004). Both texts are lowercased and split into word tokens (runs of letters and
digits; punctuation is dropped, as in Google's rouge_score). For each example, with LCS the length of
the longest common token subsequence, precision = LCS / prediction tokens, recall = LCS / reference
tokens and F1 = 2PR / (P + R). The result is the mean F1 over examples, from 0 to 1.
Edge cases: an empty prediction scores 0; a prediction and reference that both have no tokens score 1
(nothing was asked for and nothing was said); an empty reference with a non-empty prediction scores 0.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): generated texts.
    references (list of str): one reference text per prediction.
    per_example (bool, default False): return the list of per-example scores instead of their mean.
Returns:
    rouge_l (float): mean ROUGE-L F1, 0..1.
Examples:
    >>> metric = evaluate.load("tuning_bench/metrics/rouge_l.py")
    >>> metric.compute(predictions=["the cat sat"], references=["the cat sat down"])
    {'rouge_l': 0.8571428571428571}
"""

_CITATION = """
@inproceedings{lin-2004-rouge,
  title = {ROUGE: A Package for Automatic Evaluation of Summaries},
  author = {Lin, Chin-Yew},
  booktitle = {Text Summarization Branches Out},
  year = {2004},
}
"""

_TOKEN = re.compile(r"[^\W_]+")


def tokenize(text):
    """Lowercased runs of letters and digits."""
    return _TOKEN.findall(text.lower())


def lcs_length(a, b):
    """Length of the longest common subsequence of two token lists (one row of the DP table kept)."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for token_a in a:
        current = [0]
        for j, token_b in enumerate(b):
            current.append(previous[j] + 1 if token_a == token_b else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l_f1(prediction, reference):
    """ROUGE-L F1 of one prediction against one reference."""
    predicted = tokenize(prediction)
    expected = tokenize(reference)
    if not predicted and not expected:
        return 1.0
    if not predicted or not expected:
        return 0.0
    common = lcs_length(predicted, expected)
    if common == 0:
        return 0.0
    precision = common / len(predicted)
    recall = common / len(expected)
    return 2 * precision * recall / (precision + recall)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RougeL(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, per_example=False):
        scores = [rouge_l_f1(p, r) for p, r in zip(predictions, references)]
        if per_example:
            return {"rouge_l": scores}
        return {"rouge_l": sum(scores) / len(scores) if scores else 0.0}
