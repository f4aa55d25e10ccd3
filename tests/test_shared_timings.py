"""bench/shared_timings.py, the comparison prepared for cells sharing one GPU (--jobs N on CUDA), on real runs.

Reads reference runs kept under results/ (not re-run): a run compared with itself gives ratios of 1.0
exactly; two different runs of the same cells give per-cell ratios, matched by task, method and seed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "shared_timings.py"
CPU_RUN, GPU_AFTER, GPU_BEFORE = (ROOT / "results" / name for name in ("default-cpu-v3", "gpu-h200-v2", "gpu-h200-v2-before"))


def _run(*args: str, out: Path) -> tuple[str, dict]:
    completed = subprocess.run([sys.executable, str(SCRIPT), *args, "--out", str(out)], capture_output=True, text=True,
                               timeout=120)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout, json.loads(out.read_text())


def test_a_run_compared_with_itself_gives_ratios_of_one(tmp_path):
    if not (CPU_RUN / "results.json").exists():
        pytest.skip("results/default-cpu-v3 is not in this checkout")
    table, result = _run(str(CPU_RUN), str(CPU_RUN / "results.json"), out=tmp_path / "same.json")
    cells = json.loads((CPU_RUN / "results.json").read_text())["cells"]
    assert len(result["cells"]) == len(cells) == 8 and result["unmatched_cells"] == []
    assert result["wall_ratio"] == 1.0 and result["wall_ratio_of"] == "end_to_end_seconds"
    ratios = [r for c in result["cells"] for r in c["ratios"].values() if r is not None]
    assert ratios and all(r == 1.0 for r in ratios)
    # a figure a cell lacks stays empty, not 1: zero-shot trains no step
    zero_shot = next(c for c in result["cells"] if c["cell"].endswith("/zero-shot/seed 0"))
    assert zero_shot["ratios"]["median_step_seconds"] is None
    assert "median over cells" in table and "wall A / B: 1.000" in table


def test_two_runs_of_the_same_cells_are_compared_cell_by_cell(tmp_path):
    if not (GPU_AFTER / "results.json").exists() or not (GPU_BEFORE / "results.json").exists():
        pytest.skip("the H200 reference runs are not in this checkout")
    _, result = _run(str(GPU_AFTER), str(GPU_BEFORE), out=tmp_path / "two.json")
    after = {c["method"]: c for c in json.loads((GPU_AFTER / "results.json").read_text())["cells"]}
    before = {c["method"]: c for c in json.loads((GPU_BEFORE / "results.json").read_text())["cells"]}
    lora = next(c for c in result["cells"] if c["cell"] == "product-descriptions/lora/seed 0")
    expected = after["lora"]["measurements"]["latency_seconds"] / before["lora"]["measurements"]["latency_seconds"]
    assert lora["ratios"]["latency_seconds"] == pytest.approx(expected)
    assert result["shared"]["end_to_end_seconds"] == 197.5 and result["alone"]["end_to_end_seconds"] == 250.2
    assert result["wall_ratio"] == pytest.approx(197.5 / 250.2)
