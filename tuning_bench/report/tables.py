"""The one place that turns result cells into report rows: per (task, method) means over seeds.

Markdown, HTML, plots and the terminal summary all read what this module builds, so a number
can never be aggregated two ways. Nothing here formats for one output; the columns, and the shared
human units (MiB/GiB, s/ms, K/M) that every output uses, are defined in ``report/columns``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tuning_bench.api.method import FAMILIES
# The column table and the unit formatters live in report/columns; they are imported from here too.
from tuning_bench.report.columns import (COST_COLUMNS, RESERVED_BESIDE, Column, cell_values,  # noqa: F401
                                         format_bytes, format_count, format_seconds, format_value, to_number)
from tuning_bench.run.records import CellRecord, RunDocument, as_document
from tuning_bench.run.results import mean_std


@dataclass
class Stat:
    """Mean and sample standard deviation over seeds, with how many seeds had a value."""

    mean: float | None
    std: float | None
    n: int


@dataclass
class MethodRow:
    """One method on one task: the mean of each figure over the seeds that finished."""

    method: str
    trial: str  # the sweep trial these cells come from ("" without a sweep)
    cells: int  # cells considered (finished or failed)
    ok: int  # cells that finished
    trains: bool
    headline: Stat
    quality: dict[str, float | None]
    values: dict[str, float | None]
    family: str = ""  # the method's family (Method.family); "" when its records predate families

    def value(self, key: str) -> float | None:
        return self.headline.mean if key == "headline" else self.values.get(key, self.quality.get(key))

    @property
    def peak_memory(self) -> float | None:
        """The training peak, or the evaluation peak for a method that does not train."""
        train = self.values.get("train_peak_bytes")
        return train if self.trains and train is not None else self.values.get("eval_peak_bytes")


@dataclass
class Curve:
    """A method's loss curves, averaged over seeds step by step."""

    method: str
    train_steps: list[int]
    train_loss: list[float]
    val_steps: list[int]
    val_loss: list[float]


@dataclass
class SampleTable:
    """The same test inputs, each method's prediction side by side, for one seed."""

    seed: int | None
    methods: list[str]
    rows: list[tuple[str, str, list[str | None]]]  # input, reference, a prediction per method


@dataclass(frozen=True)
class LearnedPrompt:
    """The prompt a method learned (a trained hard prompt) in one cell: shown beside the sample answers."""

    method: str
    seed: int
    text: str
    tokens: int


@dataclass
class TaskView:
    """Everything a report shows about one task."""

    name: str
    kind: str
    headline_metric: str
    higher_is_better: bool
    other_metrics: list[str]
    rows: list[MethodRow]
    not_applicable: list[tuple[str, str]]  # method, reason
    curves: list[Curve]
    samples: SampleTable
    sweep: list[dict[str, Any]] = field(default_factory=list)
    learned_prompts: list[LearnedPrompt] = field(default_factory=list)
    # the most cells that shared a device while this task's cells ran (their records' device_shared_by)
    device_shared_by: int = 1

    @property
    def has_families(self) -> bool:
        """Whether the rows carry their method families (records written before families do not)."""
        return any(row.family for row in self.rows)

    @property
    def columns(self) -> list[Column]:
        """The headline, the other quality metrics, then the cost columns, in display order."""
        quality = [Column(m, m, "metric", None) for m in self.other_metrics]
        headline = Column("headline", self.headline_metric, "metric", "higher" if self.higher_is_better else "lower")
        cost = [c for c in COST_COLUMNS if not c.optional or any(r.value(c.key) is not None for r in self.rows)]
        return [headline, *quality, *cost]


def task_names(data: RunDocument | dict[str, Any]) -> list[str]:
    """Tasks in the order the run listed them, then any others found only in cells."""
    document = as_document(data)
    names = list(document.run.tasks or [])
    for name in list(document.tasks or {}) + [c.task for c in document.cells]:
        if name not in names:
            names.append(name)
    return names


def method_names(data: RunDocument | dict[str, Any]) -> list[str]:
    """Methods in the order the run listed them, then any others found only in cells."""
    document = as_document(data)
    names = list(document.run.methods or [])
    for cell in document.cells:
        if cell.method not in names:
            names.append(cell.method)
    return names


