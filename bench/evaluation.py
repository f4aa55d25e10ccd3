"""Evaluation speed, side by side in one process: the earlier evaluation path, today's, and a bare loop.

For each method (an untrained adapter is enough: the cost of decoding does not depend on the weights),
on the first --examples test prompts of the default task, with the precision `--precision auto` picks:

- before: the guard generating its own two prompts (8 tokens, one padded batch) and checking them
  against a greedy loop of 8 full no-cache passes each; then generation in batches of 20 (the old
  default); then one example answered alone (latency).
- now:    generation in even batches of at most --batch (default 128, the default), through the method's
  decoding (the engine's loop for most methods, where finished rows leave the batch, instead of
  `generate`); the guard checks evaluation's own answers for the same two prompts, every token, with one
  no-cache pass each; the same latency example; all three in one `weights_cast_once` block, as in a
  cell (under autocast each weight is cast to bf16 once, not at every forward pass; on a CPU in bf16 the
  linear layers are laid out for oneDNN once as the block opens: the "block" part).
- bare:   `model.generate` one prompt at a time on the first --bare prompts (the loop a user writes).

Printed per method: seconds of each part, tokens/s of generation, the before/now ratio, and how many
answers are token-for-token identical between the two paths (batch composition changes rounding, so a
near tie can flip; the guard bounds that per answer).

Each method's before and now run --rounds times (default 3), alternating which goes first, on the same
model in one process; every figure is the median over the rounds (one pair was too noisy on a shared
machine: the same code gave 1.84x and 2.16x for zero-shot in two runs twelve minutes apart).

Usage: python bench/evaluation.py [--methods zero-shot,lora,prompt] [--examples 80] [--batch 128] [--bare 8] [--rounds 3]
       [--precision auto|fp32|bf16] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import environment_line, load, threads  # noqa: E402


def adapted_model(name: str, catalog, task, loaded):
    """The model as the method adapts it, untrained, and the method's decoding."""
    from tuning_bench.api.options import resolve_options

    method = catalog.methods.get(name)
    config = resolve_options(method.name, method.options, {}, where="bench")
    model = method.adapt(loaded, task, config) if method.trains else loaded.model
    return model.eval(), method.decoding


