"""Engine overhead and hardware efficiency on smollm2-135m, for every trainable method.

For each method three identically initialised copies of the adapted model take the same batches
(same examples, same order, same padding), one step each in turn, the order rotating every step:
  engine: tuning_bench.engine.trainer.Trainer.step (the step every cell's training loop takes),
  bare:   a minimal hand-written torch + peft loop: the model's own loss (labels=...), backward,
          clip, AdamW step (fused, as the engine's), schedule, zero_grad;
  bare+keep: the bare loop computing logits only where targets are (`logits_to_keep=<count>`, as a
          hand-written loop would; the engine passes indices instead, see tuning_bench/engine/losses.py).
Interleaving step by step puts the drift of a shared machine on every variant alike. The ratio
engine / bare+keep (median of per-step ratios) is the engine's own overhead; engine / bare shows what
computing logits only at target positions saves. The three copies' losses are compared too: they
must agree, or the loops are not doing the same work. Achieved FLOP/s is compared with the machine's
fp32 matmul rate (best of 5 on 2048 and 3072 square products), measured beside every step (per-step
ratio, then the median), and with the rate of products shaped like the model's own, measured once at the start.

Usage: python bench/engine_overhead.py [--steps 14] [--methods prompt,lora,...] [--precision fp32|bf16] [--set M.O=V]
       [--out bench/overhead.json]

With --precision bf16 every loop runs its forward pass under CPU bf16 autocast (as `tbench run` does when
it resolves to bf16) and the ceiling is the bf16 matmul rate (bf16 operands, same sizes).
"""

from __future__ import annotations

import argparse
import itertools
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


class BareLoop:
    """The hand-written loop: the model's own loss or target-only logits, backward, clip, AdamW, schedule."""

    def __init__(self, model, examples, pad_id, lr, steps, keep_only_targets, autocast_dtype=None):
        self.model, self.examples, self.pad_id, self.keep = model, examples, pad_id, keep_only_targets
        self.autocast_dtype = autocast_dtype
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, weight_decay=0.0, fused=True)  # as the engine uses
        warmup = max(1, round(0.1 * steps))
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (steps - s) / max(1, steps - warmup)))

    def step(self, indices) -> tuple[float, float]:
        start = time.perf_counter()
        self.model.train()
        ids, mask, labels = bare_batches(self.examples, indices, self.pad_id)
        # bf16 runs use autocast around the forward pass only, as the engine's feeder does
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast_dtype is not None):
            loss = self._loss(ids, mask, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        value = float(loss.detach())
        return time.perf_counter() - start, value

    def _loss(self, ids, mask, labels):
        if not self.keep:
            return self.model(input_ids=ids, attention_mask=mask, labels=labels).loss
        first = int((labels != -100).int().argmax(dim=1).min())
        keep = ids.shape[1] - first + 1
        logits = self.model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits[:, :-1]
        target = labels[:, ids.shape[1] - keep + 1:]
        return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1))


