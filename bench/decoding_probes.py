"""Probes behind bench/RESULTS.md "Evaluation", third to fifth pass, on smollm2-135m and the default task's test prompts.

fill-order: the engine's generation of --examples prompts in one batch with finished rows' places filled by
    the last rows (`generation.fill_order`, the cache copying only moved rows) against the earlier loop that
    re-gathered every kept row of every layer; alternating rounds in one process, bf16 autocast in the cell's
    cast-once block, medians; and how many answers are identical.
one-answer: torch.profiler over the first test prompt answered alone (zero-shot, bf16, cast-once block), as
    the cell's latency figure is taken: per decode step, the time in matrix products, the rest, and how
    many aten operations it dispatches.
linear: what one decode step at batch 1 reads: `torch.nn.functional.linear` of one row against each weight
    shape of the model (30 different weights per shape, so none is cache-hot), in fp32 and bf16, as GB/s of
    weights read, beside a plain 256 MiB copy (read + write) as the machine's memory rate; in bf16 also
    with the weight laid out once for oneDNN (`engine.packedlinear`).
packed: the cell's answering block with linear layers laid out once (`engine.packedlinear`) against the
    block without it, for zero-shot and an untrained LoRA: generation of --examples prompts in one batch and
    the first prompt answered alone, alternating rounds in one process, bf16, medians; identical answers.
cache-dtype: the same comparison for the KV cache holding the autocast precision (`engine.kvcache`) against
    holding what transformers' dynamic layer holds (fp32 under bf16 autocast).

Usage: python bench/decoding_probes.py [--probe fill-order,one-answer,linear,packed,cache-dtype] [--examples 80]
       [--rounds 4] [--out FILE]
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
        if event.key.startswith(("aten::", "mkldnn::")):  # mkldnn: the products of layers laid out once
            self_us[event.key] += event.self_cpu_time_total
            calls[event.key] += event.count
    steps = len(answer) + 1  # the prompt's pass and one step per token after the first (the last step ends it)
    matmul = sum(v for k, v in self_us.items() if k in ("aten::mm", "aten::addmm", "aten::bmm", "mkldnn::_linear_pointwise"))
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
            entry = {"shape": [out_features, in_features], "dtype": str(dtype).split(".")[-1],
                     "microseconds": seconds * 1e6,
                     "gb_per_s": weights[0].numel() * weights[0].element_size() / seconds / 1e9}
            if dtype == torch.bfloat16:  # the same product on weights laid out once (engine.packedlinear)
                packed = [torch.ops.mkldnn._reorder_linear_weight(w, 1) for w in weights]

                def packed_step():
                    turn[0] = (turn[0] + 1) % len(packed)
                    return torch.ops.mkldnn._linear_pointwise(row, packed[turn[0]], None, "none", [], "")

                entry["packed_microseconds"] = _rate(packed_step, 300) * 1e6
                entry["packed_gb_per_s"] = entry["gb_per_s"] * entry["microseconds"] / entry["packed_microseconds"]
            result["linear"].append(entry)
            laid_out = (f", laid out once {entry['packed_microseconds']:6.0f} us {entry['packed_gb_per_s']:5.1f} GB/s"
                        if "packed_microseconds" in entry else "")
            print(f"  weight {out_features} x {in_features} {entry['dtype']:8s} {entry['microseconds']:8.0f} us "
                  f"{entry['gb_per_s']:5.1f} GB/s{laid_out}", flush=True)
    return result


def switch_probe(change: str, examples: int, rounds: int) -> dict:
    """One engine change on and off, side by side: zero-shot and an untrained LoRA in the cell's answering block,
    generation of ``examples`` prompts in one batch and the first prompt alone, alternating rounds, medians."""
    from contextlib import contextmanager

    from tuning_bench.api.options import resolve_options
    from tuning_bench.engine import castcache, kvcache
    from tuning_bench.engine.allocator import reuse_freed_memory
    from tuning_bench.engine.generation import GenerationSettings, eos_ids_for, generate_all, generate_batch
    from tuning_bench.engine.prompting import resolve_format

    @contextmanager
    def not_packed(model, device, dtype):  # the block as it was: weights cast once, layers unchanged
        yield 0

    switches = {  # (module, attribute, the value that turns the change off)
        "packed": (castcache, "linears_packed", not_packed),
        "cache-dtype": (kvcache, "_stored_dtype", lambda keys: keys.dtype),  # the cache kept as transformers keeps it
    }
    module, attribute, off = switches[change]
    on = getattr(module, attribute)
    reuse_freed_memory()
    catalog, task, source, loaded, encoded = load()
    tokenizer = loaded.tokenizer
    prompts = [e.prompt_ids for e in encoded.splits["test"][:examples]]
    eos = eos_ids_for(tokenizer, loaded.model, resolve_format(tokenizer).answer_end)
    settings = GenerationSettings(task.max_new_tokens, eos, tokenizer.pad_token_id, 128, "engine", torch.device("cpu"),
                                  torch.bfloat16)
    lora = catalog.methods.get("lora")
    models = {"zero-shot": loaded.model.eval(),
              "lora": lora.adapt(source.load(task_kind=task.kind), task, resolve_options("lora", lora.options, {})).eval()}
    variants = {"on": on, "off": off}
    result = {"change": change, "examples": examples, "rounds": rounds, "methods": {}}
    try:
        for method, model in models.items():
            seconds = {f"{name}_{part}": [] for name in variants for part in ("generation", "one_answer")}
            answers: dict[str, list[list[int]]] = {}
            for index in range(rounds):
                for name in (list(variants) if index % 2 == 0 else list(variants)[::-1]):
                    setattr(module, attribute, variants[name])
                    with castcache.weights_cast_once(model, settings.device, torch.bfloat16):
                        generate_batch(model, [prompts[0]], settings)  # the block's first use: casts or layouts
                        start = time.perf_counter()
                        answers[name] = generate_all(model, prompts, settings)
                        middle = time.perf_counter()
                        answers[name].append(generate_batch(model, [prompts[0]], settings)[0])
                        seconds[f"{name}_one_answer"].append(time.perf_counter() - middle)
                        seconds[f"{name}_generation"].append(middle - start)
            medians = {key: statistics.median(values) for key, values in seconds.items()}
            entry = {"seconds": seconds, "median_seconds": medians,
                     "generation_speedup": medians["off_generation"] / medians["on_generation"],
                     "one_answer_speedup": medians["off_one_answer"] / medians["on_one_answer"],
                     "identical_answers": sum(a == b for a, b in zip(answers["on"], answers["off"])),
                     "answers": len(answers["on"])}
            result["methods"][method] = entry
            print(f"{change}, {method}: generation of {examples} prompts {medians['off_generation']:.2f} -> "
                  f"{medians['on_generation']:.2f} s (x{entry['generation_speedup']:.2f}), one answer "
                  f"{medians['off_one_answer']:.2f} -> {medians['on_one_answer']:.2f} s "
                  f"(x{entry['one_answer_speedup']:.2f}); identical answers {entry['identical_answers']}/{entry['answers']}",
                  flush=True)
    finally:
        setattr(module, attribute, on)
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
    for change in ("packed", "cache-dtype"):
        if change in probes:
            report[change.replace("-", "_")] = switch_probe(change, args.examples, args.rounds)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
