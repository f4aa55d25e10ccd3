"""JSON field F1: overlap of (key, value) pairs between predicted and reference JSON objects.

An evaluate module script: ``evaluate.load("<path>/json_field_f1.py")`` works offline. Each import
sits on its own line because evaluate's dependency scanner misreads ``import a, b``.
"""

import json
import math

import datasets
import evaluate

_DESCRIPTION = """
Per example, both texts are parsed as JSON objects and turned into sets of (key, value) pairs, with
keys and values normalized: lowercased, surrounding whitespace stripped and inner whitespace runs
collapsed to one space; numbers and strings compare by their text (5, 5.0 and "5" are equal);
other values (lists, objects, true/false/null) compare by their compact JSON text. With M matching
pairs, precision = M / predicted pairs, recall = M / reference pairs, F1 = 2M / (predicted +
reference pairs). The result is the mean F1 over examples, from 0 to 1.
Edge cases: a prediction that is not valid JSON, or not an object, scores 0; two empty objects score
1; a reference that is not a JSON object is an error in the task's data and raises ValueError.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): generated JSON texts.
    references (list of str): reference JSON objects, as text.
    per_example (bool, default False): return the list of per-example scores instead of their mean.
Returns:
    json_field_f1 (float): 0..1.
Examples:
    >>> metric = evaluate.load("tuning_bench/metrics/json_field_f1.py")
    >>> metric.compute(predictions=['{"a": "X", "b": 3}'], references=['{"a": "x", "c": 1}'])
    {'json_field_f1': 0.5}
"""


def parse_object(text):
    """The JSON object a text holds, or None when it is not valid JSON or not an object."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def number_text(number):
    """Canonical text for a finite number: 5, 5.0 and "5" all give "5"."""
    return str(int(number)) if number.is_integer() else repr(number)


def normalize(value):
    """Comparable text for a key or value (see the description for the rules)."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        text = number_text(value) if math.isfinite(value) else str(value)
    else:
        text = str(value)
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is not None and math.isfinite(number):
            text = number_text(number)
    return " ".join(text.lower().split())


def field_pairs(obj):
    """The set of normalized (key, value) pairs of a JSON object."""
    return {(normalize(key), normalize(value)) for key, value in obj.items()}


def field_f1(prediction, reference):
    """F1 of one predicted JSON text against one reference object."""
    predicted = parse_object(prediction)
    if predicted is None:
        return 0.0
    predicted_pairs = field_pairs(predicted)
    expected_pairs = field_pairs(reference)
    if not predicted_pairs and not expected_pairs:
        return 1.0
    matches = len(predicted_pairs & expected_pairs)
    return 2 * matches / (len(predicted_pairs) + len(expected_pairs))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class JsonFieldF1(evaluate.Metric):
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
            expected = parse_object(reference)
            if expected is None:
                raise ValueError(f"reference {index} is not a JSON object: {reference[:80]!r}")
            scores.append(field_f1(prediction, expected))
        if per_example:
            return {"json_field_f1": scores}
        return {"json_field_f1": sum(scores) / len(scores) if scores else 0.0}
