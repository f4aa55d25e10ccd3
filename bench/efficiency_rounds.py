"""Training efficiency over several fresh processes: how far one run of bench/engine_overhead.py is from the next.

One run of engine_overhead.py already takes its ceiling beside every step, yet runs of the same code on the
same machine minutes apart read LoRA fp32 anywhere from 62 % to 68 % (bench/efficiency_rounds.json, AMD EPYC
Zen 4): the shared host's state, and perhaps a process's memory layout, move the whole run. This runs
engine_overhead.py ``--rounds`` times per method, each in a fresh process, the methods taking turns, and
reports the median and range of each figure, so a target such as "60 % of the fp32 matmul rate" is judged
on the median, with its spread beside it.

Usage: python bench/efficiency_rounds.py [--methods lora,finetune] [--rounds 5] [--precision fp32|bf16]
       [--set M.O=V] [--out bench/efficiency_rounds.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
FIGURES = ("efficiency", "achieved_gflops", "matmul_gflops_beside_steps", "engine_median_step_s", "engine_over_bare_keep")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="lora,finetune")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--set", action="append", default=[], metavar="METHOD.OPTION=VALUE")
    parser.add_argument("--out", default=str(HERE / "efficiency_rounds.json"))
    args = parser.parse_args()
    methods = args.methods.split(",")
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    environment = None
    with tempfile.TemporaryDirectory() as scratch:
        for round_number in range(1, args.rounds + 1):
            for method in methods:  # taking turns: a slow quarter hour falls on every method alike
                out = Path(scratch) / f"{method}-{round_number}.json"
                command = [sys.executable, str(HERE / "engine_overhead.py"), "--methods", method,
                           "--precision", args.precision, "--out", str(out)]
                for item in args.set:
                    command += ["--set", item]
                done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                if done.returncode:  # its last line says why (bad --set, missing model, ...)
                    sys.exit(f"engine_overhead.py failed for {method}: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
                result = json.loads(out.read_text())
                environment = result["environment"]
                row = result["methods"][method]
                runs[method].append({k: row[k] for k in FIGURES})
                print(f"round {round_number} {method:9} {100 * row['efficiency']:.1f}% of "
                      f"{row['matmul_gflops_beside_steps']:.0f} GFLOP/s, step {row['engine_median_step_s']:.2f} s",
                      flush=True)
    summary = {}
    for method, rows in runs.items():
        summary[method] = {figure: {"median": statistics.median(r[figure] for r in rows),
                                    "min": min(r[figure] for r in rows), "max": max(r[figure] for r in rows)}
                           for figure in FIGURES}
        eff = summary[method]["efficiency"]
        print(f"{method:9} efficiency median {100 * eff['median']:.1f}% (range {100 * eff['min']:.1f}-"
              f"{100 * eff['max']:.1f}%) over {len(rows)} fresh processes")
    Path(args.out).write_text(json.dumps({"environment": environment, "precision": args.precision,
                                          "options_set": args.set, "rounds": args.rounds,
                                          "summary": summary, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
