"""Metrics registered as plain functions (the ``register_metrics`` hook), the shipped ones included.

A per-example metric takes ``(prediction, reference) -> float`` and is averaged over the examples; a
corpus metric takes ``(predictions, references) -> float``, and may give per-pair ``statistics`` and
the score ``from_statistics`` summed over pairs (chrF), so that a bootstrap can resample it.
``registered_metric(name)`` is the one entry point the scoring code uses to find them
(``tuning_bench.metrics.compute_metrics`` does).
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
    """A metric function a plugin registered, with the direction that is better.

    ``statistics(prediction, reference)`` (corpus metrics only, optional) gives one pair's numbers that
    the corpus score sums; ``from_statistics(summed)`` maps an array of summed rows to one score each.
    """

    name: str
    function: Callable[..., Any]
    higher_is_better: bool = True
    per_example: bool = True
    plugin: str = ""
    statistics: Callable[[str, str], Sequence[float]] | None = None
    from_statistics: Callable[[Any], Any] | None = None

    def per_example_scores(self, predictions: Sequence[str], references: Sequence[str]) -> list[float] | None:
        """One score per example for a per-example metric; None for a corpus metric."""
        if not self.per_example:
            return None
        return [self._number(value) for value in self._per_pair(self.function, predictions, references)]

    def example_statistics(self, predictions: Sequence[str], references: Sequence[str]) -> list[list[float]] | None:
        """Per pair, the numbers the corpus score sums (integers stay integers); None without ``statistics``."""
        if self.statistics is None:
            return None
        rows = self._per_pair(self.statistics, predictions, references)
        return [[v if isinstance(v, int) and not isinstance(v, bool) else self._number(v) for v in row] for row in rows]

    def _per_pair(self, function: Callable[..., Any], predictions: Sequence[str], references: Sequence[str]) -> list[Any]:
        values = []
        for index, (prediction, reference) in enumerate(zip(predictions, references)):
            try:
                values.append(function(prediction, reference))
            except ValueError as exc:  # e.g. a broken reference: say which example
                raise ValueError(f"metric '{self.name}', example {index}: {exc}") from None
        return values

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
    per_example=True, statistics=None, from_statistics=None). A bad registration is collected in
    ``rejected`` (reported by the host)."""

    def __init__(self, registry: Any, plugin_name: str, reserved: Sequence[str]):
        self._registry = registry
        self._plugin = plugin_name
        self._reserved = tuple(reserved)
        self.rejected: list[str] = []

    def __call__(self, name: str, function: Callable[..., Any], *, higher_is_better: bool = True,
                 per_example: bool = True, statistics: Callable[[str, str], Sequence[float]] | None = None,
                 from_statistics: Callable[[Any], Any] | None = None) -> None:
        problem = (self._problem(name, function, higher_is_better, per_example)
                   or self._statistics_problem(name, per_example, statistics, from_statistics))
        if problem:
            self.rejected.append(problem)
            return
        self._registry.add(RegisteredMetric(name, function, higher_is_better, per_example, self._plugin,
                                            statistics, from_statistics), self._plugin)

    @staticmethod
    def _statistics_problem(name: str, per_example: bool, statistics: Any, from_statistics: Any) -> str | None:
        if statistics is None and from_statistics is None:
            return None
        if per_example:
            return f"metric '{name}': statistics and from_statistics are for corpus metrics (per_example=False)"
        if not callable(statistics) or not callable(from_statistics):
            return f"metric '{name}': give both statistics and from_statistics, as functions"
        return None

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
