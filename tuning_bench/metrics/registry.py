"""Metrics that plugins register as plain functions (the ``register_metrics`` hook).

A per-example metric takes ``(prediction, reference) -> float`` and is averaged over the examples; a
corpus metric takes ``(predictions, references) -> float``. ``registered_metric(name)`` is the one
entry point the scoring code uses to find them (``tuning_bench.metrics.compute_metrics`` does).
"""

from __future__ import annotations

import difflib
import inspect
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class RegisteredMetric:
    """A metric function a plugin registered, with the direction that is better."""

    name: str
    function: Callable[..., Any]
    higher_is_better: bool = True
    per_example: bool = True
    plugin: str = ""

    def per_example_scores(self, predictions: Sequence[str], references: Sequence[str]) -> list[float] | None:
        """One score per example for a per-example metric; None for a corpus metric."""
        if not self.per_example:
            return None
        return [self._number(self.function(p, r)) for p, r in zip(predictions, references)]

    def compute(self, predictions: Sequence[str], references: Sequence[str]) -> float:
        """The metric over all examples: the mean of per-example scores, or the corpus function's value."""
        scores = self.per_example_scores(predictions, references)
        if scores is None:
            return self._number(self.function(list(predictions), list(references)))
        return sum(scores) / len(scores) if scores else 0.0  # no examples: 0, as the shipped metrics

    def _number(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"metric '{self.name}' of plugin '{self.plugin}' returned {value!r}; a metric returns a finite number")
        return float(value)


class MetricRegister:
    """The ``register`` callable handed to ``register_metrics``: register(name, function, higher_is_better=True,
    per_example=True). A bad registration is collected in ``rejected`` (reported by the host)."""

    def __init__(self, registry: Any, plugin_name: str, reserved: Sequence[str]):
        self._registry = registry
        self._plugin = plugin_name
        self._reserved = tuple(reserved)
        self.rejected: list[str] = []

    def __call__(self, name: str, function: Callable[..., Any], *, higher_is_better: bool = True,
                 per_example: bool = True) -> None:
        problem = self._problem(name, function, higher_is_better, per_example)
        if problem:
            self.rejected.append(problem)
            return
        self._registry.add(RegisteredMetric(name, function, higher_is_better, per_example, self._plugin), self._plugin)

    def _problem(self, name: Any, function: Any, higher_is_better: Any, per_example: Any) -> str | None:
        if not isinstance(name, str) or not _NAME.match(name):
            return f"metric name {name!r} is not usable; use letters, digits, '-', '_' or '.'"
        if name in self._reserved:
            return f"metric '{name}' is a shipped metric; register it under another name"
        if not callable(function):
            return f"metric '{name}': {function!r} is not a function"
        if not isinstance(higher_is_better, bool) or not isinstance(per_example, bool):
            return f"metric '{name}': higher_is_better and per_example must be True or False"
        try:
            inspect.signature(function).bind(None, None)
        except TypeError:
            shape = "(prediction, reference)" if per_example else "(predictions, references)"
            return f"metric '{name}': the function must take two arguments {shape}"
        except ValueError:  # a builtin without a signature: accept it
            pass
        return None


def require_metrics(names: Sequence[str], registered: Sequence[str]) -> None:
    """Load now each named metric that is neither shipped nor registered (a hub metric), so that a name
    that cannot be loaded fails before anything runs: UsageError with did-you-mean."""
    from tuning_bench.api.errors import UsageError
    from tuning_bench.metrics import SHIPPED_METRICS, _load

    known = [*SHIPPED_METRICS, *registered]
    for name in names:
        if name in known:
            continue
        try:
            _load(name)
        except UsageError as exc:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise UsageError(f"{exc}{hint} Metrics registered by plugins: {', '.join(registered) or '(none)'}.") from None


def registered_metric(name: str) -> RegisteredMetric | None:
    """The metric registered under ``name`` in this process's plugin host, or None."""
    from tuning_bench.host.plugins import default_host

    metrics = default_host().catalog().metrics
    return metrics.get(name) if name in metrics else None
