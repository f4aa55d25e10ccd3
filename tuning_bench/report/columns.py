"""The column table of every report: which per-method figures exist, their headers, units and
"better" direction, what each reads from a cell record, and the formatter of each unit.

``report/tables`` aggregates cells into rows over these columns; Markdown, HTML, plots, the terminal
summary and ``tbench compare`` show them. Adding a figure to the reports is a row of ``COST_COLUMNS``
and its entry in ``cell_values``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tuning_bench.run.records import CellRecord


@dataclass(frozen=True)
class Column:
    """A per-method figure shown in the main table."""

    key: str
    label: str
    unit: str  # how to format: metric, loss, delta (a signed change), count, percent, bytes, seconds, rate, throughput
    better: str | None  # "higher", "lower" or None when "best" means nothing
    # Baselines have 0 trainable parameters, 0 saved bytes and no training at all; marking them
    # "best" in those columns would only say they do not train, so these compare trained methods.
    training_cost: bool = False
    # Shown only where some row has a value: deployment figures, which --quick (no latency) and older
    # records do not have.
    optional: bool = False


COST_COLUMNS = (
    Column("final_train_loss", "Train loss", "loss", "lower"),
    Column("final_val_loss", "Val loss", "loss", "lower"),
    # Retention (engine/retention.py): only trained methods change the model, so only they compare.
    Column("probe_loss_change", "Probe loss Δ", "delta", "lower", training_cost=True),
    Column("tasks_change", "Other tasks Δ", "delta", "higher", training_cost=True),
    Column("trainable_params", "Trainable params", "count", "lower", training_cost=True),
    Column("trainable_percent", "Trainable %", "percent", "lower", training_cost=True),
    Column("train_peak_bytes", "Peak mem (train)", "bytes", "lower"),
    Column("eval_peak_bytes", "Peak mem (eval)", "bytes", "lower"),
    Column("train_seconds", "Train time", "seconds", "lower", training_cost=True),
    # shown as "steps / time" (see display_value); ranked by the time
    Column("seconds_to_best", "Steps/time to best", "to_best", "lower", training_cost=True),
    Column("tokens_per_second", "Tokens/s", "rate", "higher"),
    Column("saved_bytes", "Saved size", "bytes", "lower", training_cost=True),
    Column("latency_seconds", "Latency", "seconds", "lower"),
    # optional columns last: a column's position among the shown ones is then the same as in this tuple
    Column("latency_merged_seconds", "Latency merged", "seconds", "lower", optional=True),
    Column("throughput_answers_per_second", "Answers/s (batch 8)", "throughput", "higher", optional=True),
    Column("throughput_answers_per_second_merged", "Answers/s merged", "throughput", "higher", optional=True),
)


# On CUDA a peak memory column shows the reserved peak beside the allocated one: what torch's caching
# allocator held, so what a GPU must have free (docs/measurements.md, Memory).
RESERVED_BESIDE = {"train_peak_bytes": "train_peak_reserved_bytes", "eval_peak_bytes": "eval_peak_reserved_bytes"}


def to_number(value: Any) -> float | None:
    """A finite number, or None for anything else (missing, NaN, inf, a string, a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def cell_values(cell: CellRecord) -> dict[str, float | None]:
    """The cost figures of one finished cell; training figures are None for a cell that did not train."""
    m = cell.measurements
    trained = m.trained
    retention = m.retention
    values = {
        "final_train_loss": m.final_train_loss,
        "final_val_loss": m.final_val_loss,
        "trainable_params": m.trainable_params,
        "trainable_percent": m.trainable_percent,
        "train_peak_bytes": m.peak("train") if trained else None,
        "eval_peak_bytes": m.peak("eval"),
        "train_peak_reserved_bytes": m.peak_reserved("train") if trained else None,
        "eval_peak_reserved_bytes": m.peak_reserved("eval"),
        "train_seconds": m.train_seconds if trained else None,
        "seconds_to_best": m.seconds_to_best if trained else None,
        "steps_to_best": m.best_step if trained else None,
        "tokens_per_second": m.tokens_per_second if trained else None,
        "saved_bytes": m.saved_bytes,
        "latency_seconds": m.latency_seconds,
        "latency_merged_seconds": m.latency_merged_seconds,
        "throughput_answers_per_second": m.throughput_answers_per_second,
        "throughput_answers_per_second_merged": m.throughput_answers_per_second_merged,
        "probe_loss_change": retention.probe_loss_change if trained and retention else None,
        "tasks_change": retention.tasks_change if trained and retention else None,
    }
    return {k: to_number(v) for k, v in values.items()}


# --- The formatter of each unit, shared by every output ----------------------------------------

def format_bytes(value: float | None) -> str:
    """Binary units: 512 B, 8.0 KiB, 472.3 MiB, 1.52 GiB."""
    if value is None:
        return "—"
    for unit, size in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if abs(value) >= size:
            scaled = value / size
            return f"{scaled:.2f} {unit}" if unit == "GiB" and abs(scaled) < 10 else f"{scaled:.1f} {unit}"
    return f"{value:.0f} B"


def format_seconds(value: float | None) -> str:
    """82 ms, 12.3 s, 4 m 05 s, 1 h 02 m."""
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.3g} ms" if value > 0 else "0 s"
    if value < 60:
        return f"{value:.3g} s"
    if value < 3600:
        minutes, seconds = divmod(round(value), 60)
        return f"{minutes} m {seconds:02d} s"
    hours, minutes = divmod(round(value / 60), 60)
    return f"{hours} h {minutes:02d} m"


def format_count(value: float | None) -> str:
    """Exact below ten thousand (1,792), then K/M/B with three significant digits."""
    if value is None:
        return "—"
    if abs(value) < 10_000:
        return f"{value:,.0f}"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:,.0f}"


def format_value(unit: str, value: float | None) -> str:
    """A column's value in its unit, "—" when absent."""
    if value is None:
        return "—"
    if unit == "metric":
        return f"{value:.4g}" if abs(value) >= 1000 else f"{value:.3f}"
    if unit == "loss":
        return f"{value:.4f}"
    if unit == "delta":  # a change: its sign is the point
        return f"{value:+.3f}"
    if unit == "percent":
        return f"{value:.3g}%"
    if unit == "bytes":
        return format_bytes(value)
    if unit == "seconds":
        return format_seconds(value)
    if unit == "rate":
        return f"{value:,.0f}"
    if unit == "throughput":
        return f"{value:.3g}"
    return format_count(value)
