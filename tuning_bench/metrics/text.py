"""Text metrics as plain functions: ROUGE-L (per example) and chrF (corpus).

Registered by the built-in metric plugin (``tuning_bench_plugins.metrics``); docs/tasks.md states the
definitions and edge cases.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

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


CHRF_ORDER = 6
CHRF_BETA = 2


def char_ngrams(text: str, n: int) -> Counter:
    """Counts of the character n-grams of a text with its whitespace removed."""
    text = "".join(text.split())
    return Counter(text[i : i + n] for i in range(len(text) - n + 1))


def chrf_statistics(prediction: str, reference: str) -> list[int]:
    """One pair's counts that corpus chrF sums: [prediction n-grams, reference n-grams, matches] for
    each order 1..6, flattened (18 numbers)."""
    stats = []
    for n in range(1, CHRF_ORDER + 1):
        predicted = char_ngrams(prediction, n)
        expected = char_ngrams(reference, n)
        stats += [sum(predicted.values()), sum(expected.values()), sum((predicted & expected).values())]
    return stats


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0."""
    return np.divide(numerator, denominator, out=np.zeros_like(numerator, dtype=np.float64), where=denominator > 0)


def chrf_from_statistics(summed: np.ndarray) -> np.ndarray:
    """chrF (0..100) of each row of summed pair statistics (rows, 18): corpus chrF is one row, a
    bootstrap resample another.

    Precision and recall are averaged over the orders with n-grams on both sides and combined as
    F_beta = (1 + b^2) P R / (b^2 P + R), b = 2. A row of zeros (every pair empty on both sides) is
    exact: 100 (sacrebleu reports 0 there).
    """
    summed = np.asarray(summed, dtype=np.float64)
    counts = summed.reshape(summed.shape[0], CHRF_ORDER, 3)
    predicted, expected, matched = counts[..., 0], counts[..., 1], counts[..., 2]
    effective = (predicted > 0) & (expected > 0)
    orders = effective.sum(axis=1).astype(np.float64)
    # Summed in order 1..6 and combined left to right, so corpus chrF equals the scalar formula bit for bit.
    precision = _ratio(np.where(effective, _ratio(matched, predicted), 0.0).sum(axis=1), orders)
    recall = _ratio(np.where(effective, _ratio(matched, expected), 0.0).sum(axis=1), orders)
    factor = CHRF_BETA**2
    score = _ratio(100 * (1 + factor) * precision * recall, factor * precision + recall)
    return np.where(summed.sum(axis=1) == 0, 100.0, score)


def chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (Popović, 2015) with sacrebleu's defaults: orders 1-6, whitespace removed, case
    kept, beta 2, no word n-grams. No pairs score 0."""
    if not predictions:
        return 0.0
    rows = np.array([chrf_statistics(p, r) for p, r in zip(predictions, references)], dtype=np.float64)
    return float(chrf_from_statistics(rows.sum(axis=0, keepdims=True))[0])
