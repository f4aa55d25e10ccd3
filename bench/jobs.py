"""--jobs: wall time of one small grid run with --jobs 1 and --jobs 2 (or more), side by side.

Each run starts from an empty output folder (nothing cached) on the same machine, in alternating order
over the rounds (1, 2, 2, 1, ...), so a drift in the machine's load does not favour one setting. Besides
wall times it prints the CPU, the load average before each run, and whether the cells' headline values
agree (with --jobs 2 each cell has half the torch threads, which may change the last digits).

Usage: python bench/jobs.py [--jobs 1,2] [--rounds 1] [--out bench/jobs.json] [-- extra tbench run flags]
Default grid: --methods zero-shot,lora,ia3,prompt --steps 8 --eval-examples 8 on the default model and task.
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

GRID = ["--methods", "zero-shot,lora,ia3,prompt", "--steps", "8", "--eval-examples", "8"]


def one_run(jobs: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        command = [sys.executable, "-m", "tuning_bench", "run", *GRID, *extra, "--jobs", str(jobs), "--out", scratch]
        load = os.getloadavg()[0]
        start = time.perf_counter()
        finished = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if finished.returncode != 0:
            raise SystemExit(f"{' '.join(command)} exited {finished.returncode}:\n{finished.stderr[-2000:]}")
        results = json.loads((Path(scratch) / "results.json").read_text())
    headlines = {f"{c['task']}/{c['method']}/{c['seed']}": (c.get("headline") or {}).get("value") for c in results["cells"]}
    return {"jobs": jobs, "wall_seconds": wall, "load_average_1min_before": load,
            "cell_seconds_sum": sum(c.get("cell_seconds") or 0.0 for c in results["cells"]),
            "precision": results["run"]["precision"], "slots": results["run"].get("slots"), "headlines": headlines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="1,2", help="comma list of --jobs values to compare")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each setting, order alternating")
    parser.add_argument("--out", default=str(Path(__file__).parent / "jobs.json"))
    parser.add_argument("extra", nargs="*", help="more tbench run flags, after --")
    args = parser.parse_args()
    settings = [int(j) for j in args.jobs.split(",")]
    report = {"environment": environment_line(), "grid": GRID + args.extra, "runs": []}
    print(report["environment"], flush=True)
    for round_index in range(args.rounds):
        for jobs in settings if round_index % 2 == 0 else list(reversed(settings)):
            run = one_run(jobs, args.extra)
            report["runs"].append(run)
            print(f"--jobs {jobs}: {run['wall_seconds']:.1f} s wall (cells summed {run['cell_seconds_sum']:.1f} s, "
                  f"{run['precision']}, load average {run['load_average_1min_before']:.2f} before)", flush=True)
    best = {jobs: min(r["wall_seconds"] for r in report["runs"] if r["jobs"] == jobs) for jobs in settings}
    base = best[settings[0]]
    report["best_wall_seconds"] = best
    for jobs in settings[1:]:
        ratio = base / best[jobs]
        print(f"--jobs {jobs} vs --jobs {settings[0]}: {ratio:.2f}x the speed ({'faster' if ratio > 1 else 'not faster'})")
        report[f"speedup_jobs_{jobs}"] = ratio
    first = {r["jobs"]: r["headlines"] for r in report["runs"]}
    report["headlines_agree"] = all(first[j] == first[settings[0]] for j in settings)
    print(f"headline values {'agree' if report['headlines_agree'] else 'differ'} between the settings")
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
