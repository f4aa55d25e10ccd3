"""ROUGE-L (per example) as a plain function; chrF and BLEU come from sacrebleu (sacrebleu_metrics.py).

Kept by hand because Google's ``rouge-score`` splits words on ASCII letters and digits only, so it
drops every non-Latin word; this one keeps Unicode letters and digits and equals rouge-score on ASCII
text (tests/test_metric_parity.py). Registered by the built-in metric plugin
(``tuning_bench_plugins.metrics``); docs/tasks.md states the definition and edge cases.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_TOKEN = re.compile(r"[^\W_]+")


def tokenize(text: str) -> list[str]:
    """Lowercased runs of letters and digits (punctuation dropped, as in Google's rouge_score)."""
    return _TOKEN.findall(text.lower())


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
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


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (Lin, 2004) of one prediction against one reference, 0..1.

    With LCS the longest common word subsequence: P = LCS / prediction words, R = LCS / reference
    words, F1 = 2PR / (P + R). No words on either side scores 1; no words on one side scores 0.
    """
    predicted = tokenize(prediction)
    expected = tokenize(reference)
    if not predicted and not expected:
        return 1.0  # nothing was asked for and nothing was said
    if not predicted or not expected:
        return 0.0
    common = lcs_length(predicted, expected)
    if common == 0:
        return 0.0
    precision = common / len(predicted)
    recall = common / len(expected)
    return 2 * precision * recall / (precision + recall)
