"""End to end: wall time of `tbench run` (default) and `tbench run --quick`, with a breakdown.

Each command runs in a fresh output directory (nothing cached), with the model already fetched. The
breakdown comes from the run's results.json: per phase, summed over cells; "process and runner" is
the rest (interpreter start-up, fork server, hash verification, writing results and reports).

Usage: python bench/end_to_end.py [--which default,quick,default-fp32,default-bf16,quick-cell,quick-device,default-jobs4,...] [--out bench/end_to_end.json]
       [--default-out DIR] [--keep-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import environment_line  # noqa: E402

COMMANDS = {"default": [], "quick": ["--quick"],
            # the default run in each precision, for the side-by-side comparison (issue 15)
            "default-fp32": ["--precision", "fp32"], "default-bf16": ["--precision", "bf16"],
            # a fresh process per cell against one per device, side by side (issue 15 item 5, on a GPU)
            "default-cell": ["--cell-process", "cell"], "default-device": ["--cell-process", "device"],
            "quick-cell": ["--quick", "--cell-process", "cell"], "quick-device": ["--quick", "--cell-process", "device"],
            # four cells at a time on the one device (on a GPU: four slots on it, each with a quarter of the host's
            # cores); bench/shared_timings.py compares its cells' timings with the "default" run's
            "default-jobs4": ["--jobs", "4"]}


def breakdown(results: dict, wall: float) -> dict:
    cells = results["cells"]
    def total(key):
        return sum((c.get("measurements") or {}).get(key) or 0.0 for c in cells)
    parts = {
        "model load": total("load_seconds"),
        "tokenization": total("tokenize_seconds"),
        "training (steps)": total("train_seconds"),
        "validation during training": total("validation_seconds"),
        "evaluation: generation": total("generation_seconds") + total("classify_seconds"),
        "evaluation: latency, guard, final validation": total("eval_seconds") - total("generation_seconds") - total("classify_seconds"),
        "deployment cost (latency merged, answers/s at batch 8)": total("deployment_seconds"),
        "retention (probe loss, other tasks)": sum(((c.get("measurements") or {}).get("retention") or {}).get("seconds") or 0.0
                                                   for c in cells),
    }
    in_cells = sum(c.get("cell_seconds") or 0.0 for c in cells)
    parts["cell set-up, saving, measuring"] = in_cells - sum(parts.values())
    parts["process and runner (start-up, fork server, verification, results, reports)"] = wall - in_cells
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--which", default="quick,default")
    parser.add_argument("--out", default=str(Path(__file__).parent / "end_to_end.json"))
    parser.add_argument("--default-out", default=None,
                        help="a new folder for the default run's output (kept, e.g. results/default-cpu); "
                             "otherwise a temporary one")
    parser.add_argument("--keep-dir", default=None,
                        help="keep every run's output in DIR/NAME (e.g. results/precision-cpu/default-fp32)")
    args = parser.parse_args()
    unknown = sorted(set(args.which.split(",")) - set(COMMANDS))
    if unknown:
        raise SystemExit(f"--which: unknown run(s) {', '.join(unknown)}; choose from {', '.join(COMMANDS)}")
    if args.default_out and Path(args.default_out).exists():
        raise SystemExit(f"--default-out {args.default_out} exists; name a new folder")
    report = {"environment": environment_line(), "runs": {}}
    print(report["environment"], flush=True)
    for name in args.which.split(","):
        with tempfile.TemporaryDirectory() as temporary:
            scratch = args.default_out if name == "default" and args.default_out else temporary
            if args.keep_dir:
                scratch = str(Path(args.keep_dir) / name)
                if Path(scratch).exists():
                    raise SystemExit(f"{scratch} exists; name a new --keep-dir")
            command = [sys.executable, "-m", "tuning_bench", "run", *COMMANDS[name], "--out", scratch]
            start = time.perf_counter()
            completed = subprocess.run(command, capture_output=True, text=True)
            wall = time.perf_counter() - start
            if completed.returncode != 0:
                print(completed.stderr[-2000:], file=sys.stderr)
                raise SystemExit(f"{name}: exit code {completed.returncode}")
            results = json.loads((Path(scratch) / "results.json").read_text())
            report_start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "tuning_bench", "report", scratch], check=True, capture_output=True)
            report_seconds = time.perf_counter() - report_start
        parts = breakdown(results, wall)
        if (name == "default" and args.default_out) or args.keep_dir:
            Path(scratch, "wall-time.txt").write_text(
                f"{wall:.1f} s wall (bench/end_to_end.py, `tbench run` in a fresh output folder), {report['environment']}\n")
        report["runs"][name] = {"command": "tbench run " + " ".join(COMMANDS[name]), "wall_seconds": wall,
                                "cells": len(results["cells"]), "breakdown_seconds": parts,
                                "tbench_report_seconds": report_seconds}
        print(f"{name}: {wall:.0f} s for {len(results['cells'])} cells; `tbench report` alone {report_seconds:.1f} s")
        for part, seconds in parts.items():
            print(f"  {part:75} {seconds:7.1f} s  {100 * seconds / wall:5.1f}%")
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
