"""Two probes behind bench/RESULTS.md "Evaluation, third pass", on smollm2-135m and the default task's test prompts.

fill-order: the engine's generation of --examples prompts in one batch with finished rows' places filled by
    the last rows (`generation.fill_order`, the cache copying only moved rows) against the earlier loop that
    re-gathered every kept row of every layer; alternating rounds in one process, bf16 autocast in the cell's
    cast-once block, medians; and how many answers are identical.
one-answer: torch.profiler over the first test prompt answered alone (zero-shot, bf16, cast-once block), as
    the cell's latency figure is taken: per decode step, the time in matrix products, the rest, and how
    many aten operations it dispatches.
linear: what one decode step at batch 1 reads: `torch.nn.functional.linear` of one row against each weight
    shape of the model (30 different weights per shape, so none is cache-hot), in fp32 and bf16, as GB/s of
    weights read, beside a plain 256 MiB copy (read + write) as the machine's memory rate.

Usage: python bench/decoding_probes.py [--probe fill-order,one-answer,linear] [--examples 80] [--rounds 4] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import environment_line, load, threads  # noqa: E402


def fill_order_probe(examples: int, rounds: int) -> dict:
    from tuning_bench.engine import generation, kvcache
    from tuning_bench.engine.allocator import reuse_freed_memory
    from tuning_bench.engine.castcache import weights_cast_once
    from tuning_bench.engine.generation import GenerationSettings, eos_ids_for, generate_all, generate_batch
    from tuning_bench.engine.prompting import resolve_format

    reuse_freed_memory()  # as in every cell
    catalog, task, source, loaded, encoded = load()
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    prompts = [e.prompt_ids for e in encoded.splits["test"][:examples]]
    eos = eos_ids_for(tokenizer, model, resolve_format(tokenizer).answer_end)
    settings = GenerationSettings(task.max_new_tokens, eos, tokenizer.pad_token_id, 128, "engine", torch.device("cpu"),
                                  torch.bfloat16)

    def regather(layer, indices):  # the earlier loop's cache step: every kept row of every layer copied
        layer._keys, layer._values = layer._keys[indices, ...], layer._values[indices, ...]
        layer._expose()

    variants = {
        "fill_order": (kvcache._RoomyLayer.batch_select_indices, generation.fill_order),
        "regather": (regather, lambda going: [row for row, on in enumerate(going) if on]),
    }
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    answers: dict[str, list[list[int]]] = {}
    try:
        with weights_cast_once(model, settings.device, torch.bfloat16):
            generate_batch(model, [prompts[0]], settings)  # warm-up: the casts, the allocator
            for index in range(rounds):
                for name in (list(variants) if index % 2 == 0 else list(variants)[::-1]):
                    kvcache._RoomyLayer.batch_select_indices, generation.fill_order = variants[name]
                    start = time.perf_counter()
                    answers[name] = generate_all(model, prompts, settings)
                    seconds[name].append(time.perf_counter() - start)
    finally:
        kvcache._RoomyLayer.batch_select_indices, generation.fill_order = variants["fill_order"]
    result = {"examples": examples, "rounds": rounds, "seconds": seconds,
              "median_seconds": {name: statistics.median(values) for name, values in seconds.items()},
              "identical_answers": sum(a == b for a, b in zip(answers["fill_order"], answers["regather"]))}
    result["speedup"] = result["median_seconds"]["regather"] / result["median_seconds"]["fill_order"]
    print(f"fill-order: generation of {examples} prompts, median over {rounds} rounds: re-gather "
          f"{result['median_seconds']['regather']:.2f} s, fill order {result['median_seconds']['fill_order']:.2f} s, "
          f"x{result['speedup']:.3f}; identical answers {result['identical_answers']}/{examples}", flush=True)
    return result


def one_answer_probe() -> dict:
    from collections import Counter

    from torch.profiler import ProfilerActivity, profile

    from tuning_bench.engine.allocator import reuse_freed_memory
    from tuning_bench.engine.castcache import weights_cast_once
    from tuning_bench.engine.generation import GenerationSettings, eos_ids_for, generate_batch
    from tuning_bench.engine.prompting import resolve_format

    reuse_freed_memory()
    catalog, task, source, loaded, encoded = load()
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    prompt = encoded.splits["test"][0].prompt_ids
    eos = eos_ids_for(tokenizer, model, resolve_format(tokenizer).answer_end)
    settings = GenerationSettings(task.max_new_tokens, eos, tokenizer.pad_token_id, 128, "engine", torch.device("cpu"),
                                  torch.bfloat16)
    with weights_cast_once(model, settings.device, torch.bfloat16):
        generate_batch(model, [prompt], settings)  # warm-up
        start = time.perf_counter()
        answer = generate_batch(model, [prompt], settings)[0]
        seconds = time.perf_counter() - start
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            generate_batch(model, [prompt], settings)
    self_us: Counter = Counter()
    calls: Counter = Counter()
    for event in prof.key_averages():
        if event.key.startswith("aten::"):
            self_us[event.key] += event.self_cpu_time_total
            calls[event.key] += event.count
    steps = len(answer) + 1  # the prompt's pass and one step per token after the first (the last step ends it)
    matmul = sum(v for k, v in self_us.items() if k in ("aten::mm", "aten::addmm", "aten::bmm"))
    result = {"seconds": seconds, "steps": steps, "new_tokens": len(answer),
              "matmul_ms_per_step": matmul / 1e3 / steps,
              "other_aten_ms_per_step": (sum(self_us.values()) - matmul) / 1e3 / steps,
              "aten_calls_per_step": sum(calls.values()) / steps}
    print(f"one-answer: {len(answer)} new tokens in {seconds:.2f} s ({seconds / steps * 1e3:.1f} ms per step); per step "
          f"{result['matmul_ms_per_step']:.1f} ms in matrix products, {result['other_aten_ms_per_step']:.1f} ms in other "
          f"aten operations, {result['aten_calls_per_step']:.0f} aten calls (nested calls counted)", flush=True)
    return result


def _rate(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def linear_probe() -> dict:
    source = torch.empty(256 * 2**20, dtype=torch.uint8)
    target = torch.empty_like(source)
    copy_gbs = 2 * source.numel() / _rate(lambda: target.copy_(source), 10) / 1e9
    result = {"copy_read_write_gb_per_s": copy_gbs, "linear": []}
    print(f"linear: plain copy of 256 MiB, read + write: {copy_gbs:.1f} GB/s", flush=True)
    # (out, in) of SmolLM2-135M's weights: q and o, k and v, gate and up, down, the tied LM head
    for out_features, in_features in ((576, 576), (192, 576), (1536, 576), (576, 1536), (49152, 576)):
        for dtype in (torch.float32, torch.bfloat16):
            weights = [torch.randn(out_features, in_features).to(dtype) for _ in range(30)]
            row = torch.randn(1, in_features).to(dtype)
            turn = [0]

            def step():
                turn[0] = (turn[0] + 1) % len(weights)
                return torch.nn.functional.linear(row, weights[turn[0]])

            seconds = _rate(step, 300)
            gbs = weights[0].numel() * weights[0].element_size() / seconds / 1e9
            result["linear"].append({"shape": [out_features, in_features], "dtype": str(dtype).split(".")[-1],
                                     "microseconds": seconds * 1e6, "gb_per_s": gbs})
            print(f"  weight {out_features} x {in_features} {str(dtype).split('.')[-1]:8s} {seconds * 1e6:8.0f} us "
                  f"{gbs:5.1f} GB/s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", default="fill-order,one-answer,linear")
    parser.add_argument("--examples", type=int, default=80)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--out", default=str(Path(__file__).parent / "decoding_probes.json"))
    args = parser.parse_args()
    torch.set_num_threads(threads())
    report = {"environment": environment_line()}
    print(report["environment"], flush=True)
    probes = args.probe.split(",")
    if "fill-order" in probes:
        report["fill_order"] = fill_order_probe(args.examples, args.rounds)
    if "one-answer" in probes:
        report["one_answer"] = one_answer_probe()
    if "linear" in probes:
        report["linear"] = linear_probe()
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
