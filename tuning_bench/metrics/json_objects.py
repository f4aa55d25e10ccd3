"""JSON metrics as plain per-example functions: exact match and field F1 of JSON objects.

A prediction that is not a JSON object scores 0; a reference that is not one is an error in the
task's data (ValueError). Registered by the built-in metric plugin (``tuning_bench_plugins.metrics``).
"""

from __future__ import annotations

import json
import math
from typing import Any


def parse_object(text: str) -> dict | None:
    """The JSON object a text holds, or None when it is not valid JSON or not an object."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def reference_object(text: str) -> dict:
    """The reference's JSON object; a broken reference is the task's fault, so it is an error."""
    value = parse_object(text)
    if value is None:
        raise ValueError(f"reference is not a JSON object: {text[:80]!r}")
    return value


def json_exact_match(prediction: str, reference: str) -> float:
    """1 when the prediction parses to an object equal to the reference object (key order and
    whitespace aside; values exact, so 5 differs from "5"), else 0."""
    expected = reference_object(reference)
    return float(parse_object(prediction) == expected)


def number_text(number: float) -> str:
    """Canonical text for a finite number: 5, 5.0 and "5" all give "5"."""
    return str(int(number)) if number.is_integer() else repr(number)


def normalize(value: Any) -> str:
    """Comparable text for a key or value: lowercased, whitespace collapsed; numbers and numeric
    strings by value; lists, objects, true/false/null by their compact JSON."""
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


def field_pairs(obj: dict) -> set[tuple[str, str]]:
    """The set of normalized (key, value) pairs of a JSON object."""
    return {(normalize(key), normalize(value)) for key, value in obj.items()}


def json_field_f1(prediction: str, reference: str) -> float:
    """F1 between the (key, value) pairs of the predicted and reference objects: 2M / (predicted +
    reference pairs). Not an object: 0; two empty objects: 1."""
    expected = reference_object(reference)
    predicted = parse_object(prediction)
    if predicted is None:
        return 0.0
    predicted_pairs = field_pairs(predicted)
    expected_pairs = field_pairs(expected)
    if not predicted_pairs and not expected_pairs:
        return 1.0
    matches = len(predicted_pairs & expected_pairs)
    return 2 * matches / (len(predicted_pairs) + len(expected_pairs))
