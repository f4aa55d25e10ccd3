"""Quality of two runs of the same suite in different precisions, method by method (issue 15, item 1).

For each method: the headline in each run, the difference (second minus first) with a paired 95 %
bootstrap interval over the shared test examples (the runs scored the same examples, so each resample
draws the same examples for both), whether the difference is within the spread of that method across
seeds (max minus min of the per-seed scores in a multi-seed run of the same budget, where one is given),
and the number of test answers that are identical in both runs.

Usage: python bench/precision_compare.py FIRST_RUN SECOND_RUN [--seeds-run DIR] [--json FILE]
       e.g. results/precision-cpu/default-fp32 results/precision-cpu/default-bf16 --seeds-run results/seeds3-cpu
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tuning_bench.stats.bootstrap import example_weights, interval
from tuning_bench.stats.samples import cell_statistic, example_indices


def load_cells(run: str) -> tuple[str, dict[str, dict]]:
    results = json.loads(Path(run, "results.json").read_text())
    metric = next(v for v in results["verdicts"] if v.get("computed"))["metric"]
    return metric, {c["method"]: c for c in results["cells"] if c["status"] == "ok"}


def seed_spread(run: str, metric: str) -> dict[str, float]:
    results = json.loads(Path(run, "results.json").read_text())
    scores: dict[str, list[float]] = {}
    for cell in results["cells"]:
        if cell["status"] == "ok" and metric in (cell.get("quality") or {}):
            scores.setdefault(cell["method"], []).append(cell["quality"][metric])
    return {m: max(v) - min(v) for m, v in scores.items() if len(v) > 1}


def compare(first: str, second: str, seeds_run: str | None) -> dict:
    metric, a = load_cells(first)
    _, b = load_cells(second)
    spread = seed_spread(seeds_run, metric) if seeds_run else {}
    rows = {}
    for method in [m for m in a if m in b]:
        shared = sorted(set(example_indices(a[method]) or []) & set(example_indices(b[method]) or []))
        sa, sb = cell_statistic(a[method], metric, shared), cell_statistic(b[method], metric, shared)
        if sa is None or sb is None:
            continue
        weights = example_weights(len(shared))
        difference = sb.resampled(weights) - sa.resampled(weights)
        low, high = interval(difference)
        observed = sb.value() - sa.value()
        identical = sum(x == y for x, y in zip(a[method].get("predictions") or [], b[method].get("predictions") or []))
        rows[method] = {"first": sa.value(), "second": sb.value(), "difference": observed, "ci95": [low, high],
                        "separated": bool(low > 0 or high < 0), "identical_answers": identical,
                        "examples": len(shared), "seed_spread": spread.get(method),
                        # a method whose score does not move with the seed (zero-shot) has no spread to compare with
                        "within_seed_spread": (abs(observed) <= spread[method]) if spread.get(method) else None}
    return {"metric": metric, "first": first, "second": second, "seeds_run": seeds_run, "methods": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--seeds-run", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    report = compare(args.first, args.second, args.seeds_run)
    print(f"{report['metric']}: {args.first} -> {args.second}")
    for method, row in report["methods"].items():
        spread = "" if row["seed_spread"] is None else "; the same at every seed" if not row["seed_spread"] else (
            f"; seed spread {row['seed_spread']:.3f}: {'within' if row['within_seed_spread'] else 'OUTSIDE'}")
        print(f"  {method:10} {row['first']:.3f} -> {row['second']:.3f}  diff {row['difference']:+.3f} "
              f"[{row['ci95'][0]:+.3f}, {row['ci95'][1]:+.3f}]{' separated' if row['separated'] else ''}; "
              f"{row['identical_answers']}/{row['examples']} answers identical{spread}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
