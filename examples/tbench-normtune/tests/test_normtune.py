"""The example plugin's own test: the whole Method contract on both tiny models, in a few lines."""

import pytest

from tbench_normtune import NormTuning
from tuning_bench.testing import check_method


@pytest.mark.parametrize(("model", "task"), [("tiny-llama", "tiny-gen"), ("tiny-bert", "tiny-cls")])
def test_normtune_keeps_the_contract(model, task):
    report = check_method(NormTuning(), model, task, learning_rate=3e-2)
    # saved: exactly the norm weights (and an encoder's head) plus the safetensors header
    assert report["state_kind"] == "trained-tensors"
    assert report["saved_bytes"] == report["trained_bytes"] + report["metadata_bytes"]
    assert report["metadata_bytes"] < 0.5 * report["trained_bytes"] + 2048
    assert report["changed"] and all("norm" in name.lower() or "classifier" in name for name in report["changed"])


def test_normtune_metrics_register_and_score():
    from sacrebleu.metrics import CHRF

    from tuning_bench.host.plugins import register_module, reset_default_host
    from tuning_bench.metrics import compute_metrics, example_scores
    from tuning_bench.stats.samples import cell_statistic

    reset_default_host()
    try:
        assert register_module("tbench_normtune.metrics")
        predictions, references = ["the cat sat", "a dog", ""], ["the cat sat down", "a dog barked", "hi"]
        scores = compute_metrics(["answer_length_error", "chrf_pp"], predictions, references)
        assert scores["answer_length_error"] == (0.25 + 1 / 3 + 1.0) / 3
        expected = CHRF(word_order=2).corpus_score(predictions, [references]).score
        assert 0 < scores["chrf_pp"] == expected < 100
        # the bootstrap can resample it: its statistics summed and scored give the corpus value
        per = example_scores(["chrf_pp"], predictions, references)
        cell = {"predictions": predictions, "per_example": {"index": [0, 1, 2], "references": references, **per}}
        assert cell_statistic(cell, "chrf_pp", [0, 1, 2]).value() == pytest.approx(expected, rel=1e-12)
    finally:
        reset_default_host()