def _task_info(document: RunDocument, task: str, cells: list[CellRecord]) -> dict[str, Any]:
    info = dict(document.tasks.get(task) or {})  # a task's own summary: free-form (Task.summary)
    if "headline" not in info or "higher_is_better" not in info:
        # Older or partial records: the cells carry the headline definition too.
        headline = next((c.headline for c in cells if c.headline is not None), None)
        info.setdefault("headline", headline.metric if headline else "")
        info.setdefault("higher_is_better", headline.higher_is_better if headline else True)
    return info


def _row(method: str, cells: list[CellRecord], metrics: list[str]) -> MethodRow:
    ok = [c for c in cells if c.ok]
    per_cell = [cell_values(c) for c in ok]
    keys = [c.key for c in COST_COLUMNS] + ["steps_to_best", *RESERVED_BESIDE.values()]
    values = {key: mean_std(v[key] for v in per_cell)[0] for key in keys}
    quality = {name: mean_std(to_number(c.quality.get(name)) for c in ok)[0] for name in metrics}
    headline = Stat(*mean_std(to_number(c.headline.value) for c in ok))
    trials = sorted({c.trial or "" for c in cells})
    return MethodRow(method=method, trial=", ".join(t for t in trials if t), cells=len(cells), ok=len(ok),
                     trains=any(c.measurements.trained for c in ok),
                     headline=headline, quality=quality, values=values,
                     family=next((c.family for c in cells if c.family), ""))


def family_rank(family: str) -> int:
    """Where a family's rows go: in FAMILIES order; an unknown family, or none recorded, after them."""
    return FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)


def order_sentence(view: TaskView) -> str:
    """How the rows of a task's main table are ordered, as every output says it."""
    if view.has_families:
        return ("Rows are grouped by method family (" + ", ".join(FAMILIES[:-1]) + ", then any other), "
                "so like is compared with like; within a family they are sorted by it, best first.")
    return "Rows are sorted by it, best first."


def _sort_key(row: MethodRow, higher_is_better: bool, order: list[str]) -> tuple:
    mean = row.headline.mean
    missing = mean is None
    score = 0.0 if missing else (-mean if higher_is_better else mean)
    # Grouped by family first; records without families all rank alike, so they sort by the headline as before.
    return (family_rank(row.family), missing, score, order.index(row.method) if row.method in order else len(order), row.method)


def mean_curve(method: str, cells: list[CellRecord]) -> Curve:
    """Train loss per step and validation loss per evaluated step, each the mean over the seeds that have it."""
    by_step: dict[int, list[float]] = {}
    val_by_step: dict[int, list[float]] = {}
    for cell in cells:
        if cell.curves is None:
            continue
        for index, loss in enumerate(cell.curves.train_loss or []):
            if to_number(loss) is not None:
                by_step.setdefault(index + 1, []).append(loss)
        for point in cell.curves.val_loss or []:
            if len(point) == 2 and to_number(point[1]) is not None:
                val_by_step.setdefault(int(point[0]), []).append(point[1])
    train_steps = sorted(by_step)
    val_steps = sorted(val_by_step)
    return Curve(method, train_steps, [mean_std(by_step[s])[0] for s in train_steps],
                 val_steps, [mean_std(val_by_step[s])[0] for s in val_steps])


def sample_table(cells: list[CellRecord], order: list[str]) -> SampleTable:
    """Predictions for the same inputs from every method, taken from the smallest seed that finished."""
    ok = [c for c in cells if c.ok and c.samples]
    if not ok:
        return SampleTable(None, [], [])
    seed = min(c.seed for c in ok)
    by_method: dict[str, dict[tuple[str, str], str]] = {}
    inputs: list[tuple[str, str]] = []
    for cell in sorted((c for c in ok if c.seed == seed), key=lambda c: order.index(c.method)):
        predictions = by_method.setdefault(cell.method, {})
        for sample in cell.samples:
            key = (str(sample.input), str(sample.reference))
            if key not in inputs:
                inputs.append(key)
            predictions.setdefault(key, str(sample.prediction))
    methods = list(by_method)
    rows = [(text, reference, [by_method[m].get((text, reference)) for m in methods]) for text, reference in inputs]
    return SampleTable(seed, methods, rows)


