"""Quality metrics: plain functions registered through the ``register_metrics`` hook, and Hub metrics.

The shipped metrics are plain functions in this package (text.py: ROUGE-L; sacrebleu_metrics.py: chrF
and BLEU from sacrebleu; labels.py: accuracy, macro-F1; json_objects.py: the JSON metrics), registered
by the built-in plugin
``tuning_bench_plugins.metrics`` through the same hook a third party uses (registry.py). Any other
name goes to Hugging Face ``evaluate.load`` as a Hub metric (online). Every metric takes one
prediction string and one reference string per example; for classification both are label strings.
docs/tasks.md states the definitions.

A registered metric is either *per-example* (the score is the mean of one number per example) or
*corpus* (computed from the whole set: chrF and BLEU sum n-gram counts, macro-F1 counts per class).
``example_scores`` returns what the statistics need to resample either kind: the per-example
numbers, or a corpus metric's per-pair statistics (chrF, BLEU); macro-F1 is rebuilt from the labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tuning_bench.api.errors import UsageError
from tuning_bench.metrics.registry import registered_metric

# The metrics the built-in plugin registers (all higher-is-better); their names are reserved for it.
SHIPPED_METRICS: tuple[str, ...] = ("accuracy", "bleu", "chrf", "json_exact_match", "json_field_f1", "macro_f1", "rouge_l")

# Hub metrics where a lower number is better (error rates and distances); all others are taken as
# higher-is-better.
_LOWER_IS_BETTER = {"perplexity", "wer", "cer", "ter", "mae", "mse", "rmse", "mape", "smape", "character"}

_loaded: dict[str, Any] = {}


def metric_direction(name: str) -> bool:
    """Whether a higher value of the named metric is better (shipped and Hub metrics)."""
    if name in SHIPPED_METRICS:
        return True
    return name.rsplit("/", 1)[-1].lower() not in _LOWER_IS_BETTER


def _load(name: str) -> Any:
    """The Hub metric ``name`` through ``evaluate.load`` (cached), or UsageError."""
    if name in _loaded:
        return _loaded[name]
    if name in SHIPPED_METRICS:  # only reached when the built-in metric plugin did not load
        raise UsageError(f"Metric '{name}' is registered by the built-in plugin 'builtin:metrics', which is "
                         "blocked or failed to load; remove it from TBENCH_BLOCK_PLUGINS.")
    # evaluate is slow to import (it pulls in datasets); only pay for it when a Hub metric is named.
    import evaluate

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
    """The numbers a Hub metric reported, keyed so that the metric's own number is under its name."""
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

    Returns one float per metric, keyed by its name (a Hub metric that reports several numbers keeps
    its own keys). Raises UsageError for a metric that cannot be loaded and ValueError when the two
    lists differ in length.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    scores: dict[str, float] = {}
    for name in names:
        registered = registered_metric(name)
        if registered is not None:
            scores[name] = registered.compute(predictions, references)
            continue
        module = _load(name)
        result = module.compute(predictions=list(predictions), references=list(references)) or {}
        scores.update(_numbers(name, result))
    return scores


def example_scores(names: Sequence[str], predictions: list[str], references: list[str]) -> dict[str, Any]:
    """What a paired bootstrap needs to resample each named registered metric over these examples.

    Returns ``{"scores": {metric: [float per example]}, "statistics": {metric: [[number, ...] per
    example]}}``: per-example metrics give their scores (their mean is the metric's value), a corpus
    metric with statistics (chrF, BLEU) its per-pair counts (summed, then scored). Macro-F1 needs nothing
    more than the predictions and references the record keeps. Hub metrics and corpus metrics
    without statistics are left out: they say nothing per example.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    scores: dict[str, list[float]] = {}
    statistics: dict[str, list[list[float]]] = {}
    for name in names:
        registered = registered_metric(name)
        if registered is None:
            continue
        if registered.per_example:
            scores[name] = registered.per_example_scores(predictions, references)
        elif registered.statistics is not None:
            statistics[name] = registered.example_statistics(predictions, references)
    return {"scores": scores, "statistics": statistics}


def score_from_statistics(name: str) -> Callable[[Any], Any] | None:
    """The registered metric's function from summed statistics rows to scores (chrF's, BLEU's), or None."""
    registered = registered_metric(name)
    return None if registered is None else registered.from_statistics
