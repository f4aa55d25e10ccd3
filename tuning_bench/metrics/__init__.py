"""Quality metrics, computed through Hugging Face ``evaluate``.

The metrics shipped here are evaluate module scripts beside this file, loaded by path so that they
work offline (the hub's own modules need the network). Any other name goes to ``evaluate.load`` as a
hub metric. Every metric takes one prediction string and one reference string per example; for
classification both are label strings. The definitions live in each module's description.

Each shipped metric is either *per-example* (the score is the mean of one number per example:
``per_example=True`` in its module returns that list) or *corpus* (the score is computed from
the whole set: chrF sums n-gram counts, macro-F1 counts per class). ``example_scores`` returns what
the statistics need to resample either kind: the per-example numbers, or for a corpus metric the
per-example statistics it sums (chrF) or the labels it counts (macro-F1).

Plugins add metrics as plain functions (``register_metrics`` hook, see registry.py); tasks name them
like the shipped ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tuning_bench.api.errors import UsageError

METRICS_DIR = Path(__file__).resolve().parent

# Shipped metric name -> higher is better. Each name is also its module's file name and result key.
_SHIPPED_DIRECTIONS = {
    "rouge_l": True,
    "chrf": True,
    "accuracy": True,
    "macro_f1": True,
    "json_exact_match": True,
    "json_field_f1": True,
}
SHIPPED_METRICS: tuple[str, ...] = tuple(sorted(_SHIPPED_DIRECTIONS))

# How each shipped metric aggregates: "per_example" (mean of one score per example) or "corpus".
METRIC_KINDS = {
    "rouge_l": "per_example",
    "accuracy": "per_example",
    "json_exact_match": "per_example",
    "json_field_f1": "per_example",
    "chrf": "corpus",
    "macro_f1": "corpus",
}

# Hub metrics where a lower number is better (error rates and distances); all others are taken as
# higher-is-better.
_LOWER_IS_BETTER = {"perplexity", "wer", "cer", "ter", "mae", "mse", "rmse", "mape", "smape", "character"}

_loaded: dict[str, Any] = {}


def metric_direction(name: str) -> bool:
    """Whether a higher value of the named metric is better."""
    if name in _SHIPPED_DIRECTIONS:
        return _SHIPPED_DIRECTIONS[name]
    return name.rsplit("/", 1)[-1].lower() not in _LOWER_IS_BETTER


def _load(name: str) -> Any:
    if name in _loaded:
        return _loaded[name]
    # evaluate is slow to import (it pulls in datasets); only pay for it when scoring.
    import evaluate

    if name in _SHIPPED_DIRECTIONS:
        module = evaluate.load(str(METRICS_DIR / f"{name}.py"), keep_in_memory=True)
    else:
        try:
            module = evaluate.load(name, keep_in_memory=True)
        except Exception as exc:  # offline, or no such hub metric: either way the user must pick another
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise UsageError(
                f"Metric '{name}' could not be loaded: it is not shipped with tuning-bench and the "
                f"Hugging Face Hub could not provide it (offline?; {reason}). "
                f"Metrics that work offline: {', '.join(SHIPPED_METRICS)}."
            ) from None
    _loaded[name] = module
    return module


def _numbers(name: str, result: dict[str, Any]) -> dict[str, float]:
    """The numbers a metric reported, keyed so that the metric's own number is under its name."""
    numeric = {k: float(v) for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if name in numeric:
        return {name: numeric[name]}
    if "score" in numeric:  # e.g. the hub's sacrebleu and chrf
        return {name: numeric["score"]}
    if len(numeric) == 1:
        return {name: next(iter(numeric.values()))}
    return numeric  # several numbers (e.g. the hub's rouge): keep the metric's own keys


def compute_metrics(names: Sequence[str], predictions: list[str], references: list[str]) -> dict[str, float]:
    """Score predictions against references with each named metric.

    Returns one float per metric, keyed by its name (a hub metric that reports several numbers keeps
    its own keys). Raises UsageError for a metric that cannot be loaded and ValueError when the two
    lists differ in length.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    from tuning_bench.metrics.registry import registered_metric

    scores: dict[str, float] = {}
    for name in names:
        registered = None if name in _SHIPPED_DIRECTIONS else registered_metric(name)
        if registered is not None:  # a plain function from a plugin's register_metrics hook
            scores[name] = registered.compute(predictions, references)
            continue
        module = _load(name)
        result = module.compute(predictions=list(predictions), references=list(references)) or {}
        scores.update(_numbers(name, result))
    return scores


def metric_kind(name: str) -> str | None:
    """"per_example" or "corpus" for a shipped metric; None for a hub metric (not resampled)."""
    return METRIC_KINDS.get(name)


def example_scores(names: Sequence[str], predictions: list[str], references: list[str]) -> dict[str, Any]:
    """What a paired bootstrap needs to resample each named shipped metric over these examples.

    Returns ``{"scores": {metric: [float per example]}, "statistics": {metric: [[int, ...] per
    example]}}``: per-example metrics give their scores (their mean is the metric's value), chrF its
    per-pair n-gram counts (summed, then scored). Macro-F1 needs nothing more than the predictions and
    references the record keeps. A plugin's per-example metric gives its scores too. Hub metrics and a
    plugin's corpus metrics are left out: they say nothing per example.
    """
    from tuning_bench.metrics.registry import registered_metric

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    scores: dict[str, list[float]] = {}
    statistics: dict[str, list[list[int]]] = {}
    for name in names:
        if METRIC_KINDS.get(name) == "per_example":
            result = _load(name).compute(predictions=list(predictions), references=list(references), per_example=True)
            scores[name] = [float(v) for v in result[name]]
        elif name == "chrf":
            result = _load(name).compute(predictions=list(predictions), references=list(references), statistics=True)
            statistics[name] = [list(map(int, row)) for row in result[name]]
        elif name not in METRIC_KINDS and (registered := registered_metric(name)) is not None and registered.per_example:
            scores[name] = registered.per_example_scores(predictions, references)
    return {"scores": scores, "statistics": statistics}


def preload_shipped() -> None:
    """Load every shipped metric module now (the fork server does this once for all cell processes)."""
    for name in SHIPPED_METRICS:
        _load(name)