def learned_prompts(cells: list[CellRecord], order: list[str]) -> list[LearnedPrompt]:
    """Every finished cell's learned prompt (``prompt.learned``), by method order, then seed."""
    found = [c for c in cells if c.ok and isinstance(c.prompt.get("learned"), dict)]
    found.sort(key=lambda c: (order.index(c.method) if c.method in order else len(order), c.seed))
    return [LearnedPrompt(c.method, c.seed, str(c.prompt["learned"].get("text", "")),
                          len(c.prompt["learned"].get("token_ids") or [])) for c in found]


def build_tasks(data: RunDocument | dict[str, Any]) -> list[TaskView]:
    """Aggregate the record into one view per task. With a sweep, only the chosen trials count."""
    document = as_document(data)
    order = method_names(document)
    shown = document.shown_cells()
    views = []
    for task in task_names(document):
        all_cells = [c for c in document.cells if c.task == task]
        cells = [c for c in shown if c.task == task]
        info = _task_info(document, task, cells)
        headline = info.get("headline") or ""
        higher = bool(info.get("higher_is_better", True))
        listed = [m for m in info.get("metrics") or [] if m != headline]
        found = sorted({name for c in cells if c.ok for name in c.quality
                        if name != headline and to_number(c.quality[name]) is not None})
        metrics = listed + [m for m in found if m not in listed]
        by_method: dict[str, list[CellRecord]] = {}
        for cell in cells:
            if cell.status != "not_applicable":
                by_method.setdefault(cell.method, []).append(cell)
        rows = sorted((_row(m, cs, metrics) for m, cs in by_method.items()), key=lambda r: _sort_key(r, higher, order))
        not_applicable: list[tuple[str, str]] = []
        for cell in sorted(all_cells, key=lambda c: order.index(c.method)):
            entry = (cell.method, str(cell.error or "no reason given"))
            if cell.status == "not_applicable" and cell.method not in by_method and entry not in not_applicable:
                not_applicable.append(entry)
        curves = [mean_curve(r.method, [c for c in by_method[r.method] if c.ok]) for r in rows]
        sweep = [s for s in document.sweep or [] if s.get("task") == task]  # sweep summaries: runner's plain dicts
        views.append(TaskView(name=task, kind=str(info.get("kind", "")), headline_metric=headline, higher_is_better=higher,
                              other_metrics=metrics, rows=rows, not_applicable=not_applicable,
                              curves=[c for c in curves if c.train_steps or c.val_steps],
                              samples=sample_table(cells, order), sweep=sweep,
                              learned_prompts=learned_prompts(cells, order),
                              device_shared_by=max([c.device_shared_by or 1 for c in cells if c.ok], default=1)))
    return views


def sharing_note(view: TaskView) -> str | None:
    """A sentence for the tables when cells' times were taken while they shared a device; None otherwise."""
    if view.device_shared_by <= 1:
        return None
    return (f"Times (train time, step time, latency, throughput) were taken while up to {view.device_shared_by} cells "
            "shared a device (--jobs): compare them only with runs of the same --jobs. Memory figures are each cell's own.")


def best_methods(rows: list[MethodRow], column: Column) -> set[str]:
    """The methods holding the best value of a column; empty when there is nothing to tell apart.

    Ties all count as best. A column where fewer than two distinct values exist gets no mark,
    since "best" of one value (or of equal values) says nothing.
    """
    if column.better is None:
        return set()
    candidates = [(r.method, r.value(column.key)) for r in rows if not column.training_cost or r.trains]
    present = [(m, v) for m, v in candidates if v is not None]
    if len({_rounded(v) for _, v in present}) < 2:
        return set()
    target = max(v for _, v in present) if column.better == "higher" else min(v for _, v in present)
    return {m for m, v in present if _rounded(v) == _rounded(target)}


def _rounded(value: float) -> float:
    # Means of the same numbers can differ in the last bits depending on summation order.
    return float(f"{value:.9g}")


