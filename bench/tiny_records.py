"""Run a few tiny-model cells (both causal strategies, the encoder, a not-applicable pair) and save what a
refactor must not change: losses, curves, predictions, per-example scores. Compare two such files.

    python bench/tiny_records.py save before.json      # on the old code
    python bench/tiny_records.py save after.json       # on the new code
    python bench/tiny_records.py compare before.json after.json
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

CELLS = ([("tiny-gen", "tiny-llama", m) for m in ("zero-shot", "few-shot", "prompt", "lora", "prefix")]
         + [("tiny-cls", "tiny-llama", m) for m in ("zero-shot", "prompt", "lora")]
         + [("tiny-cls", "tiny-bert", m) for m in ("lora", "finetune", "prompt")]
         + [("tiny-gen", "tiny-bert", "lora")])
RECORD_KEYS = ("status", "error", "quality", "predictions", "per_example", "curves", "guard", "classification_by",
               "samples", "prompt")
MEASUREMENT_KEYS = ("final_val_loss", "final_train_loss", "best_val_loss", "truncated_examples", "trainable_params",
                    "generated_tokens", "saved_bytes", "latency_new_tokens")


def save(path: Path) -> None:
    os.environ["TBENCH_PLUGINS"] = ""
    os.environ["HF_HUB_OFFLINE"] = "1"
    sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))  # fake_plugins, as the tests use them
    from tuning_bench.engine import precision
    from tuning_bench.engine.cell import CellSpec, run_cell
    from tuning_bench.host import plugins

    host = plugins.reset_default_host()
    host.add_module("tuning_bench.testing")
    host.add_module("fake_plugins")
    precision.cached_probe = lambda: precision.Probe(fp32_seconds=1.0, bf16_seconds=1.0)  # fp32, as in the tests
    out = {}
    for task, model, method in CELLS:
        spec = CellSpec(task=task, method=method, seed=0, model=model, method_config={}, steps=3, batch_size=4,
                        val_examples=2, eval_batch_size=4, eval_examples=6, val_every=1)
        with tempfile.TemporaryDirectory() as folder:
            record = run_cell(spec, Path(folder) / "cell", None)
        kept = {key: record.get(key) for key in RECORD_KEYS}
        measurements = record.get("measurements") or {}
        kept["measurements"] = {key: measurements.get(key) for key in MEASUREMENT_KEYS}
        out[f"{task}/{model}/{method}"] = kept
        print(task, model, method, record["status"], record.get("error") or "", flush=True)
    path.write_text(json.dumps(out, indent=1, sort_keys=True, default=str))


def compare(before: Path, after: Path) -> int:
    old, new = json.loads(before.read_text()), json.loads(after.read_text())
    differences = [f"{cell} {key}: {old[cell][key]!r:.120} -> {new.get(cell, {}).get(key)!r:.120}"
                   for cell in old for key in old[cell] if old[cell][key] != new.get(cell, {}).get(key)]
    print("\n".join(differences) or f"identical: {len(old)} cells")
    return 1 if differences else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["save"] and len(sys.argv) == 3:
        save(Path(sys.argv[2]))
    elif sys.argv[1:2] == ["compare"] and len(sys.argv) == 4:
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
    else:
        sys.exit(__doc__)
