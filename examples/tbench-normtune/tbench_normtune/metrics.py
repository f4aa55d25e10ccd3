"""Metrics as a plugin: a plain per-example function, and a corpus metric taken from a library.

``answer_length_error``: how far the answer's length is from the reference's (0 = same length).
``chrf_pp``: chrF++ (character and word n-grams) from sacrebleu; its per-pair statistics and score
from summed statistics let the verdict's bootstrap resample it, as the shipped chrF does.
"""

from sacrebleu.metrics import CHRF

from tuning_bench import hookimpl

_CHRF_PP = CHRF(word_order=2)  # chrF++ (Popović, 2017)


def answer_length_error(prediction: str, reference: str) -> float:
    return abs(len(prediction.split()) / max(1, len(reference.split())) - 1.0)


def chrf_pp(predictions, references) -> float:
    return _CHRF_PP.corpus_score(list(predictions), [list(references)]).score if predictions else 0.0


@hookimpl
def register_metrics(register):
    register("answer_length_error", answer_length_error, higher_is_better=False, per_example=True)
    register("chrf_pp", chrf_pp, per_example=False,
             statistics=lambda p, r: _CHRF_PP._extract_corpus_statistics([p], [[r]])[0],
             from_statistics=lambda rows: [_CHRF_PP._compute_score_from_stats(row).score for row in rows])
