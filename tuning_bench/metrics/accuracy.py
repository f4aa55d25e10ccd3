"""Accuracy over label strings.

An evaluate module script: ``evaluate.load("<path>/accuracy.py")`` works offline. Each import sits on
its own line because evaluate's dependency scanner misreads ``import a, b``.
"""

import datasets
import evaluate

_DESCRIPTION = """
The fraction of examples whose predicted label equals the reference label, from 0 to 1. Labels are
compared as strings after stripping surrounding whitespace, case-sensitively: a prediction that is
not exactly a label (for example "Positive" for "positive") is wrong. No examples score 0.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): predicted labels.
    references (list of str): true labels.
    per_example (bool, default False): return the list of per-example scores instead of their mean.
Returns:
    accuracy (float): 0..1.
Examples:
    >>> metric = evaluate.load("tuning_bench/metrics/accuracy.py")
    >>> metric.compute(predictions=["positive", "negative"], references=["positive", "positive"])
    {'accuracy': 0.5}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, per_example=False):
        scores = [float(p.strip() == r.strip()) for p, r in zip(predictions, references)]
        if per_example:
            return {"accuracy": scores}
        if not references:
            return {"accuracy": 0.0}
        return {"accuracy": sum(scores) / len(references)}
