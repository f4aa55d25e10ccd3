"""Where a training step's time goes: torch.profiler over steps of full fine-tuning and LoRA on smollm2-135m.

Prints the share of self CPU time in matrix multiplication, in the rest of the forward/backward, and in
the optimiser, plus the top operators; with --precision bf16 the steps run under CPU bf16 autocast, as
`tbench run` does when it resolves to bf16 (the casts autocast makes show as `aten::copy_`/`aten::_to_copy`).
Usage: python bench/profile_step.py [--methods finetune,lora] [--precision fp32|bf16] [--out bench/profile.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).parent))
from common import environment_line, load, threads  # noqa: E402

MATMUL = {"aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "aten::_scaled_dot_product_flash_attention_for_cpu",
          "aten::_scaled_dot_product_flash_attention_for_cpu_backward"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="finetune,lora")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--out", default=str(Path(__file__).parent / "profile.json"))
    args = parser.parse_args()
    autocast_dtype = torch.bfloat16 if args.precision == "bf16" else None
    torch.set_num_threads(threads())
    from tuning_bench.engine.data import length_bucketed_batches
    from tuning_bench.api.options import resolve_options
    from tuning_bench.engine.allocator import reuse_freed_memory
    from tuning_bench.engine.trainer import TrainConfig, Trainer, make_feeder

    reuse_freed_memory()  # as in every cell

    catalog, task, source, loaded, encoded = load()
    examples = encoded.splits["train"]
    results = {"environment": environment_line(), "precision": args.precision, "methods": {}}
    print(results["environment"])
    for name in args.methods.split(","):
        method = catalog.methods.get(name)
        config = resolve_options(name, method.options, {})
        fresh = source.load(task_kind=task.kind)
        model = method.adapt(fresh, task, config)
        feeder = make_feeder(model, fresh.kind, loaded.tokenizer.pad_token_id, torch.device("cpu"), autocast_dtype)
        trainer = Trainer(model, feeder, TrainConfig(steps=args.steps + 1, batch_size=4,
                                                     learning_rate=config["learning_rate"], seed=0))
        sampler = length_bucketed_batches([e.length for e in examples], 4, seed=0)

        def step():  # the engine's own training step
            trainer.step([examples[i] for i in next(sampler)])

        step()  # warm-up: optimiser state, allocator
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                step()
        totals = defaultdict(float)
        for event in prof.key_averages():
            totals[event.key] += event.self_cpu_time_total
        everything = sum(totals.values())
        matmul = sum(v for k, v in totals.items() if k in MATMUL or "scaled_dot_product" in k)
        casts = sum(v for k, v in totals.items() if k in ("aten::copy_", "aten::_to_copy", "aten::to"))
        optim = sum(v for k, v in totals.items() if "_foreach" in k or "adamw" in k.lower() or k.startswith("Optimizer"))
        top = sorted(totals.items(), key=lambda kv: -kv[1])[:12]
        row = {"matmul_share": matmul / everything, "optimizer_share": optim / everything, "cast_share": casts / everything,
               "top": [(k, v / everything) for k, v in top]}
        results["methods"][name] = row
        print(f"{name}: matmul and attention {100 * row['matmul_share']:.1f}% of self CPU time, optimiser "
              f"{100 * row['optimizer_share']:.1f}%, dtype copies {100 * row['cast_share']:.1f}%")
        for key, share in row["top"]:
            print(f"   {100 * share:5.1f}%  {key}")
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
