"""JSON exact match: the predicted text parses to the same JSON object as the reference.

An evaluate module script: ``evaluate.load("<path>/json_exact_match.py")`` works offline. Each import
sits on its own line because evaluate's dependency scanner misreads ``import a, b``.
"""

import json

import datasets
import evaluate

_DESCRIPTION = """
The fraction of examples whose prediction, parsed as JSON, is an object equal to the parsed
reference object, from 0 to 1. Key order and whitespace do not matter; values must be equal exactly
(case included, and 5 differs from "5"). A prediction that is not valid JSON (surrounding whitespace
aside), or is valid JSON but not an object, is wrong. A reference that is not a JSON object is an
error in the task's data and raises ValueError. No examples score 0.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): generated JSON texts.
    references (list of str): reference JSON objects, as text.
    per_example (bool, default False): return the list of per-example scores instead of their mean.
Returns:
    json_exact_match (float): 0..1.
Examples:
    >>> metric = evaluate.load("tuning_bench/metrics/json_exact_match.py")
    >>> metric.compute(predictions=['{"b": 2, "a": 1}', '{"a": 1'], references=['{"a": 1, "b": 2}', '{"a": 1}'])
    {'json_exact_match': 0.5}
"""


def parse_object(text):
    """The JSON object a text holds, or None when it is not valid JSON or not an object."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def reference_object(text, index):
    """The reference's JSON object; a broken reference is the task's fault, so it is an error."""
    value = parse_object(text)
    if value is None:
        raise ValueError(f"reference {index} is not a JSON object: {text[:80]!r}")
    return value


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class JsonExactMatch(evaluate.Metric):
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
        scores = []
        for index, (prediction, reference) in enumerate(zip(predictions, references)):
            expected = reference_object(reference, index)
            scores.append(float(parse_object(prediction) == expected))
        if per_example:
            return {"json_exact_match": scores}
        if not references:
            return {"json_exact_match": 0.0}
        return {"json_exact_match": sum(scores) / len(references)}
