"""What retention adds to a cell: the probe, and the zero-shot scores on each other task, per example count.

Loads the real model once, measures the base side (before ``adapt``) and the trained side (an untrained
LoRA adapter, which decodes as the base does, so the answer lengths are the base model's) with
``RetentionMeter`` exactly as a cell does, and prints the seconds of each part:

- the probe made from scratch (once per model; later cells read it from the cache), then the probe's two
  loss passes alone (``--retention-examples 0``);
- for each other task of the default task, and for each example count in --examples, both sides of its
  zero-shot scoring.

Usage: python bench/retention_cost.py [--examples 4,8] [--precision fp32|bf16] [--out FILE.json]
Timings on a shared 2-core machine are indicative; the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import environment_line, load, threads  # noqa: E402


def report(results: dict, part: dict) -> None:
    """Keep a part and print it at once (a slow machine still shows what it measured so far)."""
    results["parts"].append(part)
    print(json.dumps(part), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", default="4,8")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(threads())

    from tuning_bench.api.options import resolve_options
    from tuning_bench.engine.prompting import resolve_format
    from tuning_bench.engine.retention import RetentionMeter
    from tuning_bench.engine.strategies import strategy_for
    from tuning_bench_plugins.lora import LoRA

    catalog, task, _, loaded, _ = load()
    fmt = resolve_format(loaded.tokenizer)
    autocast = torch.bfloat16 if args.precision == "bf16" else None
    others = [t for t in catalog.tasks if t.name != task.name]

    def meter(tasks, examples, cache):
        return RetentionMeter(loaded, task.name, tasks, fmt, strategy_for(loaded.kind, task.kind), torch.device("cpu"),
                              autocast, 128, 512, examples, 0, cache)

    results: dict = {"environment": environment_line(), "precision": args.precision, "parts": []}
    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(scratch)
        start = time.perf_counter()
        probe_only = meter([], 0, cache)
        probe_only.measure_base(loaded.model)
        report(results, {"part": "probe made, then its base-side loss pass (first cell of a model)",
                         "seconds": time.perf_counter() - start, "probe_tokens": probe_only.probe.tokens})
        adapted = LoRA().adapt(loaded, task, resolve_options("lora", LoRA.options, {}))
        base_model = adapted.get_base_model()
        with adapted.disable_adapter():  # the base model's side, as before adapt: the adapter is off
            cached = meter([], 0, cache)
            cached.measure_base(base_model)
        retention = cached.measure_trained(adapted, LoRA.decoding)
        report(results, {"part": "probe only (retention_examples 0): both loss passes, probe cached",
                         "seconds": retention.seconds})
        for other in others:
            for count in [int(c) for c in args.examples.split(",")]:
                with adapted.disable_adapter():
                    one = meter([other], count, cache)
                    one.measure_base(base_model)
                retention = one.measure_trained(adapted, LoRA.decoding)
                [entry] = retention.tasks
                report(results, {"part": f"{other.name}, {count} examples, both sides, with the probe",
                                 "seconds": retention.seconds, "before": entry.before, "after": entry.after,
                                 "error": entry.error})
    results["load_average"] = Path("/proc/loadavg").read_text().split()[:3]
    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
