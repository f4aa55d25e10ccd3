"""Macro-averaged F1 over label strings.

An evaluate module script: ``evaluate.load("<path>/macro_f1.py")`` works offline. Each import sits on
its own line because evaluate's dependency scanner misreads ``import a, b``.
"""

import datasets
import evaluate

_DESCRIPTION = """
The unweighted mean, over the classes, of each class's F1 = 2 TP / (2 TP + FP + FN), from 0 to 1.
The classes are the labels that occur in the references; a predicted string that is none of them
(an invalid answer) is a miss for its example's true class and adds no class of its own, so the
score does not depend on how many different invalid strings a model produced. A class with no true
positives scores 0. Labels are compared after stripping surrounding whitespace, case-sensitively.
No examples score 0.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): predicted labels.
    references (list of str): true labels.
Returns:
    macro_f1 (float): 0..1.
Examples:
    >>> metric = evaluate.load("tuning_bench/metrics/macro_f1.py")
    >>> metric.compute(predictions=["a", "a", "b"], references=["a", "b", "b"])
    {'macro_f1': 0.6666666666666666}
"""


def macro_f1(predictions, references):
    """Mean per-class F1 over the classes present in the references."""
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


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MacroF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        return {"macro_f1": macro_f1(predictions, references)}
