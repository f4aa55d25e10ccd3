"""Label metrics as plain functions: accuracy (per example) and macro-F1 (corpus).

Labels compare as strings with surrounding whitespace stripped, case kept. Registered by the built-in
metric plugin (``tuning_bench_plugins.metrics``).
"""

from __future__ import annotations

from collections.abc import Sequence


def accuracy(prediction: str, reference: str) -> float:
    """1 when the predicted label is the reference label, else 0 ("Positive" is not "positive")."""
    return float(prediction.strip() == reference.strip())


def macro_f1(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean per-class F1 = 2 TP / (2 TP + FP + FN) over the classes present in the references, 0..1.

    A predicted string that is no class is a miss for its example's class and adds no class of its
    own; a class with no true positives scores 0; no examples score 0. (The bootstrap recomputes it
    from the labels: ``tuning_bench.stats.samples.macro_f1_rows``.)
    """
    predicted = [p.strip() for p in predictions]
    expected = [r.strip() for r in references]
    classes = sorted(set(expected))
    if not classes:
        return 0.0
    total = 0.0
    for label in classes:
        true_pos = sum(p == label and r == label for p, r in zip(predicted, expected))
        false_pos = sum(p == label and r != label for p, r in zip(predicted, expected))
        false_neg = sum(p != label and r == label for p, r in zip(predicted, expected))
        total += 2 * true_pos / (2 * true_pos + false_pos + false_neg) if true_pos else 0.0
    return total / len(classes)
