"""Smaller measurements behind the engine's choices: padding, the token cache, the LM head, threads, the allocator.

  padding:  fraction of padding tokens in training batches, length-bucketed (the engine) vs random
  threads:  median LoRA training step on smollm2-135m with torch threads 1, 2 and 4 (2 cores here)
  tokens:   tokenizing a task vs reading the engine's token cache
  lm_head:  the frozen LM head over kept positions given as a count vs as indices (tuning_bench/engine/losses.py)
  allocator: median training step of LoRA and full fine-tuning with glibc's default thresholds vs
             the engine's (tuning_bench/engine/allocator.py), in fresh processes taking turns

Usage: python bench/levers.py [--only padding,tokens,lm_head,threads,allocator] [--out bench/levers.json]
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
    from tuning_bench.engine.allocator import reuse_freed_memory
    from tuning_bench.api.options import resolve_options
    from tuning_bench.engine.trainer import TrainConfig, make_feeder, train

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


def padding_lever(catalog, loaded, fmt) -> dict:
    from tuning_bench.engine.data import encode_task, length_bucketed_batches

    results = {}
    for name in ("product-descriptions", "review-sentiment", "attribute-extraction"):
        other = catalog.tasks.get(name)
        lengths = [e.length for e in encode_task(other, loaded.tokenizer, loaded.kind, fmt, [], 512).splits["train"]]
        sampler = length_bucketed_batches(lengths, 4, seed=0)
        bucketed = [next(sampler) for _ in range(150)]
        rng = random.Random(0)
        shuffled = list(range(len(lengths)))
        rng.shuffle(shuffled)
        plain = [shuffled[i:i + 4] for i in range(0, 600, 4)]
        results[name] = {"bucketed": padding_fraction(lengths, bucketed), "random": padding_fraction(lengths, plain)}
        print(f"padding {name:22} bucketed {100 * results[name]['bucketed']:.1f}%  "
              f"random {100 * results[name]['random']:.1f}%", flush=True)
    return results


def tokens_lever(task, loaded, fmt) -> dict:
    from tuning_bench.engine.data import cache_key, encode_task, load_or_encode

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
    print(f"tokens: tokenize {first:.2f} s, read from cache {second:.3f} s", flush=True)
    return {"tokenize_seconds": first, "cache_read_seconds": second}


def threads_lever(catalog, task, source, loaded, encoded, steps) -> dict:
    from tuning_bench.engine.trainer import TrainConfig, make_feeder, train

    results = {}
    method = catalog.methods.get("lora")
    for count in (1, 2, 4):
        torch.set_num_threads(count)
        fresh = source.load(task_kind=task.kind)
        model = method.adapt(fresh, task, {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": None,
                                          "learning_rate": 3e-3})
        feeder = make_feeder(model, fresh.kind, loaded.tokenizer.pad_token_id, torch.device("cpu"), None)
        log = train(model, encoded.splits["train"], [], feeder, TrainConfig(steps=steps, batch_size=4,
                                                                            learning_rate=3e-3, seed=0))
        results[count] = median(log.step_seconds[1:])
        print(f"threads {count}: median LoRA step {results[count]:.2f} s", flush=True)
    torch.set_num_threads(threads())
    return results


def lm_head_lever(loaded, encoded, repeats: int = 7) -> dict:
    """The frozen LM head over the kept positions, given as a count (a strided view of the hidden
    states, which torch runs as a batched product) or as indices (a copied block, one product)."""
    from tuning_bench.engine.data import length_bucketed_batches, sequential_batches

    weight = loaded.model.get_output_embeddings().weight.detach()  # frozen, as for every method but finetune
    examples = encoded.splits["train"]
    sampler = length_bucketed_batches([e.length for e in examples], 4, seed=0)
    train_batch = [examples[i] for i in next(sampler)]
    width = max(e.length for e in train_batch)
    keep = width - min(len(e.prompt_ids) for e in train_batch) + 1
    test = encoded.splits["test"]
    prefill_width = max(len(test[i].prompt_ids) for i in next(iter(sequential_batches([len(e.prompt_ids) for e in test], 20))))
    cases = {"training batch (4 rows, forward and backward)": (4, width, keep, True),
             "evaluation prefill (20 rows, last position)": (20, prefill_width, 1, False)}
    results = {}
    for label, (rows, length, kept, backward) in cases.items():
        hidden = torch.randn(rows, length, weight.shape[1], requires_grad=backward)
        index = torch.arange(-kept, 0)
        select = {"count": lambda h: h[:, -kept:, :], "indices": lambda h: h[:, index, :]}

        def run(form):
            start = time.perf_counter()
            with torch.set_grad_enabled(backward):
                logits = torch.nn.functional.linear(select[form](hidden), weight)
                if backward:
                    logits.sum().backward()
                    hidden.grad = None
            return time.perf_counter() - start

        times = {"count": [], "indices": []}
        for repeat in range(repeats + 1):
            for form in (("count", "indices") if repeat % 2 else ("indices", "count")):
                seconds = run(form)
                if repeat:  # the first round warms up
                    times[form].append(seconds)
        row = {form: median(values) for form, values in times.items()}
        row["speedup"] = row["count"] / row["indices"]
        row["shape"] = {"rows": rows, "length": length, "kept": kept}
        results[label] = row
        print(f"lm head, {label}: count {1e3 * row['count']:.0f} ms, indices {1e3 * row['indices']:.0f} ms, "
              f"x{row['speedup']:.2f}", flush=True)
    return results


SECTIONS = ("padding", "tokens", "lm_head", "threads", "allocator")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "levers.json"))
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma list of " + ", ".join(SECTIONS) +
                        "; other sections already in --out are kept")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--allocator-pairs", type=int, default=3)
    parser.add_argument("--step-probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step_probe:
        step_probe(*args.step_probe.split(","), args.steps)
        return
    only = args.only.split(",")
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    from tuning_bench.engine.allocator import reuse_freed_memory
    from tuning_bench.engine.prompting import resolve_format

    reuse_freed_memory()  # as in every cell
    torch.set_num_threads(threads())
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    results["environment"] = environment_line()
    print(results["environment"], flush=True)
    catalog, task, source, loaded, encoded = load()
    fmt = resolve_format(loaded.tokenizer)
    if "padding" in only:
        results["padding"] = padding_lever(catalog, loaded, fmt)
    if "tokens" in only:
        results["tokens"] = tokens_lever(task, loaded, fmt)
    if "lm_head" in only:
        results["lm_head"] = lm_head_lever(loaded, encoded)
    if "threads" in only:
        results["threads"] = threads_lever(catalog, task, source, loaded, encoded, args.steps)
    if "allocator" in only:
        results["allocator"] = allocator_lever(args.allocator_pairs, args.steps)
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
