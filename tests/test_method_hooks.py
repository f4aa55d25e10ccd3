"""The optional Method hooks reach the engine: parameter groups with their own rates, and on_step."""

from __future__ import annotations

import torch

from tuning_bench.engine.cell import CellSpec, run_cell
from tuning_bench.host.plugins import register_module


def test_parameter_groups_and_step_hook_are_used_by_a_cell(tiny, tmp_path, monkeypatch):
    register_module("hook_plugin")
    from hook_plugin import TwoGroups
    from tuning_bench.testing import TinyLlama

    monkeypatch.setattr(TwoGroups, "steps_seen", [])
    torch.manual_seed(0)
    base = dict(TinyLlama().load(task_kind=None).model.named_parameters())
    spec = CellSpec(task="tiny-gen", method="fake-groups", seed=0, model="tiny-llama", method_config={}, steps=3,
                    batch_size=4, eval_examples=2, val_examples=2, keep="all")
    record = run_cell(spec, tmp_path / "cell", None)
    assert record["status"] == "ok", record["error"]
    assert TwoGroups.steps_seen == [(1, 3, True), (2, 3, True), (3, 3, True)]

    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "cell" / "state" / "state.safetensors"))
    assert sorted(saved) == sorted(n for n in base if "layernorm" in n)
    for name, tensor in saved.items():
        if "post_attention_layernorm" in name:  # its group's rate is 0: trained, yet bit-identical
            assert torch.equal(tensor, base[name].detach()), name
        else:
            assert not torch.equal(tensor, base[name].detach()), name