def pareto_front(points: list[tuple[float, float]], higher_is_better: bool = True) -> list[int]:
    """Indices of the points no other point beats: cost no higher and quality no worse, one strictly.

    ``points`` are (cost, quality); lower cost is always better, quality per ``higher_is_better``.
    The indices come back ordered by cost, then by quality from best to worst.
    """
    def better_or_equal(a: float, b: float) -> bool:
        return a >= b if higher_is_better else a <= b

    front = []
    for i, (cost, quality) in enumerate(points):
        dominated = any(
            other_cost <= cost and better_or_equal(other_quality, quality)
            and (other_cost < cost or other_quality != quality)
            for j, (other_cost, other_quality) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    sign = -1 if higher_is_better else 1
    return sorted(front, key=lambda i: (points[i][0], sign * points[i][1], i))


# --- Formatting shared by every output -------------------------------------------------------

def format_headline(stat: Stat) -> str:
    """mean ± sample std over seeds; the mean alone with one seed (its spread over seeds is unknown, not
    0); "—" when no seed finished."""
    if stat.mean is None:
        return "—"
    if stat.n < 2 or stat.std is None:
        return format_value("metric", stat.mean)
    return f"{format_value('metric', stat.mean)} ± {format_value('metric', stat.std)}"


def headline_label(view: TaskView) -> str:
    """The headline column's header: the metric, and "(mean ± std)" only where some row has two seeds."""
    several = any(row.headline.n >= 2 for row in view.rows)
    return f"{view.headline_metric} (mean ± std)" if several else view.headline_metric


def format_interval(interval: Any) -> str:
    """A 95 % interval as "[low, high]" in the metric's format; "—" when there is none."""
    if not isinstance(interval, (list, tuple)) or len(interval) != 2 or any(to_number(v) is None for v in interval):
        return "—"
    return f"[{format_value('metric', interval[0])}, {format_value('metric', interval[1])}]"


def display_value(row: MethodRow, column: Column) -> str:
    """A row's value in a column as every output shows it."""
    if column.key == "headline":
        return format_headline(row.headline)
    if column.unit == "to_best":
        seconds = row.value(column.key)
        return "—" if seconds is None else f"{format_count(row.values.get('steps_to_best'))} / {format_seconds(seconds)}"
    reserved = row.values.get(RESERVED_BESIDE.get(column.key, ""))
    if reserved is not None and row.value(column.key) is not None:
        return f"{format_bytes(row.value(column.key))} ({format_bytes(reserved)} reserved)"
    return format_value(column.unit, row.value(column.key))


def method_label(row: MethodRow) -> str:
    """The method name, with the chosen sweep trial when there is one."""
    return f"{row.method} ({row.trial})" if row.trial else row.method


def failed_cells(data: RunDocument | dict[str, Any]) -> list[CellRecord]:
    """Every failed cell, sweep trials included, in record order."""
    return as_document(data).failed_cells()


def pending_note(data: RunDocument | dict[str, Any]) -> tuple[str, list[str]] | None:
    """A warning sentence and the pending cells when the run is incomplete; None when it finished."""
    document = as_document(data)
    pending = [str(p) for p in document.pending or []]
    if not document.interrupted and not pending:
        return None
    how = "was interrupted" if document.interrupted else "is incomplete"
    return (f"This run {how}: {len(pending)} cell(s) have no result yet, so the figures below are partial. "
            "Run the same tbench run command again to finish them.", pending)


@dataclass(frozen=True)
class SweepRow:
    """One tried value of a sweep, for one method: what the Markdown and HTML sweep tables show."""

    method: str
    value: str  # the tried value, formatted ("0.003")
    mean_val_loss: str  # formatted, "—" when no cell finished
    cells_ok: str
    chosen: bool


def sweep_rows(view: TaskView) -> tuple[list[SweepRow], list[str]]:
    """The tried values of every swept method, and the methods that were not swept (no such option)."""
    rows, unswept = [], []
    for entry in view.sweep:
        tried = [t for t in entry.get("tried") or [] if t.get("trial")]
        if not tried:
            unswept.append(entry["method"])
        for trial in tried:
            value = trial.get("value")
            rows.append(SweepRow(entry["method"], f"{value:g}" if isinstance(value, float) else str(value),
                                 format_value("loss", trial.get("mean_val_loss")), str(trial.get("cells_ok", "—")),
                                 trial.get("trial") == entry.get("chosen")))
    return rows, unswept

