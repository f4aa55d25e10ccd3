"""Engine overhead and hardware efficiency on smollm2-135m, for every trainable method.

For each method the same batches (same examples, same order, same padding) go through
  engine: tuning_bench.trainer.train (the loop every cell uses), and
  bare:   a minimal hand-written torch + peft loop: the model's own loss (labels=...), backward,
          clip, AdamW step (fused, as the engine's), schedule, zero_grad;
  bare+keep: the bare loop computing logits only where targets are, as the engine does.
The ratio engine / bare+keep is the engine's own overhead; engine / bare shows what computing logits
only at target positions saves. Achieved FLOP/s is compared with the machine's fp32 matmul rate,
measured in the same process.

Usage: python bench/engine_overhead.py [--steps 10] [--methods prompt,lora,...] [--out bench/overhead.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import environment_line, load, matmul_gflops, median, threads  # noqa: E402

METHODS = ["prompt", "prefix", "ptuning", "lora", "ia3", "finetune"]


def bare_batches(examples, indices, pad_id):
    """Right padding and -100 labels on prompts, written out by hand (no engine code)."""
    items = [examples[i] for i in indices]
    width = max(len(e.prompt_ids) + len(e.target_ids) for e in items)
    ids = torch.full((len(items), width), pad_id)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    labels = torch.full((len(items), width), -100)
    for row, e in enumerate(items):
        seq = e.prompt_ids + e.target_ids
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
        labels[row, len(e.prompt_ids): len(seq)] = torch.tensor(e.target_ids)
    return ids, mask, labels


def bare_loop(model, examples, batches, pad_id, lr, keep_only_targets):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, fused=True)  # as the engine uses
    steps = len(batches)
    warmup = max(1, round(0.1 * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (steps - s) / max(1, steps - warmup)))
    model.train()
    times = []
    for indices in batches:
        start = time.perf_counter()
        ids, mask, labels = bare_batches(examples, indices, pad_id)
        if keep_only_targets:
            first = int((labels != -100).int().argmax(dim=1).min())
            keep = ids.shape[1] - first + 1
            logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits[:, :-1]
            target = labels[:, ids.shape[1] - keep + 1:]
            loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1))
        else:
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        float(loss.detach())
        times.append(time.perf_counter() - start)
    return times


VIRTUAL_TOKENS = {"prompt": 20, "ptuning": 20}  # soft-prompt methods run the model over these too


def flops_per_step(method, model_params, embedding_params, tokens, target_positions):
    """Training FLOP of one step (the formula is printed with the results).

    Full fine-tuning: 6 FLOP per parameter per token (forward 2, backward 4) for the transformer
    body, and the tied LM head only at kept positions. Frozen-base methods: 4 per parameter per
    token (forward 2, backward to activations 2; no weight gradients), the same LM-head rule. Soft-prompt
    methods count their virtual tokens as tokens. Attention score FLOP (small at these lengths) and the
    adapters' own FLOP are left out, so the figure slightly understates the work done.
    """
    body = model_params - embedding_params
    factor = 6 if method == "finetune" else 4
    return factor * body * tokens + factor * embedding_params * target_positions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2, help="steps excluded from the median")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--out", default=str(Path(__file__).parent / "overhead.json"))
    args = parser.parse_args()
    torch.set_num_threads(threads())

    from tuning_bench.data import length_bucketed_batches
    from tuning_bench.options import resolve_options
    from tuning_bench.trainer import TrainConfig, make_feeder, train

    catalog, task, source, loaded, encoded = load()
    examples = encoded.splits["train"]
    sampler = length_bucketed_batches([e.length for e in examples], args.batch_size, seed=0)
    batches = [next(sampler) for _ in range(args.steps)]
    pad_id = loaded.tokenizer.pad_token_id
    ceiling = matmul_gflops()
    results = {"environment": environment_line(), "matmul_gflops": ceiling, "steps": args.steps,
               "batch_size": args.batch_size, "methods": {}}
    print(results["environment"], f"| fp32 matmul {ceiling:.1f} GFLOP/s", flush=True)

    for name in args.methods.split(","):
        method = catalog.methods.get(name)
        config = resolve_options(name, method.options, {})
        # Each variant runs twice, in the order below, so that slow drift of a shared machine and
        # first-run effects (page faults, allocator warm-up) fall on every variant alike.
        samples = {"engine": [], "bare": [], "bare+keep": []}
        for variant in ("engine", "bare+keep", "bare", "bare+keep", "engine", "bare"):
            torch.manual_seed(0)
            fresh = source.load(task_kind=task.kind, labels=task.labels)
            model = method.adapt(fresh, task, config)
            if variant == "engine":
                feeder = make_feeder(model, fresh.kind, pad_id, torch.device("cpu"), None)
                # the engine's sampler with the same seed yields the same batches as ``batches``
                log = train(model, examples, [], feeder, TrainConfig(steps=args.steps, batch_size=args.batch_size,
                                                                    learning_rate=config["learning_rate"], seed=0))
                times = log.step_seconds
            else:
                times = bare_loop(model, examples, batches, pad_id, config["learning_rate"], variant == "bare+keep")
            samples[variant] += times[args.warmup:]
            del model, fresh
        timings = {variant: median(values) for variant, values in samples.items()}
        model_params = sum(p.numel() for p in loaded.model.parameters())
        embedding_params = loaded.model.get_input_embeddings().weight.numel()
        tokens = [sum(len(examples[i].prompt_ids) + len(examples[i].target_ids) + VIRTUAL_TOKENS.get(name, 0) for i in b)
                  for b in batches]
        kept = [len(b) * (max(examples[i].length for i in b) - min(len(examples[i].prompt_ids) for i in b) + 1) for b in batches]
        flops = median(flops_per_step(name, model_params, embedding_params, t, k) for t, k in zip(tokens, kept))
        achieved = flops / timings["engine"] / 1e9
        row = {**{f"{k}_median_step_s": v for k, v in timings.items()},
               "engine_over_bare_keep": timings["engine"] / timings["bare+keep"],
               "engine_over_bare": timings["engine"] / timings["bare"],
               "gflop_per_step": flops / 1e9, "achieved_gflops": achieved, "efficiency": achieved / ceiling}
        results["methods"][name] = row
        print(f"{name:9} engine {timings['engine']:.2f}s  bare {timings['bare']:.2f}s  bare+keep {timings['bare+keep']:.2f}s  "
              f"ratio {row['engine_over_bare_keep']:.3f} (vs bare {row['engine_over_bare']:.3f})  "
              f"{achieved:.1f} GFLOP/s = {100 * row['efficiency']:.0f}% of matmul", flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
