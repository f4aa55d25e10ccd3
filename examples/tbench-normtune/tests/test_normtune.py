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