def old_guard(model, prompts, settings) -> float:
    from tuning_bench.engine.generation import batches_for, generate_batch, reference_greedy

    start = time.perf_counter()
    for indices in batches_for(prompts, settings):
        generate_batch(model, [prompts[i] for i in indices], settings, 8)
    for prompt in prompts:
        reference_greedy(model, prompt, settings, 8)
    return time.perf_counter() - start


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="zero-shot,lora,prompt")
    parser.add_argument("--batch", type=int, default=128, help="evaluation batch size now (the default)")
    parser.add_argument("--examples", type=int, default=80)
    parser.add_argument("--bare", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="before/now pairs, alternating order; medians")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="as tbench run's --precision (fp32: the answers of both paths must be identical)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "evaluation.json"))
    args = parser.parse_args()

    from tuning_bench.engine.allocator import reuse_freed_memory
    from tuning_bench.engine.castcache import weights_cast_once
    from tuning_bench.engine.generation import (GenerationSettings, eos_ids_for, generate_all, generate_batch,
                                                generation_guard, pick_guard_indices)
    from tuning_bench.engine.precision import choose_precision
    from tuning_bench.engine.prompting import resolve_format

    torch.set_num_threads(threads())
    reuse_freed_memory()  # as in every cell (engine/cell.py): freed KV caches and logits are reused, not page-faulted back
    precision = choose_precision(args.precision, "cpu")
    dtype = torch.bfloat16 if precision.precision == "bf16" else None
    report = {"environment": environment_line(), "precision": precision.precision, "examples": args.examples,
              "batch_now": args.batch,
              "methods": {}}
    print(report["environment"], "| precision", precision.precision, flush=True)
    for name in args.methods.split(","):
        catalog, task, source, loaded, encoded = load()
        model, decoding = adapted_model(name, catalog, task, loaded)
        tokenizer = loaded.tokenizer
        prompts = [e.prompt_ids for e in encoded.splits["test"][:args.examples]]
        eos = eos_ids_for(tokenizer, loaded.model, resolve_format(tokenizer).answer_end)
        # before: methods now on the engine's loop decoded with the model's own generate
        base = GenerationSettings(task.max_new_tokens, eos, tokenizer.pad_token_id, 20,
                                  "generate" if decoding == "engine" else decoding, torch.device("cpu"), dtype)
        picked = pick_guard_indices(prompts, 2)
        guard_prompts = [prompts[i] for i in picked]

        now_settings = replace(base, batch_size=args.batch, decoding=decoding)

        def run_before():
            parts = {"guard": old_guard(model, guard_prompts, base)}
            answers, parts["generation"] = timed(lambda: generate_all(model, prompts, base))
            _, parts["latency"] = timed(lambda: generate_batch(model, [prompts[0]], base))
            return parts, answers, None

        def run_now():
            parts = {}
            # As the cell does: one block for all three parts, the weights cast to the precision once in it
            # (its first forward pass pays the casts, inside the generation time); entering it lays the linear
            # layers out for oneDNN on a CPU in bf16 (engine.packedlinear), timed as its own part.
            start = time.perf_counter()
            with weights_cast_once(model, now_settings.device, dtype):
                parts["block"] = time.perf_counter() - start
                answers, parts["generation"] = timed(lambda: generate_all(model, prompts, now_settings))
                checked, parts["guard"] = timed(lambda: generation_guard(model, guard_prompts, now_settings,
                                                                         [answers[i] for i in picked]))
                _, parts["latency"] = timed(lambda: generate_batch(model, [prompts[0]], now_settings))
            return parts, answers, checked

        # Rounds alternate the order (before, now; now, before; ...) so that a shared machine's drift falls on
        # both alike; each part's figure is its median over the rounds.
        parts_of: dict[str, list[dict[str, float]]] = {"before": [], "now": []}
        for index in range(args.rounds):
            for path in (("before", "now") if index % 2 == 0 else ("now", "before")):
                if path == "before":
                    parts, old_answers, _ = run_before()
                else:
                    parts, new_answers, guard = run_now()
                parts_of[path].append(parts)
        totals = {path: [sum(parts.values()) for parts in runs] for path, runs in parts_of.items()}
        before, now = ({key: statistics.median(parts[key] for parts in parts_of[path]) for key in parts_of[path][0]}
                       for path in ("before", "now"))

        bare_tokens = 0
        start = time.perf_counter()
        autocast = torch.autocast("cpu", dtype=dtype) if dtype else torch.autocast("cpu", enabled=False)
        with torch.no_grad(), autocast:
            for prompt in prompts[:args.bare]:
                ids = torch.tensor([prompt])
                out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=task.max_new_tokens,
                                     do_sample=False, eos_token_id=list(eos), pad_token_id=tokenizer.pad_token_id)
                new = out[0, ids.shape[1]:].tolist()
                bare_tokens += next((i for i, t in enumerate(new) if t in eos), len(new))
        bare_seconds = time.perf_counter() - start

        generated = sum(len(a) for a in new_answers)
        row = {
            "decoding": decoding,
            "before_seconds": before, "now_seconds": now,
            "rounds": args.rounds,
            "before_totals": totals["before"], "now_totals": totals["now"],
            "before_total": statistics.median(totals["before"]), "now_total": statistics.median(totals["now"]),
            "speedup": statistics.median(totals["before"]) / statistics.median(totals["now"]),
            "generated_tokens": generated,
            "tokens_per_second_now": generated / now["generation"],
            "tokens_per_second_before": sum(len(a) for a in old_answers) / before["generation"],
            "tokens_per_second_bare_generate": bare_tokens / bare_seconds,
            "identical_answers": sum(a == b for a, b in zip(old_answers, new_answers)),
            "guard": guard.as_record(),
        }
        row["engine_vs_bare"] = row["tokens_per_second_now"] / row["tokens_per_second_bare_generate"]
        report["methods"][name] = row
        print(f"{name} ({decoding}): before {row['before_total']:.1f} s {fmt(before)} | now {row['now_total']:.1f} s "
              f"{fmt(now)} | per round before {fmt_list(totals['before'])}, now {fmt_list(totals['now'])} "
              f"| x{row['speedup']:.2f} | tokens/s now {row['tokens_per_second_now']:.0f}, before "
              f"{row['tokens_per_second_before']:.0f}, bare generate {row['tokens_per_second_bare_generate']:.1f} "
              f"(x{row['engine_vs_bare']:.1f}) | identical answers {row['identical_answers']}/{len(prompts)} | "
              f"guard {guard.as_record()}", flush=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


def fmt_list(values) -> str:
    return "[" + ", ".join(f"{v:.1f}" for v in values) + "]"


def fmt(parts: dict) -> str:
    return "(" + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()) + ")"


if __name__ == "__main__":
    main()
