"""Terminal output as rich tables: the per-task summary a run prints, and ``tbench compare A B``.

Text from the records goes into ``rich.text.Text`` objects, never into markup strings: a sweep
label such as ``[learning_rate=0.01]`` would otherwise be read as a style tag.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from tuning_bench.report.tables import (COST_COLUMNS, Column, MethodRow, TaskView, best_methods, build_tasks, display_value,
                                        failed_cells, format_bytes, format_count, format_headline, format_seconds,
                                        method_names, sharing_note, task_names)
from tuning_bench.report.verdicts import VERDICT_HEADER, change_interval, verdict_rows, verdicts_of
from tuning_bench.run.records import CellRecord, Record, RunDocument, as_document

def _compact_table(title: str) -> Table:
    """A table that fits 80 columns: a rule under the header instead of boxes, one space between columns."""
    return Table(title=Text(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)


def _gib(value: float | None) -> str:
    if value is None:
        return "—"
    gib = value / 1024 ** 3
    return f"{gib:.2f}" if gib < 10 else f"{gib:.1f}"


def _number(value: float | None, scale: float = 1.0) -> str:
    """Two decimals below 10 (2.68, 0.08), one below 100 (26.9), whole numbers with separators above (1,234)."""
    if value is None:
        return "—"
    scaled = value * scale
    return f"{scaled:.2f}" if abs(scaled) < 10 else (f"{scaled:.1f}" if abs(scaled) < 100 else f"{scaled:,.0f}")


# The terminal's columns: compact headers with their unit, numbers without one, so that a table of
# eight methods fits an 80-column terminal. report.md and report.html show every column.
@dataclass(frozen=True)
class _TerminalColumn:
    header: str
    column: Column
    show: Callable[[MethodRow], str]
    optional: bool = False  # left out when no row has a value (deployment figures: --quick, nothing merged)


def _by_key(key: str) -> Column:
    return next(c for c in COST_COLUMNS if c.key == key)


TERMINAL_COLUMNS = (
    _TerminalColumn("Params", _by_key("trainable_params"), lambda r: format_count(r.values.get("trainable_params"))),
    # one memory column: the training peak, or the evaluation peak of a method that does not train
    _TerminalColumn("Peak GiB", Column("peak_memory", "Peak memory", "bytes", "lower"), lambda r: _gib(r.peak_memory)),
    _TerminalColumn("Train s", _by_key("train_seconds"), lambda r: _number(r.values.get("train_seconds"))),
    _TerminalColumn("Latency ms", _by_key("latency_seconds"), lambda r: _number(r.values.get("latency_seconds"), 1000)),
    _TerminalColumn("Merged ms", _by_key("latency_merged_seconds"),
                    lambda r: _number(r.values.get("latency_merged_seconds"), 1000), optional=True),
    _TerminalColumn("Ans/s", _by_key("throughput_answers_per_second"),
                    lambda r: _number(r.values.get("throughput_answers_per_second")), optional=True),
)


def _peak_rows(rows: list[MethodRow]) -> list[MethodRow]:
    # best_methods reads row.value(key); the combined peak is a property, so hand it over as a value.
    return [replace(r, values={**r.values, "peak_memory": r.peak_memory}) for r in rows]


def _summary_table(view: TaskView, failures: int) -> Table:
    arrow = "↑" if view.higher_is_better else "↓"
    counts = {(row.headline.n, row.cells) for row in view.rows}
    # When every method finished every seed, the title says how many and the n column is left out.
    complete = len(counts) == 1 and next(iter(counts))[0] == next(iter(counts))[1]
    seeds = next(iter(counts))[0] if complete else 0
    several = any(row.headline.n >= 2 for row in view.rows)
    suffix = (", one seed" if seeds == 1 else f", mean ± std over {seeds} seeds" if seeds
              else ", mean ± std over seeds" if several else "")
    table = _compact_table(f"{view.name} — {view.headline_metric} {arrow}{suffix}")
    # method names are what a reader scans for: they wrap onto a second line, never get cut
    table.add_column("Method", overflow="fold")
    if not complete:
        table.add_column("n", justify="right", no_wrap=True)
    table.add_column(Text(view.headline_metric), justify="right", no_wrap=True)
    shown = [c for c in TERMINAL_COLUMNS if not c.optional or any(r.values.get(c.column.key) is not None for r in view.rows)]
    for column in shown:
        table.add_column(column.header, justify="right", no_wrap=True)
    headline_column = view.columns[0]
    rows = _peak_rows(view.rows)
    best = {c.column.key: best_methods(rows, c.column) for c in shown}
    best["headline"] = best_methods(rows, headline_column)
    family = None
    for row in rows:
        # a sweep's chosen trial on a line of its own under the method: "learning_rate=0.00015" is long
        if view.has_families and row.family != family:  # a title line over each group of like methods
            family = row.family
            table.add_row(Text(family or "family not recorded", style="italic"))
        cells = [Text(f"{row.method}\n{row.trial}" if row.trial else row.method)]
        if not complete:
            cells.append(Text(f"{row.headline.n}/{row.cells}"))
        cells.append(Text(display_value(row, headline_column), style="bold green" if row.method in best["headline"] else ""))
        for column in shown:
            cells.append(Text(column.show(row), style="bold" if row.method in best[column.column.key] else ""))
        table.add_row(*cells)
    notes = ["Peak GiB: training peak (evaluation peak where a method does not train). Every column: report.md."]
    if any(c.optional for c in shown):
        notes.append("Merged ms: one answer with the update merged into the weights (LoRA, IA3); "
                     "Ans/s: answers per second at batch 8, unmerged.")
    if not complete:
        notes.append("n: seeds with a headline value / cells run.")
    if note := sharing_note(view):
        notes.append(note)
    notes += [f"not applicable: {m} ({r})" for m, r in view.not_applicable]
    if failures:
        notes.append(f"{failures} failed cell(s): see the Failures section of report.md")
    table.caption = Text("\n".join(notes))
    table.caption_justify = "left"
    return table


def _verdict_table(verdict: dict[str, Any]) -> Table:
    table = _compact_table(f"Verdict: {verdict['task']} — {verdict['metric']}")
    for index, label in enumerate(VERDICT_HEADER):
        table.add_column(label, justify="left" if index in (0, 5) else "right", no_wrap=index != 0,
                         overflow="fold")
    for row in verdict_rows(verdict):
        style = "bold green" if row[5] == "best" else ("dim" if row[5] == "below best" else "")
        table.add_row(*(Text(c, style=style) for c in row))
    return table


def terminal_verdicts(data: RunDocument | dict[str, Any]) -> list[Any]:
    """The verdict of each task: its sentences, then (when computed) the per-method intervals."""
    items: list[Any] = []
    for verdict in verdicts_of(data):
        items.append(Text("\n".join(verdict["summary"]), style="bold" if verdict["computed"] else "yellow"))
        if verdict["computed"]:
            items.append(_verdict_table(verdict))
    return items


def terminal_tables(data: RunDocument | dict[str, Any]) -> list[Table]:
    """One rich table per task with the key columns; the best value of each column in bold."""
    document = as_document(data)
    failures = failed_cells(document)
    return [_summary_table(view, sum(1 for c in failures if c.task == view.name)) for view in build_tasks(document)]


# --- tbench compare ---------------------------------------------------------------------------

RUN_SETTINGS = ("model", "model_fingerprint", "tasks", "task_fingerprints", "methods", "seeds", "steps", "epochs", "batch_size",
                "eval_examples", "val_examples", "val_every", "patience", "min_delta", "device", "precision", "base_quant", "prompt_format", "max_length",
                "executor", "sweep", "method_configs")
ENVIRONMENT_SETTINGS = ("packages", "device_name", "torch_threads", "platform", "project_commit")
MISSING = object()


def _show(value: Any) -> str:
    if value is MISSING:
        return "(absent)"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _setting(section: Record | dict[str, Any], key: str) -> Any:
    # A setting a file does not have (an older run) shows as "(absent)", not as a default.
    if isinstance(section, Record):
        return getattr(section, key) if section.present(key) else section.extra.get(key, MISSING)
    return section.get(key, MISSING)


def setting_differences(a: RunDocument | dict[str, Any], b: RunDocument | dict[str, Any]) -> list[tuple[str, str, str]]:
    """(setting, value in A, value in B) for every run setting or environment entry that differs.

    Mappings (package versions, method configs, task fingerprints) are compared entry by entry,
    so one changed version shows as one line.
    """
    a, b = as_document(a), as_document(b)
    differences = []
    for left, right, keys in ((a.run, b.run, RUN_SETTINGS), (a.environment, b.environment, ENVIRONMENT_SETTINGS)):
        for key in keys:
            x, y = _setting(left, key), _setting(right, key)
            if isinstance(x, dict) and isinstance(y, dict):
                for sub in list(x) + [k for k in y if k not in x]:
                    xs, ys = x.get(sub, MISSING), y.get(sub, MISSING)
                    if xs != ys:
                        differences.append((f"{key}.{sub}", _show(xs), _show(ys)))
            elif x != y:
                differences.append((key, _show(x), _show(y)))
    return differences


def _settings_table(a: RunDocument, b: RunDocument) -> Table:
    table = Table(title="Settings and environment that differ", title_justify="left")
    table.add_column("Setting")
    table.add_column("A")
    table.add_column("B")
    differences = setting_differences(a, b)
    for name, x, y in differences:
        table.add_row(Text(name), Text(x), Text(y))
    if not differences:
        table.add_row(Text("(none)"), Text("same"), Text("same"))
    return table


def _change(x: float | None, y: float | None, fmt: Any) -> Text:
    if x is None and y is None:
        return Text("—")
    if x == y:
        return Text(f"{fmt(x)} (same)", style="dim")
    if x is None or y is None or not x:
        return Text(f"{fmt(x)} → {fmt(y)}")
    percent = (y - x) / abs(x) * 100
    shown = "~0%" if abs(percent) < 0.05 else f"{percent:+.1f}%" if abs(percent) < 10 else f"{percent:+.0f}%"
    return Text(f"{fmt(x)} → {fmt(y)} ({shown})")


def _headline(row: MethodRow | None) -> Text:
    if row is None:
        return Text("(absent)", style="dim")
    return Text(f"{format_headline(row.headline)} (n={row.headline.n})")


def _change_ci(cells_a: list[CellRecord], cells_b: list[CellRecord], metric: str, higher: bool) -> Text:
    change = change_interval(cells_a, cells_b, metric) if cells_a and cells_b else None
    if change is None:
        return Text("—")
    low, high = change["ci95"]
    separated = low > 0 or high < 0
    improved = (low > 0) if higher else (high < 0)
    style = ("green" if improved else "red") if separated else "dim"
    return Text(f"{change['change']:+.3f} [{low:+.3f}, {high:+.3f}] n={change['examples']}", style=style)


def _task_table(name: str, view_a: TaskView | None, view_b: TaskView | None, order: list[str],
                cells_a: dict[str, list[CellRecord]] | None = None,
                cells_b: dict[str, list[CellRecord]] | None = None) -> Table:
    views = [v for v in (view_a, view_b) if v is not None]
    higher = views[0].higher_is_better
    metrics = [v.headline_metric for v in views]
    title = f"{name} — {metrics[0]} {'↑' if higher else '↓'}"
    if len(set(metrics)) > 1:
        title += f" (headline metric changed: {metrics[0]} → {metrics[1]})"
    table = Table(title=Text(title), title_justify="left")
    for label in ("Method", "A", "B", "Δ (B − A)", "Δ paired [95 % CI]", "Train time", "Peak memory",
                  "Trainable params"):
        table.add_column(label, justify="left" if label == "Method" else "right")
    rows_a = {r.method: r for r in view_a.rows} if view_a else {}
    rows_b = {r.method: r for r in view_b.rows} if view_b else {}
    methods = sorted(set(rows_a) | set(rows_b), key=lambda m: (order.index(m) if m in order else len(order), m))
    for method in methods:
        ra, rb = rows_a.get(method), rows_b.get(method)
        delta = Text("—")
        if ra and rb and ra.headline.mean is not None and rb.headline.mean is not None:
            diff = rb.headline.mean - ra.headline.mean
            improved = diff > 0 if higher else diff < 0
            delta = Text(f"{diff:+.3f}", style="green" if improved else "red") if diff else Text("0", style="dim")
        va = ra.values if ra else {}
        vb = rb.values if rb else {}
        paired = _change_ci((cells_a or {}).get(method, []), (cells_b or {}).get(method, []), metrics[0], higher)
        table.add_row(Text(method), _headline(ra), _headline(rb), delta, paired,
                      _change(va.get("train_seconds"), vb.get("train_seconds"), format_seconds),
                      _change(ra.peak_memory if ra else None, rb.peak_memory if rb else None, format_bytes),
                      _change(va.get("trainable_params"), vb.get("trainable_params"), format_count))
    table.caption = Text("Δ paired: the change on the test examples both runs scored, with its 95 % paired-bootstrap "
                         "interval (n = examples); — where a run kept no per-example scores.")
    table.caption_justify = "left"
    return table


def _cell_key(cell: CellRecord) -> tuple[str, str, int]:
    # Trials are left out: with a sweep the chosen trial stands for the method, as in the reports.
    return cell.task, cell.method, cell.seed


def unmatched_cells(a: RunDocument | dict[str, Any], b: RunDocument | dict[str, Any]) -> list[tuple[str, CellRecord]]:
    """Cells (as shown in reports) present in only one run, as ("A" or "B", cell)."""
    shown_a, shown_b = as_document(a).shown_cells(), as_document(b).shown_cells()
    keys_a = {_cell_key(c) for c in shown_a}
    keys_b = {_cell_key(c) for c in shown_b}
    only = [("A", c) for c in shown_a if _cell_key(c) not in keys_b]
    return only + [("B", c) for c in shown_b if _cell_key(c) not in keys_a]


def _unmatched_table(a: RunDocument, b: RunDocument) -> Table:
    table = Table(title="Cells in only one run", title_justify="left")
    for label in ("Only in", "Task", "Method", "Seed", "Trial", "Status"):
        table.add_column(label)
    unmatched = unmatched_cells(a, b)
    for side, cell in unmatched:
        table.add_row(Text(side), Text(str(cell.task)), Text(str(cell.method)), Text(str(cell.seed)),
                      Text(cell.trial or "—"), Text(cell.status))
    if not unmatched:
        table.add_row(Text("(none)"), Text("both runs have the same cells"), Text(""), Text(""), Text(""), Text(""))
    return table


def _by_method(data: RunDocument, task: str) -> dict[str, list[CellRecord]]:
    cells: dict[str, list[CellRecord]] = {}
    for cell in data.shown_cells():
        if cell.task == task:
            cells.setdefault(cell.method, []).append(cell)
    return cells


def compare_runs(a: RunDocument | dict[str, Any], b: RunDocument | dict[str, Any]) -> list[Table]:
    """Tables comparing run A with run B: settings that differ, per task the headline and cost changes, unmatched cells."""
    a, b = as_document(a), as_document(b)
    views_a = {v.name: v for v in build_tasks(a)}
    views_b = {v.name: v for v in build_tasks(b)}
    order = method_names(a) + [m for m in method_names(b) if m not in method_names(a)]
    tasks = task_names(a) + [t for t in task_names(b) if t not in task_names(a)]
    tables = [_settings_table(a, b)]
    tables += [_task_table(t, views_a.get(t), views_b.get(t), order, _by_method(a, t), _by_method(b, t)) for t in tasks]
    tables.append(_unmatched_table(a, b))
    return tables
