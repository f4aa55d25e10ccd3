"""Trained states on disk: written by the method, measured from the real files, kept as ``--keep`` says.

The method decides the format (``Method.save_state``): by default the tensors it trains as one
safetensors file, PEFT's adapter format for PEFT methods, every weight for full fine-tuning, nothing
but the prompt for hard-prompt baselines. Every state also carries ``tbench-prompt.json``: the prompt
context the method was evaluated with.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tuning_bench.api.method import FULL_MODEL

PROMPT_FILE = "tbench-prompt.json"


def _file_sizes(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_size for p in sorted(path.rglob("*")) if p.is_file()}


def save_state(method: Any, adapted: Any, keep: str, state_dir: Path, prompt_record: dict[str, Any]) -> dict[str, Any]:
    """Save what the method trained, measure the files, then keep or delete the weights as ``keep`` says.

    keep: "all" keeps everything, "adapters" deletes full-model copies only, "none" deletes all weights.
    """
    if state_dir.exists():
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True)
    kind = method.save_state(adapted, state_dir)
    (state_dir / PROMPT_FILE).write_text(json.dumps(prompt_record, indent=1, ensure_ascii=False))
    files = _file_sizes(state_dir)
    weights = sum(size for name, size in files.items() if name.endswith(".safetensors"))
    kept = keep == "all" or (keep == "adapters" and kind != FULL_MODEL)
    if not kept:
        for name in files:
            if name.endswith(".safetensors"):
                (state_dir / name).unlink()
    return {"kind": kind, "files": files, "saved_bytes": weights, "kept": kept, "path": state_dir.name}


def load_prompt(state_dir: Path) -> dict[str, Any]:
    return json.loads((state_dir / PROMPT_FILE).read_text(encoding="utf-8"))
