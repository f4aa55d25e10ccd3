"""The results record: one versioned JSON schema, written atomically, read back with clear errors."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tuning_bench.api.errors import UsageError
from tuning_bench.files import atomic_write_text
from tuning_bench.run.records import (  # noqa: F401  (the schema constants are read from here too)
    READABLE_VERSIONS, REQUIRED_CELL_KEYS, SCHEMA, SCHEMA_VERSION, STATUSES, Measurements, RunDocument,
    as_document)


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def clean_floats(value: Any) -> Any:
    """Replace NaN and infinities (not valid JSON) with None, recursively."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: clean_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_floats(v) for v in value]
    return value


def validate(data: Any, source: str) -> dict[str, Any]:
    """Check the parts of a results record that reports rely on; raise one clear line otherwise.

    Returns ``data`` unchanged (the JSON mapping); ``RunDocument.checked`` gives the typed document.
    """
    RunDocument.checked(data, source)
    return data


def _read_json(path: Path) -> Any:
    if path.is_dir():
        path = path / "results.json"
    if not path.exists():
        raise UsageError(f"{path}: no such file; point at a run directory made by `tbench run`")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return json.loads(text), path
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); "
                         "the file was truncated or edited; re-run `tbench run` with the same --out to rebuild it") from None


def load_results(path: Path) -> dict[str, Any]:
    """Read and validate results.json (or a run directory containing it), as its JSON mapping."""
    data, path = _read_json(path)
    return validate(data, str(path))


def load_document(path: Path) -> RunDocument:
    """Read and validate results.json (or a run directory containing it) as a typed ``RunDocument``."""
    data, path = _read_json(path)
    return RunDocument.checked(data, str(path))


def selected_cells(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The cells a report shows, as JSON mappings (``RunDocument.shown_cells`` for typed records)."""
    return [c for c in data["cells"] if c.get("selected", True)]


def mean_std(values: Iterable[float | None]) -> tuple[float | None, float | None, int]:
    present = [v for v in values if v is not None]
    if not present:
        return None, None, 0
    return statistics.fmean(present), (statistics.stdev(present) if len(present) > 1 else 0.0), len(present)


CSV_COLUMNS = [
    "task", "method", "seed", "trial", "status", "error", "headline_metric", "headline_value",
    "trainable_params", "total_params", "trainable_percent", "final_train_loss", "final_val_loss", "val_perplexity",
    "train_seconds", "median_step_seconds", "tokens_per_second", "train_peak_bytes", "eval_peak_bytes",
    "baseline_bytes", "saved_bytes", "generation_seconds_per_example", "latency_seconds", "eval_examples", "steps",
    "best_step", "seconds_to_best", "stopped_early", "learning_rate",
    # deployment cost and CUDA reserved memory, then retention, after the older columns so their positions hold
    "latency_merged_seconds", "throughput_answers_per_second", "throughput_answers_per_second_merged",
    "merged_outputs_match", "train_peak_reserved_bytes", "eval_peak_reserved_bytes",
    "probe_loss_before", "probe_loss_after", "probe_loss_change", "tasks_change",
]


def csv_text(data: RunDocument | dict[str, Any]) -> str:
    """One row per cell, with the metrics flattened after the fixed columns."""
    document = as_document(data)
    metric_names = sorted({name for c in document.cells for name in c.quality})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS + [f"quality_{m}" for m in metric_names])
    for cell in document.cells:
        m = cell.measurements or Measurements()
        row = {
            "task": cell.task, "method": cell.method, "seed": cell.seed, "trial": cell.trial,
            "status": cell.status, "error": cell.error or "",
            "headline_metric": cell.headline.metric if cell.headline else None,
            "headline_value": cell.headline.value if cell.headline else None,
            "train_peak_bytes": m.peak("train"), "eval_peak_bytes": m.peak("eval"),
            "train_peak_reserved_bytes": m.peak_reserved("train"), "eval_peak_reserved_bytes": m.peak_reserved("eval"),
            "baseline_bytes": m.memory.baseline if m.memory else None,
            "learning_rate": cell.method_config.get("learning_rate"),  # method options are free-form
        }
        retention = m.retention
        for key in ("probe_loss_before", "probe_loss_after", "probe_loss_change", "tasks_change"):
            row[key] = getattr(retention, key) if retention is not None else None
        for key in CSV_COLUMNS:
            if key not in row:
                row[key] = getattr(m, key)
        writer.writerow([_csv_value(row[k]) for k in CSV_COLUMNS] + [_csv_value(cell.quality.get(n)) for n in metric_names])
    return out.getvalue()


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        # A spreadsheet would run such a cell as a formula (CSV injection); a leading quote shows it as text.
        return "'" + value
    return value
