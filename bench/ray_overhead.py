"""--executor ray vs local: wall time of one small grid, each from an empty output folder, side by side.

The Ray run starts its own local Ray instance (as `tbench run --executor ray` does without an address),
so its wall time holds everything a user waits for: Ray's start, the workers, the fork server on the
worker, the transfer of records and states, and the shutdown. The runs alternate (local, ray, ray,
local, ...) so a drift in the machine's load favours neither. Besides wall times it prints the CPU, the
summed cell times of each run (the cells' own work, which Ray should not change) and whether the cells'
headline values and final losses agree between the executors.

Usage: python bench/ray_overhead.py [--rounds 2] [--out bench/ray_overhead.json] [-- extra tbench run flags]
Default grid: --methods zero-shot,lora --quick on the default model and task. On a busy machine the
tiny test models measure the fixed cost alone (bench/ray_overhead_tiny.json):
    TBENCH_PLUGIN_MODULES=tuning_bench.testing python bench/ray_overhead.py --out bench/ray_overhead_tiny.json \
        -- --model tiny-llama --tasks tiny-gen
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import environment_line  # noqa: E402

GRID = ["--methods", "zero-shot,lora", "--quick"]
EXECUTORS = ("local", "ray")


def one_run(executor: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "-m", "tuning_bench", "run", *GRID, *extra, "--executor", executor, "--out", scratch]
        load = os.getloadavg()[0]
        start = time.perf_counter()
        finished = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if finished.returncode != 0:
            raise SystemExit(f"{' '.join(command)} exited {finished.returncode}:\n{finished.stderr[-3000:]}")
        results = json.loads((Path(scratch) / "results.json").read_text())
    cells = {f"{c['task']}/{c['method']}/{c['seed']}": c for c in results["cells"]}
    return {"executor": executor, "wall_seconds": wall, "load_average_1min_before": load,
            "cell_seconds_sum": sum(c.get("cell_seconds") or 0.0 for c in cells.values()),
            "precision": results["run"]["precision"],
            "nodes": sorted({c.get("node") for c in cells.values()}),
            "results": {name: {"headline": (c.get("headline") or {}).get("value"),
                               "final_val_loss": (c.get("measurements") or {}).get("final_val_loss")}
                        for name, c in cells.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="runs of each executor, order alternating")
    parser.add_argument("--out", default=str(Path(__file__).parent / "ray_overhead.json"))
    parser.add_argument("extra", nargs="*", help="more tbench run flags, after --")
    args = parser.parse_args()
    report = {"environment": environment_line(), "grid": GRID + args.extra, "runs": []}
    print(report["environment"], flush=True)
    for round_index in range(args.rounds):
        for executor in EXECUTORS if round_index % 2 == 0 else tuple(reversed(EXECUTORS)):
            run = one_run(executor, args.extra)
            report["runs"].append(run)
            print(f"--executor {executor}: {run['wall_seconds']:.1f} s wall (cells summed {run['cell_seconds_sum']:.1f} s, "
                  f"{run['precision']}, nodes {', '.join(map(str, run['nodes']))}, "
                  f"load average {run['load_average_1min_before']:.2f} before)", flush=True)
    best = {e: min(r["wall_seconds"] for r in report["runs"] if r["executor"] == e) for e in EXECUTORS}
    report["best_wall_seconds"] = best
    report["ray_over_local"] = best["ray"] / best["local"]
    report["ray_extra_seconds"] = best["ray"] - best["local"]
    print(f"best of {args.rounds}: local {best['local']:.1f} s, ray {best['ray']:.1f} s: ray takes "
          f"{report['ray_over_local']:.2f}x the wall time ({report['ray_extra_seconds']:+.1f} s)")
    first = {r["executor"]: r["results"] for r in report["runs"]}
    report["results_agree"] = first["local"] == first["ray"]
    print(f"headline values and final losses {'agree' if report['results_agree'] else 'differ'} between the executors")
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
