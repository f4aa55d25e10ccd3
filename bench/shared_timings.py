"""Shared against alone: how a device shared by several cells (`--jobs N`) changes each cell's own timings.

Compares two finished runs of the same cells: A, run with cells sharing a device (e.g. `--jobs 4` on one
GPU), and B, run one cell at a time. Prints each run's wall time and, per cell (same task, method, seed
and trial in both), the ratio A / B of its median step time, one-answer latency (unmerged and merged) and
answers per second at batch 8, and of its peak memory (train, or eval for a cell that does not train), which
should stay 1.0: memory figures are per cell process. Above 1 a time got slower when shared; above 1 a
throughput got faster. Then the median ratio over cells per figure, and the whole comparison as JSON.

Usage: python bench/shared_timings.py A B [--out FILE.json]   (A, B: run folders or their results.json)
e.g.   python bench/shared_timings.py runs/default-jobs4 runs/default   (bench/gpu_startup.sh, MODES)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tuning_bench.run.records import CellRecord, RunDocument  # noqa: E402
from tuning_bench.run.results import load_document  # noqa: E402

# (key in the output, header, how to read it from a cell): figures a neighbour on the device could change
FIGURES = (
    ("median_step_seconds", "step", lambda c: c.measurements.median_step_seconds),
    ("latency_seconds", "latency", lambda c: c.measurements.latency_seconds),
    ("latency_merged_seconds", "merged lat.", lambda c: c.measurements.latency_merged_seconds),
    ("throughput_answers_per_second", "answers/s", lambda c: c.measurements.throughput_answers_per_second),
    ("throughput_answers_per_second_merged", "merged ans/s",
     lambda c: c.measurements.throughput_answers_per_second_merged),
    ("peak_memory_bytes", "peak mem.", lambda c: c.measurements.peak("train") or c.measurements.peak("eval")),
)


def _cell_name(cell: CellRecord) -> str:
    return f"{cell.task}/{cell.method}/seed {cell.seed}" + (f"/{cell.trial}" if cell.trial else "")


def _ratio(shared: float | None, alone: float | None) -> float | None:
    if shared is None or alone is None or alone == 0:
        return None
    return shared / alone


def _sharing(document: RunDocument) -> int | None:
    values = [c.device_shared_by for c in document.cells if c.ok and c.device_shared_by]
    return max(values) if values else None


def end_to_end_seconds(folder: Path) -> float | None:
    """The wall time bench/end_to_end.py wrote beside a run (``wall-time.txt``: process start to exit), if any."""
    try:
        return float((folder / "wall-time.txt").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def compare(shared: RunDocument, alone: RunDocument, walls: tuple[float | None, float | None] = (None, None)) -> dict:
    """The comparison as a JSON-ready mapping: each run's wall time and sharing, per-cell ratios, medians.

    ``walls``: each run's end-to-end wall time where known (``end_to_end_seconds``); the ratio of wall
    times uses them when both are known, else results.json's ``run.wall_seconds`` (planning to the end).
    """
    by_name = {_cell_name(c): c for c in alone.cells if c.ok}
    cells, unmatched = [], []
    for cell in shared.cells:
        if not cell.ok:
            continue
        other = by_name.get(_cell_name(cell))
        if other is None:
            unmatched.append(_cell_name(cell))
            continue
        cells.append({"cell": _cell_name(cell), "device": cell.device, "device_shared_by": cell.device_shared_by,
                      "ratios": {key: _ratio(read(cell), read(other)) for key, _, read in FIGURES}})
    medians = {}
    for key, _, _ in FIGURES:
        values = [c["ratios"][key] for c in cells if c["ratios"][key] is not None]
        medians[key] = statistics.median(values) if values else None
    wall = (shared.run.wall_seconds, alone.run.wall_seconds)
    compared = walls if None not in walls else wall
    return {"shared": {"wall_seconds": wall[0], "end_to_end_seconds": walls[0], "device_shared_by": _sharing(shared),
                       "slots": shared.run.slots, "command": shared.command},
            "alone": {"wall_seconds": wall[1], "end_to_end_seconds": walls[1], "device_shared_by": _sharing(alone),
                      "slots": alone.run.slots, "command": alone.command},
            "wall_ratio": _ratio(*compared), "wall_ratio_of": "end_to_end_seconds" if compared is walls else "wall_seconds",
            "cells": cells, "median_ratios": medians,
            "unmatched_cells": unmatched}


def _format(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def table(result: dict) -> str:
    """The comparison as a plain-text table (one line per cell, then the medians)."""
    shared, alone = result["shared"], result["alone"]
    def run_line(label: str, run: dict) -> str:
        end_to_end = f" ({run['end_to_end_seconds']:.1f} s end to end)" if run["end_to_end_seconds"] is not None else ""
        return (f"{label} wall {_format(run['wall_seconds'])} s in results.json{end_to_end}, "
                f"device shared by {run['device_shared_by'] or '—'}")

    lines = [run_line("A (shared):", shared), run_line("B (alone): ", alone),
             f"wall A / B: {_format(result['wall_ratio'])} ({result['wall_ratio_of']})", "",
             "per cell, A / B (time above 1: slower when shared; answers/s above 1: faster; memory should be 1):"]
    headers = [header for _, header, _ in FIGURES]
    width = max([len(c["cell"]) for c in result["cells"]] + [len("median over cells")])
    lines.append(f"{'cell':{width}}  " + "  ".join(f"{h:>12}" for h in headers))
    for cell in result["cells"]:
        lines.append(f"{cell['cell']:{width}}  " + "  ".join(f"{_format(cell['ratios'][k]):>12}" for k, _, _ in FIGURES))
    lines.append(f"{'median over cells':{width}}  "
                 + "  ".join(f"{_format(result['median_ratios'][k]):>12}" for k, _, _ in FIGURES))
    if result["unmatched_cells"]:
        lines.append(f"not in B (left out): {', '.join(result['unmatched_cells'])}")
    return "\n".join(lines)


def _folder(path: str) -> Path:
    folder = Path(path)
    return folder.parent if folder.name == "results.json" else folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shared", help="the run whose cells shared a device (folder or results.json)")
    parser.add_argument("alone", help="the same cells run one at a time (folder or results.json)")
    parser.add_argument("--out", help="also write the JSON here (otherwise it is printed after the table)")
    args = parser.parse_args(argv)
    folders = _folder(args.shared), _folder(args.alone)
    result = compare(load_document(folders[0]), load_document(folders[1]),
                     (end_to_end_seconds(folders[0]), end_to_end_seconds(folders[1])))
    print(table(result))
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
