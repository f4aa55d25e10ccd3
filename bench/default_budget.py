"""Does a run's budget answer? Per method: the 95 % CI on the headline, the validation curve, and where
the curve fell fastest.

Reads a run's results.json (any run; the default budget was chosen from a 60-step study and checked on
the default run). For each trained method the curve starts at step 0 with the untrained model's
validation loss, taken from the zero-shot cell (the same prompt; an adapter at its initial value
changes it a little, so this is an approximation), and each stretch between validations gets its fall
per step. A method is "past its fastest fall" when the fastest-falling stretch ends before the last
validation and the last stretch falls at most a third as fast; its learning rate "holds" when the final
validation loss is below the untrained model's.

Usage: python bench/default_budget.py RUN_DIR [--json FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def analyse(results: dict) -> dict:
    verdict = next(v for v in results["verdicts"] if v.get("computed"))
    cells = {c["method"]: c for c in results["cells"] if c["status"] == "ok" and c["seed"] == min(
        x["seed"] for x in results["cells"])}
    untrained = (cells.get("zero-shot") or {}).get("measurements", {}).get("final_val_loss")
    rows = {}
    for name, stats in verdict["methods"].items():
        low, high = stats["ci95"]
        row = {"mean": stats["mean"], "ci95": [low, high], "half_width": (high - low) / 2}
        curve = [tuple(p) for p in (cells[name].get("curves") or {}).get("val_loss") or []] if name in cells else []
        if curve and untrained is not None:
            points = [(0, untrained), *curve]
            rates = [((b[1] - a[1]) / (b[0] - a[0]), a[0], b[0]) for a, b in zip(points, points[1:])]
            fastest = min(rates)  # the most negative slope
            last = rates[-1]
            row.update(curve=points, fastest_stretch=[fastest[1], fastest[2]], fastest_fall_per_step=-fastest[0],
                       last_fall_per_step=-last[0],
                       past_fastest_fall=fastest[2] < points[-1][0] and -last[0] <= -fastest[0] / 3,
                       final_val_loss=points[-1][1], lowest_val_loss=min(v for _, v in points[1:]),
                       # the learning-rate rule (issue 13): the final loss below the untrained model's
                       below_untrained=points[-1][1] < untrained)
        rows[name] = row
    return {"metric": verdict["metric"], "examples": verdict["examples"], "methods": rows,
            "best_group": verdict["best_group"], "separated_below_best": verdict["separated_below_best"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results = json.loads(Path(args.run, "results.json").read_text())
    report = analyse(results)
    print(f"{report['metric']} on {report['examples']} test examples; best group {report['best_group']}; "
          f"separated below: {report['separated_below_best']}")
    for name, row in report["methods"].items():
        line = f"  {name:10} {row['mean']:.3f} [{row['ci95'][0]:.3f}, {row['ci95'][1]:.3f}] +-{row['half_width']:.3f}"
        if "curve" in row:
            line += (f" | fastest fall steps {row['fastest_stretch'][0]}-{row['fastest_stretch'][1]} "
                     f"({row['fastest_fall_per_step']:.4f}/step), last {row['last_fall_per_step']:.4f}/step, "
                     f"past it: {row['past_fastest_fall']} | final {row['final_val_loss']:.3f} (lowest "
                     f"{row['lowest_val_loss']:.3f}), below the untrained {row['below_untrained']} | curve "
                     + " ".join(f"{s}:{v:.2f}" for s, v in row["curve"]))
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
