"""chrF and BLEU from sacrebleu (corpus metrics), with the per-pair statistics a bootstrap resamples.

Both are sacrebleu's own code with its defaults (chrF: character orders 1-6, whitespace removed, case
kept, beta 2; BLEU: 13a tokenisation, 4-gram, exponential smoothing), so the numbers are the ones
sacrebleu prints and papers report. A resample is scored the way sacrebleu's own paired tests do it:
per-pair statistics (``_extract_corpus_statistics``) summed, then ``_compute_score_from_stats``.
Registered by the built-in metric plugin (``tuning_bench_plugins.metrics``); docs/tasks.md states
the definitions and how chrF differs from the hand-written version it replaced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sacrebleu.metrics import BLEU, CHRF

# One scorer each, built once: they hold no per-corpus state when no references are cached at init.
_CHRF = CHRF()
_BLEU = BLEU()


def _corpus(scorer: Any, predictions: Sequence[str], references: Sequence[str]) -> float:
    if not predictions:  # sacrebleu needs at least one pair; no pairs score 0, as every shipped metric
        return 0.0
    return float(scorer.corpus_score(list(predictions), [list(references)]).score)


def _pair_statistics(scorer: Any, prediction: str, reference: str) -> list[int]:
    return [int(v) for v in scorer._extract_corpus_statistics([prediction], [[reference]])[0]]


def _from_statistics(scorer: Any, summed: Any) -> np.ndarray:
    rows = np.atleast_2d(np.asarray(summed, dtype=np.float64))
    return np.array([scorer._compute_score_from_stats(row).score for row in rows], dtype=np.float64)


def chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (Popović, 2015), 0..100, as sacrebleu's ``CHRF()``; no pairs score 0."""
    return _corpus(_CHRF, predictions, references)


def chrf_statistics(prediction: str, reference: str) -> list[int]:
    """One pair's counts that corpus chrF sums: [prediction n-grams, reference n-grams, matches] for
    each character order 1..6, flattened (18 integers; sacrebleu counts no prediction n-grams of an
    order the reference has none of)."""
    return _pair_statistics(_CHRF, prediction, reference)


def chrf_from_statistics(summed: Any) -> np.ndarray:
    """chrF (0..100) of each row of summed pair statistics (rows, 18): corpus chrF is one row, a
    bootstrap resample another."""
    return _from_statistics(_CHRF, summed)


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (Papineni et al., 2002), 0..100, as sacrebleu's ``BLEU()``; no pairs score 0."""
    return _corpus(_BLEU, predictions, references)


def bleu_statistics(prediction: str, reference: str) -> list[int]:
    """One pair's counts that corpus BLEU sums: [prediction length, reference length, matches of
    orders 1..4, prediction n-grams of orders 1..4] (10 integers, words after 13a tokenisation)."""
    return _pair_statistics(_BLEU, prediction, reference)


def bleu_from_statistics(summed: Any) -> np.ndarray:
    """BLEU (0..100) of each row of summed pair statistics (rows, 10)."""
    return _from_statistics(_BLEU, summed)
