"""Trained states on disk: saved in the method's natural format, measured from the real files.

PEFT methods save PEFT's own adapter format (``PeftModel.from_pretrained`` loads it), full
fine-tuning saves every weight as safetensors, and hard-prompt baselines save only their prompt.
Every state also carries ``tbench-prompt.json``: the prompt context the method was evaluated with.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

PROMPT_FILE = "tbench-prompt.json"


def _file_sizes(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_size for p in sorted(path.rglob("*")) if p.is_file()}


def save_state(adapted: Any, trains: bool, keep: str, state_dir: Path, prompt_record: dict[str, Any]) -> dict[str, Any]:
    """Save what the method trained, measure the files, then keep or delete the weights as ``keep`` says.

    keep: "all" keeps everything, "adapters" deletes full-model weights only, "none" deletes all weights.
    """
    from peft import PeftModel

    if state_dir.exists():
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True)
    if isinstance(adapted, PeftModel):
        adapted.save_pretrained(state_dir)
        kind = "peft-adapter"
    elif trains:
        adapted.save_pretrained(state_dir)
        kind = "full-model"
    else:
        kind = "prompt-only"
    (state_dir / PROMPT_FILE).write_text(json.dumps(prompt_record, indent=1, ensure_ascii=False))
    files = _file_sizes(state_dir)
    weights = sum(size for name, size in files.items() if name.endswith(".safetensors"))
    kept = keep == "all" or (keep == "adapters" and kind != "full-model")
    if not kept:
        for name in files:
            if name.endswith(".safetensors"):
                (state_dir / name).unlink()
    return {"kind": kind, "files": files, "saved_bytes": weights, "kept": kept, "path": state_dir.name}


def load_state(base_model: Any, kind: str, state_dir: Path) -> Any:
    """Apply a saved state to a freshly loaded base model (the inverse of ``save_state``)."""
    if kind == "peft-adapter":
        from peft import PeftModel

        return PeftModel.from_pretrained(base_model, state_dir)
    if kind == "full-model":
        return type(base_model).from_pretrained(state_dir)
    return base_model


def load_prompt(state_dir: Path) -> dict[str, Any]:
    return json.loads((state_dir / PROMPT_FILE).read_text(encoding="utf-8"))