def model_shaped_gflops(config, rows: int, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """Matmul rate in ``dtype`` on the products one decoder layer makes for ``rows`` tokens (forward shapes
    and the two backward shapes of each), FLOP-weighted: the best the model's own GEMMs can do here."""
    hidden, inter = config.hidden_size, config.intermediate_size
    kv = config.num_key_value_heads * (hidden // config.num_attention_heads)
    total_flop, total_time = 0.0, 0.0
    for n_in, n_out in ((hidden, hidden), (hidden, kv), (hidden, kv), (hidden, hidden),
                        (hidden, inter), (hidden, inter), (inter, hidden)):
        for a_shape, b_shape in (((rows, n_in), (n_in, n_out)),    # forward
                                 ((rows, n_out), (n_out, n_in)),   # gradient of the input
                                 ((n_out, rows), (rows, n_in))):   # gradient of the weight
            a, b = torch.randn(*a_shape, dtype=dtype), torch.randn(*b_shape, dtype=dtype)
            torch.mm(a, b)
            best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
            total_flop += 2 * a_shape[0] * a_shape[1] * b_shape[1]
            total_time += best
    return total_flop / total_time / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


VARIANTS = ["engine", "bare+keep", "bare"]
ORDERS = list(itertools.permutations(VARIANTS))
VIRTUAL_TOKENS = {"prompt": 20, "ptuning": 20}  # soft-prompt methods run the model over these too
PREFIX_POSITIONS = {"prefix": 20}  # prefix tuning adds these key/value positions to every layer's attention


def flops_per_step(method, model_config, model_params, embedding_params, lengths, target_positions):
    """Training FLOP of one step (the formula is printed with the results).

    Weights: full fine-tuning 6 FLOP per parameter per token (forward 2, backward 4) for the
    transformer body; frozen-base methods 4 (forward 2, backward to activations 2; no weight
    gradients); the tied LM head the same, but only at the kept positions. Attention scores (QK^T and
    AV, which have no weights): 12 x layers x hidden x keys per query token, forward and backward,
    as in PaLM's model-FLOP count (Chowdhery et al. 2022, appendix B), counting real tokens only.
    Soft-prompt methods count their virtual tokens as tokens; prefix tuning its prefix as keys. The
    adapters' own FLOP (under 1 % here) are left out, so the figure slightly understates the work.
    """
    body = model_params - embedding_params
    factor = 6 if method == "finetune" else 4
    queries = [n + VIRTUAL_TOKENS.get(method, 0) for n in lengths]
    tokens = sum(queries)
    layers, hidden = model_config.num_hidden_layers, model_config.hidden_size
    attention = 12 * layers * hidden * sum(q * (q + PREFIX_POSITIONS.get(method, 0)) for q in queries)
    return factor * body * tokens + factor * embedding_params * target_positions + attention


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=14)
    parser.add_argument("--warmup", type=int, default=2, help="steps excluded from the median")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="bf16: every loop under CPU bf16 autocast, efficiency against the bf16 matmul rate")
    parser.add_argument("--set", action="append", default=[], metavar="METHOD.OPTION=VALUE",
                        help="a method option other than its default, as in `tbench run --set` (to measure what "
                             "bounds a figure, e.g. lora.dropout=0; the JSON records it)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "overhead.json"))
    args = parser.parse_args()
    autocast_dtype = torch.bfloat16 if args.precision == "bf16" else None
    ceiling_dtype = autocast_dtype or torch.float32
    torch.set_num_threads(threads())

    from tuning_bench.engine.data import length_bucketed_batches
    from tuning_bench.api.options import parse_set_arguments, resolve_options
    from tuning_bench.engine.allocator import reuse_freed_memory
    from tuning_bench.engine.trainer import TrainConfig, Trainer, make_feeder

    overrides = parse_set_arguments(args.set)
    if unknown := sorted(set(overrides) - set(args.methods.split(","))):
        parser.error(f"--set names {', '.join(unknown)}, not among --methods {args.methods}: nothing would use it")

    reuse_freed_memory()  # as in every cell; the bare loops share the process, so they get it too

    catalog, task, source, loaded, encoded = load()
    examples = encoded.splits["train"]
    sampler = length_bucketed_batches([e.length for e in examples], args.batch_size, seed=0)
    batches = [next(sampler) for _ in range(args.steps)]
    pad_id = loaded.tokenizer.pad_token_id
    ceiling = matmul_gflops(dtype=ceiling_dtype)
    rows = round(median(len(b) * max(examples[i].length for i in b) for b in batches))  # padded tokens
    shaped = model_shaped_gflops(loaded.model.config, rows, dtype=ceiling_dtype)
    results = {"environment": environment_line(), "precision": args.precision, "options_set": args.set, "matmul_gflops": ceiling, "model_shaped_gflops": shaped,
               "model_shaped_rows": rows, "steps": args.steps, "batch_size": args.batch_size, "methods": {}}
    print(results["environment"], f"| {args.precision} matmul {ceiling:.1f} GFLOP/s; shaped like the model's GEMMs at "
          f"{rows} rows {shaped:.1f} GFLOP/s", flush=True)

    for name in args.methods.split(","):
        method = catalog.methods.get(name)
        config = resolve_options(name, method.options, overrides.get(name, {}))
        lr = config["learning_rate"]
        runners = {}
        for variant in VARIANTS:
            torch.manual_seed(0)  # identical initial adapters in every copy
            model = method.adapt(source.load(task_kind=task.kind, labels=task.labels), task, config)
            if variant == "engine":
                feeder = make_feeder(model, loaded.kind, pad_id, torch.device("cpu"), autocast_dtype)
                runners[variant] = Trainer(model, feeder, TrainConfig(steps=args.steps, batch_size=args.batch_size,
                                                                      learning_rate=lr, seed=0))
            else:
                runners[variant] = BareLoop(model, examples, pad_id, lr, args.steps, variant == "bare+keep", autocast_dtype)
        samples = {variant: [] for variant in VARIANTS}
        losses = {variant: [] for variant in VARIANTS}
        ceilings = []
        for step, indices in enumerate(batches):
            # all six orders in turn: each variant runs first, second and third, after each other one, equally often
            order = ORDERS[step % len(ORDERS)]
            for variant in order:
                torch.manual_seed(step)  # the same dropout masks in every copy
                if variant == "engine":
                    value = runners[variant].step([examples[i] for i in indices])
                    seconds = runners[variant].log.step_seconds[-1]
                else:
                    seconds, value = runners[variant].step(indices)
                losses[variant].append(value)
                if step >= args.warmup:
                    samples[variant].append(seconds)
            if step >= args.warmup:
                # the machine's matmul rate right beside this step: a shared machine's speed drifts by
                # 10-20 % over minutes, and efficiency must not depend on when the ceiling was taken
                # (the same measurement as the start-up one: best of 5 on 2048 and 3072 products; a
                # cheaper best-of-2 on 2048 alone reads ~10 % lower here, which would flatter efficiency)
                ceilings.append(matmul_gflops(dtype=ceiling_dtype))
        engine_seconds = samples["engine"]
        loss_gap = max(abs(a - b) for v in VARIANTS[1:] for a, b in zip(losses["engine"], losses[v]))
        del runners
        timings = {variant: median(values) for variant, values in samples.items()}
        model_params = sum(p.numel() for p in loaded.model.parameters())
        embedding_params = loaded.model.get_input_embeddings().weight.numel()
        lengths = [[examples[i].length for i in b] for b in batches]
        kept = [len(b) * (max(examples[i].length for i in b) - min(len(examples[i].prompt_ids) for i in b) + 1) for b in batches]
        step_flops = [flops_per_step(name, loaded.model.config, model_params, embedding_params, n, k)
                      for n, k in zip(lengths, kept)][args.warmup:]
        flops = median(step_flops)
        # each step's FLOP over its own time, then the median: batches differ in length
        achieved = median(f / t for f, t in zip(step_flops, engine_seconds)) / 1e9
        efficiency = median(f / t / 1e9 / c for f, t, c in zip(step_flops, engine_seconds, ceilings))
        # ratios of paired steps (same batch, run back to back), then the median
        paired = {v: median(e / b for e, b in zip(samples["engine"], samples[v])) for v in ("bare+keep", "bare")}
        row = {**{f"{k}_median_step_s": v for k, v in timings.items()},
               "engine_over_bare_keep": paired["bare+keep"], "engine_over_bare": paired["bare"],
               "gflop_per_step": flops / 1e9, "achieved_gflops": achieved, "efficiency": efficiency,
               "matmul_gflops_beside_steps": median(ceilings), "efficiency_vs_model_shapes": achieved / shaped,
               "max_loss_gap_engine_vs_bare": loss_gap}
        results["methods"][name] = row
        print(f"{name:9} engine {timings['engine']:.2f}s  bare {timings['bare']:.2f}s  bare+keep {timings['bare+keep']:.2f}s  "
              f"ratio {row['engine_over_bare_keep']:.3f} (vs bare {row['engine_over_bare']:.3f})  "
              f"{achieved:.1f} GFLOP/s = {100 * efficiency:.0f}% of matmul (median {median(ceilings):.0f} GFLOP/s "
              f"beside the steps), {100 * row['efficiency_vs_model_shapes']:.0f}% of model-shaped matmul; loss gap {loss_gap:.1e}", flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
