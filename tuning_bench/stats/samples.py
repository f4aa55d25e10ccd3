"""From a cell record's per-example data to the arrays the bootstrap resamples.

A record (schema 2) keeps, under ``per_example``, the test example indices, the references, each
per-example metric's scores and chrF's per-pair n-gram counts (scored by the registered metric's
``from_statistics``); the predictions are under ``predictions``. Macro-F1 is rebuilt from the
labels. Metrics without per-example data (hub metrics, records from before schema 2) give None:
they cannot be resampled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tuning_bench.metrics import score_from_statistics
from tuning_bench.run.records import CellRecord, as_cell
from tuning_bench.stats.bootstrap import Statistic


def example_indices(cell: CellRecord | dict[str, Any]) -> list[int] | None:
    """The test example indices a cell scored, or None when it kept no per-example data."""
    per_example = as_cell(cell).per_example
    if per_example is None or not isinstance(per_example.index, list) or not per_example.present("index"):
        return None
    return [int(i) for i in per_example.index]


def _positions(cell: CellRecord, shared: Sequence[int]) -> np.ndarray:
    where = {index: position for position, index in enumerate(example_indices(cell) or [])}
    return np.array([where[i] for i in shared], dtype=np.int64)


def macro_f1_rows(predictions: Sequence[str], references: Sequence[str]) -> tuple[np.ndarray, int]:
    """Per example, per class (the classes in the references): [true positive, false positive, false negative]."""
    predicted = [str(p).strip() for p in predictions]
    expected = [str(r).strip() for r in references]
    classes = sorted(set(expected))
    rows = np.zeros((len(expected), len(classes), 3))
    for c, label in enumerate(classes):
        for i, (p, r) in enumerate(zip(predicted, expected)):
            rows[i, c] = (p == label and r == label, p == label and r != label, p != label and r == label)
    return rows.reshape(len(expected), -1), len(classes)


def macro_f1_combine(classes: int):
    """Macro-F1 from summed indicators; a class absent from a resample's references does not count."""
    def combine(summed: np.ndarray) -> np.ndarray:
        counts = summed.reshape(summed.shape[0], classes, 3)
        tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
        present = (tp + fn) > 0
        denominator = 2 * tp + fp + fn
        f1 = np.where(tp > 0, 2 * tp / np.where(denominator > 0, denominator, 1), 0.0)
        total = np.where(present, f1, 0.0).sum(axis=1)
        return np.where(present.any(axis=1), total / np.maximum(present.sum(axis=1), 1), 0.0)
    return combine


def mean_combine(examples: int):
    def combine(summed: np.ndarray) -> np.ndarray:
        return summed[:, 0] / examples
    return combine


def cell_statistic(cell: CellRecord | dict[str, Any], metric: str, shared: Sequence[int]) -> Statistic | None:
    """One cell's ``metric`` over the ``shared`` example indices, ready to resample; None if not possible."""
    cell = as_cell(cell)
    per_example = cell.per_example
    if example_indices(cell) is None or not shared:
        return None
    positions = _positions(cell, shared)
    scores = (per_example.scores or {}).get(metric)
    if scores is not None:
        return Statistic(np.asarray(scores, dtype=np.float64)[positions].reshape(-1, 1), mean_combine(len(shared)))
    statistics = (per_example.statistics or {}).get(metric)
    combine = score_from_statistics(metric) if statistics is not None else None
    if combine is not None:  # a corpus metric from summed per-pair counts (chrF): the metric's own function
        return Statistic(np.asarray(statistics, dtype=np.float64)[positions], combine)
    predictions, references = cell.predictions, per_example.references
    if metric == "macro_f1" and cell.present("predictions") and isinstance(predictions, list) and isinstance(references, list):
        rows, classes = macro_f1_rows([predictions[p] for p in positions], [references[p] for p in positions])
        return Statistic(rows, macro_f1_combine(classes))
    return None
