"""Smaller measurements behind the engine's choices: padding, threads, the token cache.

  padding:  fraction of padding tokens in training batches, length-bucketed (the engine) vs random
  threads:  median LoRA training step on smollm2-135m with torch threads 1, 2 and 4 (2 cores here)
  tokens:   tokenizing a task vs reading the engine's token cache
  allocator: median training step of LoRA and full fine-tuning with glibc's default thresholds vs
             the engine's (tuning_bench/allocator.py), in fresh processes taking turns

Usage: python bench/levers.py [--out bench/levers.json]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import environment_line, load, median, threads  # noqa: E402


def padding_fraction(lengths, batches):
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - sum(lengths[i] for b in batches for i in b) / padded


def step_probe(method_name: str, mode: str, steps: int) -> None:
    """In a fresh process: median engine step of one method, with or without freed-memory reuse."""
    from tuning_bench.allocator import reuse_freed_memory
    from tuning_bench.options import resolve_options
    from tuning_bench.trainer import TrainConfig, make_feeder, train

    torch.set_num_threads(threads())
    if mode == "reuse":
        assert reuse_freed_memory()
    catalog, task, source, loaded, encoded = load()
    method = catalog.methods.get(method_name)
    config = resolve_options(method_name, method.options, {})
    torch.manual_seed(0)
    model = method.adapt(loaded, task, config)
    feeder = make_feeder(model, loaded.kind, loaded.tokenizer.pad_token_id, torch.device("cpu"), None)
    log = train(model, encoded.splits["train"], [], feeder, TrainConfig(steps=steps, batch_size=4,
                                                                        learning_rate=config["learning_rate"], seed=0))
    print(json.dumps({"median_step_s": median(log.step_seconds[2:])}))


def allocator_lever(pairs: int, steps: int) -> dict:
    results = {}
    for method_name in ("lora", "finetune"):
        samples = {"default": [], "reuse": []}
        for pair in range(pairs):
            for mode in (("default", "reuse") if pair % 2 == 0 else ("reuse", "default")):
                out = subprocess.run([sys.executable, __file__, "--step-probe", f"{method_name},{mode}", "--steps", str(steps)],
                                     capture_output=True, text=True, check=True).stdout
                samples[mode].append(json.loads(out.splitlines()[-1])["median_step_s"])
        row = {mode: median(values) for mode, values in samples.items()}
        row["speedup"] = row["default"] / row["reuse"]
        row["samples"] = samples
        results[method_name] = row
        print(f"allocator {method_name:8} default {row['default']:.2f} s  reuse {row['reuse']:.2f} s  "
              f"x{row['speedup']:.2f}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "levers.json"))
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--allocator-pairs", type=int, default=3)
    parser.add_argument("--step-probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step_probe:
        step_probe(*args.step_probe.split(","), args.steps)
        return
    from tuning_bench.allocator import reuse_freed_memory

    reuse_freed_memory()  # as in every cell
    from tuning_bench.data import cache_key, encode_task, length_bucketed_batches, load_or_encode
    from tuning_bench.prompting import resolve_format
    from tuning_bench.trainer import TrainConfig, make_feeder, train

    results = {"environment": environment_line(), "padding": {}, "threads": {}, "tokens": {}}
    print(results["environment"], flush=True)
    catalog, task, source, loaded, encoded = load()
    fmt = resolve_format(loaded.tokenizer)
    for name in ("product-descriptions", "review-sentiment", "attribute-extraction"):
        other = catalog.tasks.get(name)
        lengths = [e.length for e in encode_task(other, loaded.tokenizer, loaded.kind, fmt, [], 512).splits["train"]]
        sampler = length_bucketed_batches(lengths, 4, seed=0)
        bucketed = [next(sampler) for _ in range(150)]
        rng = random.Random(0)
        shuffled = list(range(len(lengths)))
        rng.shuffle(shuffled)
        plain = [shuffled[i:i + 4] for i in range(0, 600, 4)]
        results["padding"][name] = {"bucketed": padding_fraction(lengths, bucketed), "random": padding_fraction(lengths, plain)}
        print(f"padding {name:22} bucketed {100 * results['padding'][name]['bucketed']:.1f}%  "
              f"random {100 * results['padding'][name]['random']:.1f}%", flush=True)

    with tempfile.TemporaryDirectory() as scratch:
        key = cache_key(loaded.fingerprint, task.fingerprint(), fmt.style, [], 512, loaded.kind.value)
        encode = lambda: encode_task(task, loaded.tokenizer, loaded.kind, fmt, [], 512)  # noqa: E731
        start = time.perf_counter()
        load_or_encode(Path(scratch), key, encode)
        first = time.perf_counter() - start
        start = time.perf_counter()
        hit = load_or_encode(Path(scratch), key, encode)
        second = time.perf_counter() - start
        assert hit.from_cache
    results["tokens"] = {"tokenize_seconds": first, "cache_read_seconds": second}
    print(f"tokens: tokenize {first:.2f} s, read from cache {second:.3f} s", flush=True)

    method = catalog.methods.get("lora")
    for count in (1, 2, 4):
        torch.set_num_threads(count)
        fresh = source.load(task_kind=task.kind)
        model = method.adapt(fresh, task, {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": None,
                                          "learning_rate": 3e-3})
        feeder = make_feeder(model, fresh.kind, loaded.tokenizer.pad_token_id, torch.device("cpu"), None)
        log = train(model, encoded.splits["train"], [], feeder, TrainConfig(steps=args.steps, batch_size=4,
                                                                            learning_rate=3e-3, seed=0))
        results["threads"][count] = median(log.step_seconds[1:])
        print(f"threads {count}: median LoRA step {results['threads'][count]:.2f} s", flush=True)
    torch.set_num_threads(threads())
    results["allocator"] = allocator_lever(args.allocator_pairs, args.steps)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
