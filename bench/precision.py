"""bf16 vs fp32 on this machine, side by side: the precision probe's ratio, then one cell run each way.

1. The probe `--precision auto` uses (tuning_bench.engine.precision.measure: one thread, autocast bf16
   vs fp32 on a layer-sized matmul, best of several alternating rounds), measured fresh (not cached)
   --probes times; the median ratio and the spread are printed.
2. The same cell (default: LoRA on the default task at the default budget) as `tbench run` with
   --precision fp32 and with --precision bf16, alternating, each in a fresh output directory, --repeats
   times: wall time of the command, training step time, evaluation time, and the quality figures.

Timings from a shared machine are indicative: the load average before and after is printed beside them.
Usage: python bench/precision.py [--methods lora] [--repeats 1] [--probes 5] [--quick] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import environment_line  # noqa: E402


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def probe_ratios(count: int) -> list[float]:
    from tuning_bench.engine.precision import measure

    return [measure().speedup for _ in range(count)]


def run_cell(precision: str, methods: str, quick: bool) -> dict:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "tuning_bench", "run", "--methods", methods, "--precision", precision,
                   "--out", out, *(["--quick"] if quick else [])]
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        data = json.loads((Path(out) / "results.json").read_text())
    cells = [c for c in data["cells"] if c["status"] == "ok"]
    if len(cells) != len(data["cells"]):
        raise SystemExit(f"{precision}: a cell failed: {[c['error'] for c in data['cells'] if c['status'] != 'ok']}")
    m = cells[0]["measurements"]
    return {"precision": data["run"]["precision"], "wall_seconds": wall, "cell_seconds": cells[0]["cell_seconds"],
            "median_step_seconds": m.get("median_step_seconds"), "train_seconds": m.get("train_seconds"),
            "eval_seconds": m.get("eval_seconds"), "final_val_loss": m.get("final_val_loss"),
            "headline": cells[0]["headline"], "quality": cells[0]["quality"], "guard": cells[0]["guard"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="lora")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--probes", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="the --quick budget instead of the default")
    parser.add_argument("--skip-cells", action="store_true", help="the probe only")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = {"environment": environment_line(), "load_average_before": load_average()}
    print(f"{report['environment']}; load average {report['load_average_before']}", flush=True)
    ratios = probe_ratios(args.probes)
    report["probe_bf16_speedups"] = ratios
    print(f"probe: bf16 autocast {statistics.median(ratios):.2f}x the speed of fp32 (median of {len(ratios)}; "
          f"range {min(ratios):.2f}-{max(ratios):.2f})", flush=True)
    runs = []
    if not args.skip_cells:
        for _ in range(args.repeats):
            for precision in ("fp32", "bf16"):
                runs.append(run_cell(precision, args.methods, args.quick))
                r = runs[-1]
                print(f"{precision}: wall {r['wall_seconds']:.1f} s, cell {r['cell_seconds']:.1f} s, "
                      f"step {r['median_step_seconds'] or 0:.3f} s, eval {r['eval_seconds']:.1f} s, "
                      f"val loss {r['final_val_loss']:.4f}, {r['headline']['metric']} {r['headline']['value']}, "
                      f"guard {'passed' if r['guard']['passed'] else 'FAILED'}", flush=True)
        for key in ("wall_seconds", "median_step_seconds", "eval_seconds"):
            fp32 = statistics.median(r[key] for r in runs if r["precision"] == "fp32")
            bf16 = statistics.median(r[key] for r in runs if r["precision"] == "bf16")
            print(f"{key}: fp32 / bf16 = {fp32 / bf16:.2f}")
    report["runs"] = runs
    report["load_average_after"] = load_average()
    print(f"load average after: {report['load_average_after']} (cores: {len(os.sched_getaffinity(0))})")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
